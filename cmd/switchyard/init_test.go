package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// init, non-interactively, in an empty directory: the project it writes builds,
// runs under up, takes the traffic its file declares, and draws what it declares.
func TestInitWritesASystemThatRuns(t *testing.T) {
	dir := t.TempDir()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "init", "--dir", dir, "--name", "rides",
		"--service", "riders rider-team Riders and their accounts.", "--service", "trips trips-team", "--service", "pricing pricing-team",
		"--call", "trips -> riders grpc", "--call", "trips -> pricing",
		"--event", "trips: trips.trip.requested.v1 -> riders, pricing",
		"--stream", "trips: /v1/trips/{id}/updates", "--entry", "trips")
	cmd.Dir = root // a development build requires the checkout it runs from
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "GOFLAGS=-mod=mod"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	for _, f := range []string{"switchyard.yaml", "main.go", "go.mod", "go.sum", "README.md", "DESIGN.md", "events/trips.trip.requested.v1.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("init wrote no %s: %v\n%s", f, err, out)
		}
	}
	design, _ := os.ReadFile(filepath.Join(dir, "DESIGN.md"))
	if !strings.Contains(string(design), "## Simulated services") || !regexp.MustCompile(`trips +--gRPC--> riders`).Match(design) {
		t.Errorf("DESIGN.md does not describe the system:\n%s", design)
	}
	// Free ports: other tests run beside this one.
	file := filepath.Join(dir, "switchyard.yaml")
	yml, _ := os.ReadFile(file)
	yml = regexp.MustCompile(`listen: 127\.0\.0\.1:\d+`).ReplaceAll(yml, []byte("listen: 127.0.0.1:0"))
	if err := os.WriteFile(file, yml, 0o600); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", "rides", ".")
	build.Dir, build.Env = dir, append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build of the project: %v\n%s", err, out)
	}
	bin := filepath.Join(dir, "rides")
	upIn(t, bin, "rides", dir, "SWITCHYARD_HUB=127.0.0.1:0")

	run := func(args ...string) (string, error) {
		c := exec.Command(bin, args...)
		c.Dir, c.Env = dir, []string{"PATH=" + os.Getenv("PATH")}
		out, err := c.CombinedOutput()
		return string(out), err
	}
	load, err := run("load", "--duration", "4s")
	if err != nil || !regexp.MustCompile(`(?m)^\s+failed\s+0$`).MatchString(load) || !strings.Contains(load, "WS /api/streams/v1/trips/{id}/updates") {
		t.Fatalf("load: %v\n%s", err, load)
	}
	var diagram string
	waitUntil(t, "the diagram to draw every declared edge", 20*time.Second, func() bool {
		diagram, _ = run("diagram")
		return strings.Contains(diagram, "none: every declared edge was seen")
	})
	for _, want := range []string{`gateway +--HTTP--> +trips`, `trips +--gRPC--> +riders`, `trips +--HTTP--> +pricing`, `trips +--event--> +bus --> riders +trips.trip.requested.v1`} {
		if !regexp.MustCompile(want).MatchString(diagram) {
			t.Errorf("the diagram lacks %s:\n%s", want, diagram)
		}
	}
	if out, err := run("verify"); err != nil {
		t.Errorf("verify: %v\n%s", err, out)
	}
}
