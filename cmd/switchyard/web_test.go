package main

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The browser checks (headless Chromium through playwright-core, and the mermaid
// package) need Node and the packages of internal/web/e2e. They run when SWITCHYARD_TEST_WEB
// is 1 — .ci/run sets it and installs what they need — and then fail, never skip, if
// something is missing.
func webTests(t *testing.T) (dir string, on bool) {
	t.Helper()
	if os.Getenv("SWITCHYARD_TEST_WEB") != "1" {
		t.Log("browser checks not run: set SWITCHYARD_TEST_WEB=1 (needs node, chromium and npm ci in internal/web/e2e)")
		return "", false
	}
	dir, err := filepath.Abs("../../internal/web/e2e")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("SWITCHYARD_TEST_WEB=1 but there is no node on PATH")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Fatalf("SWITCHYARD_TEST_WEB=1 but internal/web/e2e has no node_modules (run npm ci there): %v", err)
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

// node runs a script of internal/web/e2e with args and environment, failing the test on a
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

// In headless Chromium: a customer orders in the storefront and sees CONFIRMED
// arrive; an administrator finds that order's trace in the dashboard and sees its
// sequence diagram — the client, the gateway, orders, inventory, payments and the
// bus — with its log lines, and the order among the sagas. Screenshots are kept.
func TestStorefrontAndDashboardInABrowser(t *testing.T) {
	dir, on := webTests(t)
	if !on {
		return
	}
	s := startUp(t, fullPlatform)
	gw, _ := s.service("gateway")
	client := &http.Client{Timeout: 10 * time.Second}
	waitUntil(t, "registration through the gateway", 10*time.Second, func() bool {
		resp, _ := exchange(t, client, "POST", gw+"/api/v1/auth/register", "", `{"email":"ada@example.com","password":"correct-horse-battery","name":"Ada"}`, nil)
		return resp.StatusCode == 201 || resp.StatusCode == 409
	})
	if out, err := execIn(s.dir, "grant", "ada@example.com", "admin").CombinedOutput(); err != nil {
		t.Fatalf("grant: %v\n%s", err, out)
	}
	s.publishPoison("01a20000-0000-7000-8000-0000000000b1") // a dead letter for the dashboard
	shots := artifacts(t)
	out := node(t, dir, "shop-and-dashboard.mjs", []string{"GATEWAY=" + gw, "ARTIFACTS=" + shots,
		"ADMIN_EMAIL=ada@example.com", "ADMIN_PASSWORD=correct-horse-battery"})
	var found struct {
		Order        string   `json:"order"`
		Events       []string `json:"events"`
		Topology     []string `json:"topology"`
		Trace        string   `json:"trace"`
		Participants []string `json:"participants"`
		Messages     int      `json:"messages"`
		LogLines     int      `json:"logLines"`
		Sagas        []string `json:"sagas"`
		DeadLetters  []string `json:"deadLetters"`
		Replay       string   `json:"replay"`
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &found); err != nil {
		t.Fatalf("browser findings: %v\n%s", err, out)
	}
	t.Logf("browser: %+v (screenshots in %s)", found, shots)
	for _, p := range []string{"client", "gateway", "orders", "inventory", "payments", "bus", "orders-db"} {
		if !slices.Contains(found.Participants, p) {
			t.Errorf("the order's sequence diagram lacks %s: %v", p, found.Participants)
		}
	}
	for _, n := range []string{"gateway", "orders", "inventory", "payments", "bus"} {
		if !slices.Contains(found.Topology, n) {
			t.Errorf("the topology lacks %s: %v", n, found.Topology)
		}
	}
	if !slices.Contains(found.Sagas, found.Order) {
		t.Errorf("the sagas tab does not list order %s: %v", found.Order, found.Sagas)
	}
	if len(found.DeadLetters) != 1 || !strings.Contains(found.DeadLetters[0], "catalog | inventory.stock.changed.v1") ||
		!strings.Contains(found.Replay, "minimum: got -5, want 0") {
		t.Errorf("dead letters %q, replay %q; want the poison event listed and its replay refused with the reason", found.DeadLetters, found.Replay)
	}
	if found.Messages < 10 || found.LogLines < 2 {
		t.Errorf("the sequence has %d messages and %d log lines; want a whole order's", found.Messages, found.LogLines)
	}
	for _, shot := range []string{"storefront-confirmed.png", "dashboard-topology.png", "dashboard-sequence.png", "dashboard-sagas.png"} {
		if fi, err := os.Stat(filepath.Join(shots, shot)); err != nil || fi.Size() < 5000 {
			t.Errorf("screenshot %s missing or empty: %v", shot, err)
		}
	}
}
