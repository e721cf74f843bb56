package analysis_test

import (
	"context"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/switchyard/switchyard/diagram"
	"github.com/switchyard/switchyard/internal/analysis"
	"github.com/switchyard/switchyard/observe"
	"github.com/switchyard/switchyard/platform/platformtest"
	"github.com/switchyard/switchyard/telemetry"
)

// pace sends n GETs to url at rate per second, each on its own, and waits for all.
func pace(t *testing.T, url string, n int, rate float64, header http.Header) {
	t.Helper()
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	client := &http.Client{Timeout: 10 * time.Second}
	for range n {
		<-tick.C
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			for k, v := range header {
				req.Header[k] = v
			}
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
}

func requests(t *testing.T, url, endpoint string) float64 {
	t.Helper()
	families, err := telemetry.Scrape(context.Background(), http.DefaultClient, url+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, m := range families["simulate_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "endpoint" && l.GetValue() == endpoint {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

// Three layers, the leaf failing every time, no breakers: the attempts the leaf
// counts match the amplification the analysis computes from the retry budgets,
// within 10 %.
const failingChain = `version: 1
services:
  leaf:
    listen: 127.0.0.1:0
    simulate:
      endpoints:
        - {endpoint: GET /v1/leaf, error_rate: 1}
  middle:
    listen: 127.0.0.1:0
    dependencies:
      leaf:
        protocol: rest
        policy: {timeout: 2s, try_timeout: 500ms, retry: {max_attempts: 3, backoff: 5ms, max_backoff: 10ms, budget_per_second: 1}, breaker: {disabled: true}}
    simulate:
      endpoints:
        - {endpoint: GET /v1/middle, calls: [{to: leaf, endpoint: GET /v1/leaf}]}
  edge:
    listen: 127.0.0.1:0
    dependencies:
      middle:
        protocol: rest
        policy: {timeout: 5s, try_timeout: 2500ms, retry: {max_attempts: 3, backoff: 5ms, max_backoff: 10ms, budget_per_second: 1}, breaker: {disabled: true}}
    simulate:
      endpoints:
        - {endpoint: GET /v1/edge, calls: [{to: middle, endpoint: GET /v1/middle}]}
`

func TestTheLeafReceivesTheComputedAmplification(t *testing.T) {
	const rate, n = 40.0, 400
	sys := platformtest.Start(t, platformtest.Options{Config: []byte(failingChain), Events: fstest.MapFS{}})
	r := analysis.Analyze(analysis.Input{Config: sys.Config, Rate: rate})
	var path *analysis.Path
	for i, p := range r.Paths {
		if p.String() == "edge → middle → leaf" {
			path = &r.Paths[i]
		}
	}
	if path == nil {
		t.Fatalf("no path edge → middle → leaf in %+v", r.Paths)
	}
	pace(t, sys.URL("edge")+"/v1/edge", n, rate, nil)
	got := requests(t, sys.URL("leaf"), "GET /v1/leaf") / n
	t.Logf("the leaf received %.3f attempts per request; computed %.3f with budgets, %d without", got, path.Budgeted, path.Worst)
	if math.Abs(got-path.Budgeted)/path.Budgeted > 0.10 {
		t.Errorf("measured amplification %.3f is more than 10%% from the computed %.3f", got, path.Budgeted)
	}
	if got > float64(path.Worst)/2 {
		t.Errorf("the budgets did not hold the amplification: %.2f of a worst %d", got, path.Worst)
	}
}

// A caller that gives up before its callee's policy could finish: the analysis
// flags it, and a live request shows it — every span that arrived with a
// deadline records what was left of it, and the sequence diagram marks the hops
// where it ran out.
const inversion = `version: 1
services:
  slow:
    listen: 127.0.0.1:0
    simulate:
      endpoints:
        - {endpoint: GET /v1/slow, latency: 600ms}
  middle:
    listen: 127.0.0.1:0
    dependencies:
      slow: {protocol: rest, policy: {timeout: 2s, try_timeout: 1s, retry: {max_attempts: 1}}}
    simulate:
      endpoints:
        - {endpoint: GET /v1/middle, calls: [{to: slow, endpoint: GET /v1/slow}]}
  front:
    listen: 127.0.0.1:0
    dependencies:
      middle: {protocol: rest, policy: {timeout: 250ms, try_timeout: 250ms, retry: {max_attempts: 1}}}
    simulate:
      endpoints:
        - {endpoint: GET /v1/front, calls: [{to: middle, endpoint: GET /v1/middle}]}
`

func TestADeclaredInversionShowsUpInTheTrace(t *testing.T) {
	sys := platformtest.Start(t, platformtest.Options{Config: []byte(inversion), Events: fstest.MapFS{}})
	got := findings(analysis.Analyze(analysis.Input{Config: sys.Config}), analysis.RuleTimeoutInversion)
	if len(got) != 1 || got[0].Subject != "front → middle" {
		t.Fatalf("the analysis: %+v", got)
	}
	traceID, h := platformtest.Traced()
	pace(t, sys.URL("front")+"/v1/front", 1, 100, h)
	var tr observe.Trace
	deadline := time.Now().Add(15 * time.Second)
	for {
		tr = sys.Trace(traceID)
		servers := 0
		for _, s := range tr.Spans {
			if s.Kind == observe.Server {
				servers++
			}
		}
		if servers == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, s := range tr.Spans {
		calledBy := s.Kind == observe.Server && s.Service != "front" || s.Kind == observe.Client
		if calledBy && s.Attr("switchyard.deadline.remaining_ms") == "" {
			t.Errorf("%s span %s of %s records no deadline", s.Kind, s.Name, s.Service)
		}
	}
	seq := diagram.SequenceOf(tr)
	var marked []string
	for _, m := range seq.Messages {
		if strings.Contains(m.Text, "deadline ran out here") {
			marked = append(marked, m.From+" → "+m.To+": "+m.Text)
		}
	}
	t.Logf("marked: %q", marked)
	// middle gave up on slow when front's 250ms ran out, and front on middle.
	slices.Sort(marked)
	if len(marked) != 2 || !strings.HasPrefix(marked[0], "middle → front") || !strings.HasPrefix(marked[1], "slow → middle") {
		t.Errorf("the sequence diagram does not mark the two replies that came after the 250ms ran out: %q", marked)
	}
}

// Recorded traffic on a flaky edge, replayed under its own policy: the forecast
// lands within 10 % of what was measured — success rate, p99 and attempts.
const flaky = `version: 1
services:
  leaf:
    listen: 127.0.0.1:0
    simulate:
      endpoints:
        - {endpoint: GET /v1/leaf, latency: 10ms, error_rate: 0.25}
  front:
    listen: 127.0.0.1:0
    dependencies:
      leaf:
        protocol: rest
        policy: {timeout: 2s, try_timeout: 500ms, retry: {max_attempts: 3, backoff: 5ms, max_backoff: 10ms, budget_ratio: 0.5}, breaker: {disabled: true}}
    simulate:
      endpoints:
        - {endpoint: GET /v1/front, calls: [{to: leaf, endpoint: GET /v1/leaf, optional: true}]}
`

func TestTheForecastOfTheDeclaredPolicyMatchesTheMeasurement(t *testing.T) {
	const n = 1000
	sys := platformtest.Start(t, platformtest.Options{Config: []byte(flaky), Events: fstest.MapFS{}})
	pace(t, sys.URL("front")+"/v1/front", n, 100, nil)
	var edge analysis.Observed
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, o := range analysis.Observe(sys.Spans()) {
			if o.From == "front" && o.To == "leaf" {
				edge = o
			}
		}
		if len(edge.Calls) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(edge.Calls) < n {
		t.Fatalf("recorded %d of %d calls", len(edge.Calls), n)
	}
	forecasts := analysis.Forecasts(sys.Config, nil, []analysis.Observed{edge})
	if len(forecasts) != 1 {
		t.Fatalf("%+v", forecasts)
	}
	f := forecasts[0]
	t.Logf("measured %s, forecast %s (%d calls, %d attempts)", f.Measured, f.Declared, len(edge.Calls), len(edge.Attempts))
	within := func(what string, got, want float64) {
		if math.Abs(got-want)/want > 0.10 {
			t.Errorf("%s: forecast %.4g, measured %.4g: more than 10%% apart", what, got, want)
		}
	}
	within("success", f.Declared.Success, f.Measured.Success)
	within("p99", f.Declared.P99.Seconds(), f.Measured.P99.Seconds())
	within("attempts per call", f.Declared.Attempts, f.Measured.Attempts)
	if f.Measured.Attempts < 1.2 {
		t.Errorf("the edge hardly retried (%.2f attempts per call): the test exercises nothing", f.Measured.Attempts)
	}
}
