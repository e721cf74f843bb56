package faults_test

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/faults"
	"github.com/switchyard/switchyard/internal/yamledit"
)

var services = []string{"inventory", "orders", "payments"}

var platform = &faults.Platform{Services: services, Calls: map[string][]string{"orders": {"inventory", "payments"}, "gateway": {"orders"}}}

func TestAScenarioIsReadStrictly(t *testing.T) {
	s, err := faults.Parse("s1.yaml", []byte(`version: 1
load: {rate: 30, duration: 60s, args: [--customers, "10"]}
faults:
  - {at: 20s, kill: payments}
  - {at: 30s, stop: inventory, for: 3s}
assert:
  settle: 30s
  error_rate: {during: 0.02, after: 0}
`), platform)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "s1" || s.Load.Rate != 30 || len(s.Faults) != 2 || s.Faults[1].Lasts() != 3*time.Second || !s.Assert.Checks() {
		t.Errorf("%+v", s)
	}
	for _, src := range []string{
		"version: 1\nbroker: private\nfaults:\n  - {at: 1s, broker: kill, for: 5s}\n",
		"version: 1\ndatabase: private\nfaults:\n  - {at: 1s, database: stop, for: 5s}\n",
		"version: 1\nfaults:\n  - {at: 1s, edge: gateway -> orders, blackhole: true}\n",
		"version: 1\nfaults:\n  - {at: 1s, deliveries: late, event: orders.order.placed.v1, delay: 3s}\n",
		"version: 1\nredis: private\nfaults:\n  - {at: 1s, redis: stop, for: 1s}\n  - {at: 3s, edge: gateway -> redis, reset: true}\n",
		"version: 1\nreplicas: {orders: 2}\nfaults:\n  - {at: 1s, when: {service: orders, saga_step: capture_payment}, kill: orders#2}\n",
	} {
		if _, err := faults.Parse("good.yaml", []byte(src), platform); err != nil {
			t.Errorf("%s: %v", src, err)
		}
	}
	for _, c := range []struct{ name, src, want string }{
		{"unknown key", "version: 1\nlaod: {rate: 1}\n", `bad.yaml:2:1: laod: unknown key "laod"`},
		{"bad duration", "version: 1\nload: {duration: soon}\n", `bad.yaml:2:18: load.duration: "soon" is not a duration`},
		{"two faults in one", "version: 1\nfaults:\n  - {at: 1s, kill: orders, stop: orders}\n", "faults.0: a fault is exactly one of"},
		{"unknown service", "version: 1\nfaults:\n  - {at: 1s, kill: billing}\n", `bad.yaml:3:14: faults.0.kill: no service "billing" in the platform`},
		{"the shared broker", "version: 1\nfaults:\n  - {at: 1s, broker: kill, for: 5s}\n", "set broker: private"},
		{"a kill that lasts", "version: 1\nfaults:\n  - {at: 1s, kill: orders, for: 5s}\n", "faults.0.for: a kill is instant"},
		{"a bad share", "version: 1\nassert: {error_rate: {during: 2}}\n", "assert.error_rate.during: want a share from 0 to 1"},
		{"a bad random kind", "version: 1\nrandom: {kinds: [flood]}\n", "random.kinds.0: want one of kill, stop"},
		{"no version", "load: {rate: 1}\n", "version: want 1"},
		{"the shared database", "version: 1\nfaults:\n  - {at: 1s, database: kill, for: 5s}\n", "set database: private"},
		{"an edge nobody calls", "version: 1\nfaults:\n  - {at: 1s, edge: payments -> orders, latency: 1s}\n", "faults.0.edge: payments does not call orders"},
		{"an edge without arrow", "version: 1\nfaults:\n  - {at: 1s, edge: orders, down: true}\n", "want caller -> callee"},
		{"an edge broken two ways", "version: 1\nfaults:\n  - {at: 1s, edge: orders -> inventory, down: true, reset: true}\n", "breaks the edge one way"},
		{"an edge broken no way", "version: 1\nfaults:\n  - {at: 1s, edge: orders -> inventory}\n", "breaks the edge one way"},
		{"latency without an edge", "version: 1\nfaults:\n  - {at: 1s, kill: orders, latency: 1s}\n", "name it with edge:"},
		{"an edge to the shared broker", "version: 1\nfaults:\n  - {at: 1s, edge: orders -> broker, down: true}\n", "set broker: private"},
		{"a database not on the server", "version: 1\ndatabase: private\ndatabase_services: [payments]\nfaults:\n  - {at: 1s, edge: orders -> database, down: true}\n", "orders's database is not on the private server"},
		{"a bad delivery fault", "version: 1\nfaults:\n  - {at: 1s, deliveries: twice, event: orders.order.placed.v1}\n", "faults.0.deliveries: want one of duplicate, late, reversed"},
		{"a delivery fault without its event", "version: 1\nfaults:\n  - {at: 1s, deliveries: duplicate}\n", "faults.0.event: deliveries break one event type"},
		{"a random edge kind without edges", "version: 1\nrandom: {kinds: [blackhole]}\n", "list them under random.edges"},
		{"leaks below -1", "version: 1\nassert: {leaks: {goroutines: -5}}\n", "assert.leaks:"},
		{"a trigger two ways", "version: 1\nfaults:\n  - {at: 1s, when: {service: orders, saga_step: a, metric: b}, kill: orders}\n", "faults.0.when: a trigger is one of"},
		{"a trigger on no service", "version: 1\nfaults:\n  - {at: 1s, when: {service: billing, metric: b}, kill: orders}\n", `faults.0.when.service: no service "billing"`},
		{"the shared Redis", "version: 1\nfaults:\n  - {at: 1s, redis: kill, for: 2s}\n", "set redis: private"},
		{"an edge to the shared Redis", "version: 1\nfaults:\n  - {at: 1s, edge: gateway -> redis, down: true}\n", "set redis: private"},
		{"replica zero", "version: 1\nfaults:\n  - {at: 1s, kill: orders#0}\n", "a replica is <service>#<n>"},
	} {
		if _, err := faults.Parse("bad.yaml", []byte(c.src), platform); err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "bad.yaml") {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}

func TestTheSameSeedDrawsTheSameSchedule(t *testing.T) {
	s, err := faults.Parse("r.yaml", []byte("version: 1\nload: {duration: 60s}\nrandom: {faults: 5}\n"), platform)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := faults.Draw(s, 42, services), faults.Draw(s, 42, services), faults.Draw(s, 43, services)
	if len(a) != 5 || !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Fatalf("seed 42 twice: %v / %v; seed 43: %v", a, b, c)
	}
	for _, f := range a {
		if f.At.Std() < 6*time.Second || f.At.Std() > 40*time.Second || !slices.Contains(services, f.Target()) {
			t.Errorf("a fault outside the vocabulary's bounds: %s", f)
		}
	}
}

