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

// havePostgres reports whether PostgreSQL's server programs are installed, for
// the runner's database: private.
func havePostgres() bool {
	if _, err := exec.LookPath("initdb"); err == nil {
		return true
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	return len(found) > 0
}

func faultsRun(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"faults"}, args...)...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// A scenario against the shop with a fault of every kind: payments killed,
// inventory frozen, the runner's own broker killed and restarted, the payments
// database (on the runner's own PostgreSQL) killed and restarted, the edge
// gateway -> orders black-holed through the runner's proxy, every
// payment-authorized event delivered twice, and orders killed on a trigger (once
// a saga has tried its capture) — under customers' orders. Every
// invariant holds, nothing is dead-lettered, nothing leaks, and the report says
// so in text, JSON and a picture — which `faults report` redraws. A scenario
// whose own check fails exits 1 naming it.
func TestAFaultScenarioRunsJudgesAndReports(t *testing.T) {
	dir := t.TempDir()
	scenario := filepath.Join(dir, "short.yaml")
	database, databaseFault := "database: private\ndatabase_services: [payments]\n", "  - {at: 9s, database: kill, for: 2s}\n"
	if !havePostgres() {
		// With only Go installed there is no PostgreSQL to make a server with; CI
		// (which names its servers) always has one.
		if os.Getenv("SWITCHYARD_TEST_POSTGRES") != "" {
			t.Fatal("SWITCHYARD_TEST_POSTGRES is set but PostgreSQL's initdb is not installed here")
		}
		t.Log("no PostgreSQL installed (initdb): the scenario runs without its database fault")
		database, databaseFault = "", ""
	}
	if err := os.WriteFile(scenario, []byte(`version: 1
name: short
broker: private
`+database+`load: {rate: 15, duration: 24s, args: [--gateway, --customers, "5", --retry-window, 10s]}
faults:
  - {at: 2s, kill: payments}
  - {at: 4s, stop: inventory, for: 1s}
  - {at: 6s, broker: kill, for: 2s}
`+databaseFault+`  - {at: 12s, edge: gateway -> orders, blackhole: true, for: 1s}
  - {at: 14s, deliveries: duplicate, event: payments.payment.authorized.v1, for: 2s}
  - {at: 16s, when: {service: orders, saga_step: capture_payment}, kill: orders}
assert:
  settle: 30s
  error_rate: {after: 0}
  ready_within: 20s
`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := faultsRun(t, dir, "run", scenario)
	t.Logf("faults run:\n%s", out)
	for _, want := range []string{"faults: short — HELD", "ok   check: every invariant holds", "ok   dead letters ≤ 0",
		"ok   every event consumed", "ok   no leaks", "payments.payment.authorized.v1 events delivered again",
		"from 16s when orders has tried saga step capture_payment, kill orders (brought at "} {
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("the scenario: %v; want %q in the report", err, want)
		}
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
	if err != nil || json.Unmarshal(b, &res) != nil || !res.Held || len(res.Faults) != strings.Count(databaseFault, "database: kill")+6 || len(res.Seconds) < 20 {
		t.Fatalf("result.json: %v %+v", err, res)
	}
	for i, f := range res.Faults {
		if f.Error != "" {
			t.Errorf("fault %d was not brought: %s", i+1, f.Error)
		}
	}
	svg, err := os.ReadFile(filepath.Join(result, "report.svg"))
	if err != nil || !strings.Contains(string(svg), "3: broker-kill broker") || !strings.Contains(string(svg), "blackhole gateway -&gt; orders") {
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

// The runner catches a real bug. A build whose inbox records no event id
// (-tags switchyard_broken_inbox) runs a schedule drawn from a seed — kills and
// stops of services that have nothing to do with it, and payment-authorized
// events delivered twice. The run fails, naming what broke: notifications'
// handler ran twice for one event, and the dead letters say so. The shrinker
// then reduces the schedule to at most three faults that still fail, and writes
// them as a scenario, which fails again when run. The same schedule against the
// sound build holds: the duplicates are the inbox's to absorb.
func TestTheRunnerCatchesABrokenInboxAndShrinksTheSchedule(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "switchyard-broken")
	build := exec.Command("go", "build", "-tags", "switchyard_broken_inbox", "-o", broken, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build with a broken inbox: %v\n%s", err, out)
	}
	scenario := filepath.Join(dir, "duplicates.yaml")
	if err := os.WriteFile(scenario, []byte(`version: 1
name: duplicates
load: {rate: 10, duration: 14s, args: [--customers, "5", --retry-window, 10s]}
faults:
  - {at: 2s, deliveries: duplicate, event: payments.payment.authorized.v1, for: 5s}
random: {faults: 3, kinds: [kill, stop], services: [catalog, users], for: 2s}
assert:
  settle: 30s
`), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(bin string, args ...string) (string, int) {
		cmd := exec.Command(bin, append([]string{"faults", "run"}, args...)...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		out, err := cmd.CombinedOutput()
		code := 0
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}

	out, code := run(binary, scenario, "--seed", "7", "--out", filepath.Join(dir, "sound"))
	if code != 0 || !strings.Contains(out, "ok   dead letters ≤ 0") {
		t.Fatalf("the sound build under the same schedule: exit %d\n%s", code, out)
	}
	out, code = run(broken, scenario, "--seed", "7", "--shrink", "8", "--out", filepath.Join(dir, "broken"))
	t.Logf("the broken build:\n%s", out)
	if code != 1 || !strings.Contains(out, "FAIL dead letters ≤ 0") ||
		!strings.Contains(out, "notifications payments.payment.authorized.v1") || !strings.Contains(out, "UNIQUE constraint failed: notifications.event_id") {
		t.Fatalf("the broken build: exit %d; want the dead letters of notifications named", code)
	}
	shrunk := filepath.Join(dir, "broken", "shrunk.yaml")
	b, err := os.ReadFile(shrunk)
	if err != nil {
		t.Fatalf("no shrunk scenario: %v", err)
	}
	if n := strings.Count(string(b), "- at:"); n == 0 || n > 3 {
		t.Fatalf("the shrunk schedule has %d faults, want 1 to 3:\n%s", n, b)
	}
	out, code = run(broken, shrunk, "--out", filepath.Join(dir, "again"))
	if code != 1 || !strings.Contains(out, "FAIL dead letters ≤ 0") {
		t.Errorf("the shrunk scenario, run again: exit %d\n%s", code, out)
	}
}
