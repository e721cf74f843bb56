package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The browser checks (headless Chromium through playwright-core, and the mermaid
// package) need Node and the packages of web/e2e. They run when SWITCHYARD_TEST_WEB
// is 1 — .ci/run sets it and installs what they need — and then fail, never skip, if
// something is missing.
func webTests(t *testing.T) (dir string, on bool) {
	t.Helper()
	if os.Getenv("SWITCHYARD_TEST_WEB") != "1" {
		t.Log("browser checks not run: set SWITCHYARD_TEST_WEB=1 (needs node, chromium and npm ci in web/e2e)")
		return "", false
	}
	dir, err := filepath.Abs("../../web/e2e")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("SWITCHYARD_TEST_WEB=1 but there is no node on PATH")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("SWITCHYARD_TEST_WEB=1 but web/e2e has no node_modules (run npm ci there): %v", err)
	}
	return dir, true
}

// artifacts is where a test keeps what a person may want to look at afterwards
// (screenshots, diagrams): $SWITCHYARD_TEST_ARTIFACTS/<test>, else a temporary
// directory.
func artifacts(t *testing.T) string {
	t.Helper()
	root := os.Getenv("SWITCHYARD_TEST_ARTIFACTS")
	if root == "" {
		return t.TempDir()
	}
	dir := filepath.Join(root, t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// node runs a script of web/e2e with args and environment, failing the test on a
// non-zero exit.
func node(t *testing.T, dir, script string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("node", append([]string{filepath.Join(dir, script)}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, out)
	}
	return string(out)
}

// mermaidParses checks the files with the mermaid package's own parser.
func mermaidParses(t *testing.T, files ...string) {
	t.Helper()
	dir, on := webTests(t)
	if !on {
		return
	}
	t.Logf("mermaid:\n%s", node(t, dir, "mermaid-check.mjs", nil, files...))
}
