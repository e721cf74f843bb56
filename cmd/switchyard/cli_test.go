package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/cli"
)

func runCLI(t *testing.T, dir string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(k string) string {
		if k == "SWITCHYARD_DATA_DIR" {
			return filepath.Join(dir, "data")
		}
		return ""
	}
	err := run(context.Background(), args, getenv, &out, &errOut)
	if err != nil {
		errOut.WriteString(err.Error())
	}
	return cli.ExitCode(err), out.String(), errOut.String()
}

func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.yaml")
	os.WriteFile(broken, []byte("version: 1\nservices:\n  users:\n    listen: 127.0.0.1:0\n    dependencies:\n      payments: {protocol: grpc}\n"), 0o600)
	cases := []struct {
		name string
		args []string
		code int
		want string // in stdout+stderr
	}{
		{"no command", nil, 2, "no command given"},
		{"unknown command", []string{"deploy-everything"}, 2, `unknown command "deploy-everything"`},
		{"top-level help", []string{"--help"}, 0, "Commands:"},
		{"help for a command", []string{"help", "up"}, 0, "Usage: switchyard up"},
		{"help for an unknown command", []string{"help", "nope"}, 2, `no command "nope"`},
		{"--help on a subcommand", []string{"serve", "--help"}, 0, "--listen"},
		{"version", []string{"version"}, 0, "switchyard "},
		{"unknown flag", []string{"up", "--colour"}, 2, "flag provided but not defined: -colour"},
		{"serve without a service", []string{"serve"}, 2, "exactly one service name"},
		{"serve an undeclared service", []string{"serve", "billing"}, 2, `no service "billing"`},
		{"up with an unknown service", []string{"up", "--services", "users,billing"}, 2, `--services: no service "billing"`},
		{"broken platform file", []string{"up", "--config", broken}, 2, "broken.yaml:6:7: services.users.dependencies.payments: no service \"payments\" is declared"},
		{"missing platform file", []string{"serve", "users", "--config", filepath.Join(dir, "nope.yaml")}, 2, "no such file"},
		{"deploy without a target", []string{"deploy"}, 2, "deploy needs a target"},
		{"deploy an unknown target", []string{"deploy", "helm"}, 2, `no target "helm"`},
		{"deploy identities without --out", []string{"deploy", "identities"}, 2, "needs --out"},
		{"deploy identities", []string{"deploy", "identities", "--out", filepath.Join(dir, "ids")}, 0, "bundle.json"},
		{"diagram of a malformed trace id", []string{"diagram", "--trace", "xyz"}, 2, "32 hex digits"},
		{"diagram from two sources", []string{"diagram", "--jaeger", "http://j", "--file", "f.json"}, 2, "pick one"},
		{"diagram without a stack", []string{"diagram"}, 1, "no running stack"},
		{"logs at a bad level", []string{"logs", "--level", "loud"}, 2, "--level"},
		{"load to a bad target", []string{"load", "--target", "ftp://x"}, 2, "--target"},
	}
	defer func() {
		for _, name := range []string{"users", "gateway"} {
			if _, err := os.Stat(filepath.Join(dir, "ids", name+".key")); err != nil {
				t.Errorf("deploy identities wrote no key for %s: %v", name, err)
			}
		}
	}()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, dir, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			if !strings.Contains(stdout+stderr, tc.want) {
				t.Errorf("output lacks %q\nstdout: %s\nstderr: %s", tc.want, stdout, stderr)
			}
		})
	}
}

// The real binary's exit status for a configuration error is 2 and the message names
// the file and line.
func TestBrokenConfigExitsWithStatus2(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "switchyard.yaml"), []byte("version: 1\nservices:\n  users:\n    listen: 127.0.0.1:0\n    timeout: 5\n"), 0o600)
	cmd := execIn(dir, "up")
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 2 {
		t.Errorf("exit %d, want 2:\n%s", code, out)
	}
	if !strings.Contains(string(out), `switchyard.yaml:5:5: services.users.timeout: unknown key "timeout"`) {
		t.Errorf("message:\n%s", out)
	}
}

// A declared service the binary has no code for, and no simulation of, is refused
// before anything starts, at its declaration; so is an event type without a schema.
func TestAServiceWithNeitherCodeNorSimulationIsRefused(t *testing.T) {
	for name, c := range map[string]struct{ file, want string }{
		"no code": {"version: 1\nservices:\n  ledger:\n    listen: 127.0.0.1:0\n",
			"switchyard.yaml:3:3: services.ledger: switchyard has no code for ledger: give it a simulate block"},
		"no schema": {"version: 1\nservices:\n  ledger:\n    listen: 127.0.0.1:0\n    publishes: [ledger.entry.posted.v1]\n    simulate: {}\n",
			"switchyard.yaml:5:17: services.ledger.publishes.0: no schema for ledger.entry.posted.v1 in switchyard's own schemas"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "switchyard.yaml"), []byte(c.file), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"up"}, {"serve", "ledger"}} {
				cmd := execIn(dir, args...)
				out, _ := cmd.CombinedOutput()
				if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), c.want) {
					t.Errorf("%s: exit %d, want 2 and %q:\n%s", args[0], code, c.want, out)
				}
			}
		})
	}
}
