package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func faultsRun(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"faults"}, args...)...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// A scenario against the shop: payments killed, inventory frozen, a private
// broker killed and restarted, under customers' orders; every invariant holds
// and the report says so in text, JSON and a picture — which `faults report`
// redraws. A scenario whose own check fails exits 1 naming it.
func TestAFaultScenarioRunsJudgesAndReports(t *testing.T) {
	dir := t.TempDir()
	scenario := filepath.Join(dir, "short.yaml")
	if err := os.WriteFile(scenario, []byte(`version: 1
name: short
broker: private
load: {rate: 15, duration: 20s, args: [--customers, "5", --retry-window, 10s]}
faults:
  - {at: 3s, kill: payments}
  - {at: 6s, stop: inventory, for: 1s}
  - {at: 9s, broker: kill, for: 2s}
assert:
  settle: 30s
  error_rate: {after: 0}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := faultsRun(t, dir, "run", scenario)
	t.Logf("faults run:\n%s", out)
	if err != nil || !strings.Contains(out, "faults: short — HELD") || !strings.Contains(out, "ok   check: every invariant holds") {
		t.Fatalf("the scenario: %v", err)
	}
	result := filepath.Join(dir, "short.result")
	var res struct {
		Held   bool
		Faults []struct {
			Error string
			Start int64
		}
		Seconds []struct{ Offered, Accepted int }
	}
	b, err := os.ReadFile(filepath.Join(result, "result.json"))
	if err != nil || json.Unmarshal(b, &res) != nil || !res.Held || len(res.Faults) != 3 || len(res.Seconds) < 15 {
		t.Fatalf("result.json: %v %+v", err, res)
	}
	for i, f := range res.Faults {
		if f.Error != "" {
			t.Errorf("fault %d was not brought: %s", i+1, f.Error)
		}
	}
	svg, err := os.ReadFile(filepath.Join(result, "report.svg"))
	if err != nil || !strings.Contains(string(svg), "3: broker-kill broker") {
		t.Errorf("report.svg: %v", err)
	}
	_ = os.Remove(filepath.Join(result, "report.svg"))
	if out, err := faultsRun(t, dir, "report", result); err != nil || !strings.Contains(out, "HELD") {
		t.Errorf("faults report: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(result, "report.svg")); err != nil {
		t.Errorf("faults report did not redraw the picture: %v", err)
	}

	failing := filepath.Join(dir, "failing.yaml")
	if err := os.WriteFile(failing, []byte(`version: 1
load: {rate: 5, duration: 3s}
assert:
  command: [sh, -c, "echo the ledger does not balance; exit 3"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = faultsRun(t, dir, "run", failing, "--json")
	var code int
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	}
	if code != 1 || !strings.Contains(out, `"name": "command: sh -c echo the ledger does not balance; exit 3"`) || !strings.Contains(out, "the ledger does not balance") {
		t.Errorf("a failing check: exit %d\n%s", code, out)
	}
	if out, err := faultsRun(t, dir, "run", filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(out, "missing.yaml") {
		t.Errorf("a missing scenario: %v %s", err, out)
	}
}