// A schedule of ten faults fails only when two particular ones are both in it:
// the shrinker finds those two (at most three), within its runs.
func TestAFailingScheduleShrinksToTheFaultsThatMatter(t *testing.T) {
	s, _ := faults.Parse("r.yaml", []byte("version: 1\nload: {duration: 60s}\nrandom: {faults: 10}\n"), platform)
	schedule := faults.Draw(s, 7, services)
	culprits := []faults.Fault{schedule[2], schedule[7]}
	runs := 0
	fails := func(candidate []faults.Fault) bool {
		runs++
		return slices.Contains(candidate, culprits[0]) && slices.Contains(candidate, culprits[1])
	}
	small := faults.Shrink(schedule, 40, fails)
	if len(small) > 3 || !fails(small) {
		t.Errorf("shrunk to %d faults %v (after %d runs), want the two culprits", len(small), small, runs)
	}
	t.Logf("10 faults → %d in %d runs", len(small), runs)
}

func TestTheReportJudgesEachWindowAndDrawsTheRun(t *testing.T) {
	start := time.UnixMilli(1_700_000_000_000)
	var entries []faults.Entry
	for ms := int64(0); ms < 30_000; ms += 100 { // 10 a second for 30 s
		outcome := "accepted"
		if ms >= 10_000 && ms < 12_000 && ms%500 == 0 { // 4 failures of 20 during the fault
			outcome = "failed"
		}
		entries = append(entries, faults.Entry{At: start.UnixMilli() + ms, Outcome: outcome, LatencyMS: 5})
	}
	s, err := faults.Parse("w.yaml", []byte("version: 1\nassert: {error_rate: {during: 0.05, after: 0}, recovery: 1s, p99_after: 50ms}\n"), platform)
	if err != nil {
		t.Fatal(err)
	}
	f := faults.Fault{Stop: "orders"}
	res := &faults.Result{Scenario: "w", Started: start, Faults: []faults.Applied{{Fault: f, Start: 10 * time.Second, End: 11 * time.Second}}}
	res.Judge(s, entries)
	res.Settle()
	if len(res.Windows) != 2 || res.Windows[0].Requests != 20 || res.Windows[0].Failed != 4 || res.Windows[1].Failed != 0 || res.Windows[1].Requests != 180 {
		t.Fatalf("windows %+v", res.Windows)
	}
	// 20 % failed during the fault, over its 5 % bound: the run failed, saying so.
	if res.Held || res.Verdicts[0].Held || !res.Verdicts[1].Held || !res.Verdicts[2].Held {
		t.Errorf("verdicts %+v", res.Verdicts)
	}
	var text, svg bytes.Buffer
	if err := res.Text(&text); err != nil || !strings.Contains(text.String(), "FAIL error rate during fault 1 ≤ 5%: 20.00% of 20 requests failed") {
		t.Errorf("text: %v\n%s", err, text.String())
	}
	if err := res.SVG(&svg); err != nil || len(res.Seconds) != 30 {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(svg.Bytes(), new(struct{})); err != nil || !strings.Contains(svg.String(), "1: stop orders") {
		t.Errorf("the SVG is not well-formed or lacks the fault: %v", err)
	}
}

// An after-bound with no request after the faults would hold vacuously: it fails.
func TestABoundOnNothingFails(t *testing.T) {
	start := time.UnixMilli(1_700_000_000_000)
	entries := []faults.Entry{{At: start.UnixMilli(), Outcome: "accepted"}, {At: start.UnixMilli() + 2000, Outcome: "accepted"}}
	s, _ := faults.Parse("v.yaml", []byte("version: 1\nassert: {error_rate: {after: 0}}\n"), platform)
	res := &faults.Result{Started: start, Faults: []faults.Applied{{Fault: faults.Fault{Kill: "orders"}, Start: time.Second, End: time.Second}}}
	res.Judge(s, entries)
	res.Settle()
	if res.Held || !strings.Contains(res.Verdicts[0].Detail, "lengthen it") {
		t.Errorf("%+v", res.Verdicts)
	}
}

// The complete scenario the README shows is one the runner accepts, against the
// built-in shop.
func TestTheREADMEScenarioLoads(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "### Faults as code")
	_, rest, ok2 := strings.Cut(rest, "```yaml\n")
	block, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("README: no yaml block under ### Faults as code")
	}
	cfg, err := config.LoadFile("../../switchyard.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := faults.Parse("README.md", []byte(block), faults.PlatformOf(cfg))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, f := range s.Faults {
		kinds[f.Kind()] = true
	}
	for _, k := range []string{"kill", "stop", "broker-kill", "database-kill", "latency", "blackhole", "down", "duplicate"} {
		if !kinds[k] {
			t.Errorf("the README's scenario shows no %s fault", k)
		}
	}
}

