package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files and generated deploy/ files from the current code")

func runInProcess(t *testing.T, dir string, args ...string) string {
	t.Helper()
	var out, errs bytes.Buffer
	if dir != "" {
		t.Chdir(dir)
	}
	if err := run(context.Background(), args, func(string) string { return "" }, &out, &errs); err != nil {
		t.Fatalf("switchyard %v: %v\n%s", args, err, errs.String())
	}
	return out.String()
}

// golden compares got with the file at path (relative to this directory), or
// rewrites it under -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/switchyard -run %s -update)", err, t.Name())
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs from the rendering at line %d:\n got: %s\nwant: %s\n(go test ./cmd/switchyard -run %s -update rewrites it)", path, i+1, g, w, t.Name())
			}
		}
	}
}

// The repository's DESIGN.md is the design document of the built-in platform, as
// `switchyard design` renders it, line for line.
func TestDesignDocumentMatchesItsGolden(t *testing.T) {
	golden(t, filepath.Join("..", "..", "DESIGN.md"), runInProcess(t, "", "design"))
}

// Changing a policy in switchyard.yaml changes the document where that policy is
// described: orders' timeout to inventory, a route's rate limit, an owner.
func TestTheDesignDocumentFollowsThePolicies(t *testing.T) {
	before := runInProcess(t, "", "design")
	dir := t.TempDir()
	cfg := strings.Replace(fullPlatform, "timeout: 3s\n          try_timeout: 900ms", "timeout: 4500ms\n          try_timeout: 1500ms", 1)
	cfg = strings.Replace(cfg, "rate_limit: {requests: 100, burst: 200}", "rate_limit: {requests: 250, burst: 500}", 1)
	cfg = strings.Replace(cfg, "owner: payments-team", "owner: money-team", 1)
	if cfg == fullPlatform {
		t.Fatal("the edits did not apply to the platform file")
	}
	if err := os.WriteFile(filepath.Join(dir, "switchyard.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	after := runInProcess(t, dir, "design")
	for _, want := range []string{
		"| orders | inventory | gRPC | 4.5s | 1.5s |",
		"| `/api/v1/products` | catalog | optional | 5s | 250 per 1s, burst 500",
		"| payments | money-team |",
	} {
		if !strings.Contains(after, want) {
			t.Errorf("after the change the document lacks %q", want)
		}
		if strings.Contains(before, want) {
			t.Errorf("before the change the document already had %q", want)
		}
	}
}

// deploy/prometheus/rules.yml and deploy/grafana/switchyard.json are what `switchyard
// deploy monitoring` renders from the built-in platform (promtool checks the rules
// in CI).
func TestMonitoringFilesAreCurrent(t *testing.T) {
	cfg := builtinConfig(t)
	files, err := shopEnv().MonitoringFiles(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		path := filepath.Join("..", "..", "deploy", name)
		// The built-in configuration's source is named differently from a file's.
		data = bytes.Replace(data, []byte("from "+cfg.Source), []byte("from switchyard.yaml"), 1)
		if *update {
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		committed, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(committed, data) {
			t.Errorf("%s is not what switchyard deploy monitoring renders; run it (or go test ./cmd/switchyard -run %s -update)", path, t.Name())
		}
	}
}
