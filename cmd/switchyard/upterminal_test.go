package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// upOnATerminal runs `switchyard up` on a pseudo-terminal (script(1)) in a fresh
// directory holding the full platform, until it is ready, then stops it with
// SIGTERM and returns all it printed.
func upOnATerminal(t *testing.T, env ...string) string {
	t.Helper()
	scriptPath, err := exec.LookPath("script")
	if err != nil {
		t.Skipf("no script(1) on this machine to give up a terminal (%v); the terminal view is tested through its formatter in package cli", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "switchyard.yaml"), []byte(fullPlatform), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &lockedBuffer{}
	cmd := exec.Command(scriptPath, "-q", "-e", "-c", "'"+binary+"' up", "/dev/null")
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "SWITCHYARD_HUB=127.0.0.1:0"}, env...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("up on a terminal did not stop within 20s of SIGTERM:\n%s", out.String())
		}
	}()
	deadline := time.After(60 * time.Second)
	for !strings.Contains(out.String(), "Ctrl-C stops everything") {
		select {
		case <-exited:
			t.Fatalf("up exited before it was ready:\n%s", out.String())
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("no ready table within 60s:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	raw, err := os.ReadFile(filepath.Join(dir, ".switchyard", "stack.json"))
	var st stackJSON
	if err == nil {
		err = json.Unmarshal(raw, &st)
	}
	if err != nil || st.PID == 0 {
		_ = cmd.Process.Kill()
		t.Fatalf("stack.json: %v %s", err, raw)
	}
	if err := syscall.Kill(st.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-exited
	return strings.ReplaceAll(out.String(), "\r\n", "\n") // the terminal's line endings
}

// On a terminal, up says what changes — each service starting, ready, stopped —
// in colour, and where people start, instead of every service's JSON lines.
func TestUpOnATerminalIsReadable(t *testing.T) {
	out := upOnATerminal(t)
	for _, want := range []string{
		"orders       | starting (pid ",
		"gateway      | \x1b[32mready\x1b[0m at http://127.0.0.1:",
		"switchyard is up: 7 services",
		"  dashboard  http://127.0.0.1:",
		"/ui/ (for administrators)",
		"  storefront http://127.0.0.1:",
		"switchyard grant <email> admin",
		"switchyard logs --follow",
		"users        | stopped",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("up on a terminal lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, `{"time"`) {
		t.Errorf("up on a terminal shows JSON lines:\n%s", out)
	}
}

// NO_COLOR (any non-empty value) turns the colour off, on a terminal too.
func TestUpOnATerminalHonoursNOCOLOR(t *testing.T) {
	out := upOnATerminal(t, "NO_COLOR=1")
	if !strings.Contains(out, "gateway      | ready at http://127.0.0.1:") {
		t.Errorf("no plain ready line:\n%s", out)
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("NO_COLOR=1, yet escape sequences:\n%q", out)
	}
}

// Elsewhere (a pipe, a log file) up writes every service's JSON lines as they
// were written, and neither colour nor carriage returns.
func TestUpIntoAPipeKeepsTheJSON(t *testing.T) {
	s := startUp(t, platformFile)
	waitUntil(t, "a JSON line from users", 10*time.Second, func() bool {
		return strings.Contains(s.out.String(), `users        | {"time"`)
	})
	out := s.out.String()
	if strings.ContainsAny(out, "\x1b\r") || strings.Contains(out, "starting (pid") {
		t.Errorf("up into a pipe writes terminal output:\n%q", out)
	}
}
