package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/switchyard/switchyard/observe"
	"github.com/switchyard/switchyard/platform/platformtest"
)

// A caller that gives up before its callee's retries could end: an error, placed.
const inverted = `version: 1
services:
  leaf: {listen: "127.0.0.1:0"}
  middle:
    listen: "127.0.0.1:0"
    dependencies:
      leaf: {protocol: rest, policy: {timeout: 2s, try_timeout: 500ms}}
  edge:
    listen: "127.0.0.1:0"
    dependencies:
      middle:
        protocol: rest
        policy: {timeout: 5s, try_timeout: 1s, retry: {max_attempts: 1}}
`

func TestLintFindsFlawsAndSaysWhatAChangeWouldDo(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "switchyard.yaml")
	if err := os.WriteFile(path, []byte(inverted), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, dir, "lint", "--config", path)
	if code != 1 || !strings.Contains(out, "error   timeout-inversion  edge → middle") ||
		!strings.Contains(out, "at: "+path+":13 services.edge.dependencies.middle.policy.try_timeout") {
		t.Errorf("lint of an inversion: exit %d\n%s%s", code, out, errOut)
	}
	// The fix, tried with --set: the error goes away, and the budgets change.
	code, out, _ = runCLI(t, dir, "lint", "--config", path, "--set", "services.edge.dependencies.middle.policy.try_timeout=2s")
	if code != 0 || !strings.Contains(out, "1 errors as declared, 0 with services.edge.dependencies.middle.policy.try_timeout=2s") ||
		!strings.Contains(out, "- error   timeout-inversion  edge → middle") || !strings.Contains(out, "~ deadline") && !strings.Contains(out, "- error") {
		t.Errorf("lint --set: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(t, dir, "lint", "--config", path, "--json", "--rate", "40")
	var res struct {
		Report struct {
			Rate     float64
			Findings []struct{ Rule, Severity string }
			Paths    []struct{ Worst int }
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 || res.Report.Rate != 40 || len(res.Report.Paths) != 1 || res.Report.Paths[0].Worst != 3 {
		t.Errorf("lint --json: exit %d, %v\n%s", code, err, out)
	}
	// A --set that does not fit the file names it.
	if code, _, errOut := runCLI(t, dir, "lint", "--config", path, "--set", "services.edge.dependencies=3"); code != 2 || !strings.Contains(errOut, "services.edge.dependencies") {
		t.Errorf("a bad --set: exit %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, dir, "lint", "--config", path, "--set", "novalue"); code != 2 || !strings.Contains(errOut, "want key=value") {
		t.Errorf("a --set without =: exit %d %s", code, errOut)
	}
	// The shop's own design: no errors.
	if code, out, errOut := runCLI(t, dir, "lint"); code != 0 || !strings.Contains(out, "0 errors") {
		t.Errorf("lint of the built-in platform: exit %d\n%s%s", code, out, errOut)
	}
}

// Recorded traffic (an OTLP JSON file) forecast under the declared policy and a
// changed one: retries off, the success rate falls to the leaf's own.
func TestLintForecastsAChangeFromRecordedTraffic(t *testing.T) {
	const system = `version: 1
services:
  leaf:
    listen: 127.0.0.1:0
    simulate:
      endpoints:
        - {endpoint: GET /v1/leaf, latency: 2ms, error_rate: 0.3}
  front:
    listen: 127.0.0.1:0
    dependencies:
      leaf: {protocol: rest, policy: {retry: {max_attempts: 3, backoff: 5ms, budget_ratio: 1}, breaker: {disabled: true}}}
    simulate:
      endpoints:
        - {endpoint: GET /v1/front, calls: [{to: leaf, endpoint: GET /v1/leaf, optional: true}]}
`
	sys := platformtest.Start(t, platformtest.Options{Config: []byte(system), Events: fstest.MapFS{}})
	client := &http.Client{Timeout: 5 * time.Second}
	const n = 300
	for range n {
		resp, err := client.Get(sys.URL("front") + "/v1/front")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	var spans []observe.Span
	deadline := time.Now().Add(15 * time.Second)
	for {
		spans = sys.Spans()
		calls := 0
		for _, s := range spans {
			if s.Kind == observe.Client && s.Service == "front" {
				calls++
			}
		}
		if calls >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	dir := t.TempDir()
	data, err := observe.EncodeOTLPJSON(spans)
	if err != nil {
		t.Fatal(err)
	}
	recorded, path := filepath.Join(dir, "spans.json"), filepath.Join(dir, "switchyard.yaml")
	if err := os.WriteFile(recorded, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(system), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, dir, "lint", "--config", path, "--file", recorded, "--set", "services.front.dependencies.leaf.policy.retry.max_attempts=1", "--json")
	var res struct {
		Forecast []struct {
			From, To  string
			Calls     int
			Measured  struct{ Success, Attempts float64 }
			Declared  struct{ Success, Attempts float64 }
			Changed   *struct{ Success, Attempts float64 }
			ExtraLoad float64 `json:"extra_load"`
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || len(res.Forecast) != 1 {
		t.Fatalf("lint --file --set: exit %d %v\n%s%s", code, err, out, errOut)
	}
	f := res.Forecast[0]
	t.Logf("%+v", f)
	if f.From != "front" || f.To != "leaf" || f.Calls < n || f.Changed == nil ||
		f.Changed.Attempts != 1 || f.Changed.Success > 0.8 || f.Changed.Success < 0.6 || f.Declared.Success < 0.95 || f.ExtraLoad >= 0 {
		t.Errorf("the forecast: %+v", f)
	}
	// The same as text, for a terminal.
	if code, out, _ := runCLI(t, dir, "lint", "--config", path, "--file", recorded, "--set", "services.front.dependencies.leaf.policy.retry.max_attempts=1"); code != 0 ||
		!strings.Contains(out, "Forecast from the recorded traffic") || !strings.Contains(out, "front → leaf") {
		t.Errorf("text forecast: exit %d\n%s", code, out)
	}
}