// Every scenario shipped in scenarios/ loads against the platform it names (the
// built-in shop, or the examples' rides).
func TestTheShippedScenariosLoad(t *testing.T) {
	files, err := filepath.Glob("../../scenarios/*.yaml")
	if err != nil || len(files) < 8 {
		t.Fatalf("scenarios/: %v %v", files, err)
	}
	shop, err := config.LoadFile("../../switchyard.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		s, err := faults.LoadFile(f, nil)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		platform := faults.PlatformOf(shop)
		if s.Platform != "" {
			cfg, err := config.LoadFile(filepath.Join(filepath.Dir(f), s.Platform), nil)
			if err != nil {
				t.Errorf("%s: platform: %v", f, err)
				continue
			}
			platform = faults.PlatformOf(cfg)
		}
		if _, err := faults.LoadFile(f, platform); err != nil {
			t.Errorf("%v", err)
		}
		if len(s.Set) > 0 { // the changed platform loads too
			raw, err := os.ReadFile("../../switchyard.yaml")
			if err != nil {
				t.Fatal(err)
			}
			for _, kv := range s.Set {
				k, v, _ := strings.Cut(kv, "=")
				if raw, err = yamledit.Set(raw, k, v); err != nil {
					t.Errorf("%s: set %s: %v", f, kv, err)
				}
			}
			if _, err := config.Load(f+" set", raw, nil); err != nil {
				t.Errorf("%s: the changed platform: %v", f, err)
			}
		}
	}
}
