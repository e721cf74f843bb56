package analysis_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/analysis"
	"github.com/switchyard/switchyard/resilience"
	"github.com/switchyard/switchyard/saga"
)

func load(t *testing.T, src string) *config.Config {
	t.Helper()
	cfg, err := config.Load("test.yaml", []byte("version: 1\n"+src), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func findings(r analysis.Report, rule string) []analysis.Finding {
	var out []analysis.Finding
	for _, f := range r.Findings {
		if f.Rule == rule {
			out = append(out, f)
		}
	}
	return out
}

// Each rule on a configuration that has the flaw and on one that has not.
func TestEachRuleFindsItsFlawAndOnlyIt(t *testing.T) {
	const (
		chain = `services:
  leaf: {listen: "127.0.0.1:0"}
  middle:
    listen: "127.0.0.1:0"
    dependencies:
      leaf: {protocol: rest, policy: {timeout: 2s, try_timeout: 500ms, retry: {max_attempts: 3, backoff: 50ms, max_backoff: 500ms}}}
  edge:
    listen: "127.0.0.1:0"
    dependencies:
      middle: {protocol: rest, policy: {timeout: 5s, try_timeout: %s, retry: {max_attempts: %s}}}
`
		events = `services:
  a: {listen: "127.0.0.1:0", publishes: [a.thing.happened.v1], subscriptions: [%s]}
  b: {listen: "127.0.0.1:0", publishes: [b.thing.happened.v1], subscriptions: [a.thing.happened.v1]}
`
		routes = `services:
  shop: {listen: "127.0.0.1:0"}
gateway:
  routes:
    - {prefix: /api/v1/shop, service: shop, auth: %s}
`
		fanout = `services:
  flaky:
    listen: "127.0.0.1:0"
    simulate: {endpoints: [{endpoint: GET /v1/x, error_rate: %s}]}
  front:
    listen: "127.0.0.1:0"
    dependencies:
      flaky: {protocol: rest, policy: {retry: {max_attempts: 2}}}
    simulate:
      endpoints:
        - endpoint: GET /v1/front
          calls: [{to: flaky, endpoint: GET /v1/x, count: 3}]
gateway:
  policy: {retry: {max_attempts: 1}}
  routes:
    - {prefix: /api/v1/front, service: front, auth: required, objective: 0.99}
`
	)
	cases := []struct {
		rule, flawed, sound, subject string
		want                         string // in the finding's message
	}{
		{analysis.RuleTimeoutInversion, sprintf(chain, "1s", "1"), sprintf(chain, "2s", "1"), "edge → middle",
			"edge gives each try to middle 1s, but middle may take up to 1.65s"},
		{analysis.RuleRetriesExceedTimeout, sprintf(chain, "2s", "3"), sprintf(chain, "2s", "2"), "edge → middle",
			"3 tries of 2s with backoff take up to 6.15s, beyond the overall timeout 5s: only 2 of them fit in full"},
		{analysis.RuleRetryAmplification, sprintf(chain, "2s", "3"), sprintf(chain, "2s", "1"), "edge → middle → leaf",
			"reaches it 3.6 times at 10 req/s (9 times without retry budgets)"},
		{analysis.RuleNoBreaker,
			strings.Replace(sprintf(chain, "2s", "1"), "max_backoff: 500ms}", "max_backoff: 500ms}, breaker: {disabled: true}", 1),
			sprintf(chain, "2s", "1"), "middle → leaf", "middle calls leaf with its breaker disabled"},
		{analysis.RuleEventCycle, sprintf(events, "b.thing.happened.v1"), sprintf(events, ""), "a → b → a",
			"a —a.thing.happened.v1→ b, b —b.thing.happened.v1→ a"},
		{analysis.RuleUnconsumedEvent, sprintf(events, ""), sprintf(events, "b.thing.happened.v1"), "b.thing.happened.v1",
			"b publishes b.thing.happened.v1 and no service subscribes to it"},
		{analysis.RuleUnlimitedPublicRoute, sprintf(routes, "none"), sprintf(routes, "required"), "/api/v1/shop",
			"open to clients without a token (auth: none) and has no rate_limit"},
		{analysis.RuleFanOutOverBudget, sprintf(fanout, "0.1"), sprintf(fanout, "0.01"), "/api/v1/front: GET /v1/front",
			"fails 2.97% of requests by its declared error rates (3 calls it needs, retries counted), over the route's budget of 1%"},
	}
	for _, c := range cases {
		t.Run(c.rule, func(t *testing.T) {
			got := findings(analysis.Analyze(analysis.Input{Config: load(t, c.flawed)}), c.rule)
			if len(got) != 1 || got[0].Subject != c.subject || !strings.Contains(got[0].Message, c.want) || got[0].Reason == "" {
				t.Fatalf("flawed: %+v\nwant one finding on %q saying %q", got, c.subject, c.want)
			}
			if got[0].Key != "" && got[0].Line == 0 && c.rule != analysis.RuleRetryAmplification {
				t.Errorf("the finding names %s but not its line", got[0].Key)
			}
			if sound := findings(analysis.Analyze(analysis.Input{Config: load(t, c.sound)}), c.rule); len(sound) > 0 {
				t.Errorf("sound: %+v", sound)
			}
		})
	}
}

func sprintf(format string, args ...string) string {
	for _, a := range args {
		format = strings.Replace(format, "%s", a, 1)
	}
	return format
}

// A subscription nobody publishes cannot even be loaded; built in code, the
// analysis names it.
func TestASubscriptionNobodyPublishesIsAnError(t *testing.T) {
	cfg := load(t, `services:
  a: {listen: "127.0.0.1:0"}
`)
	cfg.Services["a"].Subscriptions = []string{"z.thing.happened.v1"}
	r := analysis.Analyze(analysis.Input{Config: cfg})
	got := findings(r, analysis.RuleUnpublishedSubscription)
	if len(got) != 1 || got[0].Severity != analysis.Error || r.Errors() != 1 {
		t.Fatalf("%+v", r.Findings)
	}
	if _, err := config.Load("t.yaml", []byte("version: 1\nservices:\n  a: {listen: \"127.0.0.1:0\", subscriptions: [z.thing.happened.v1]}\n"), nil); err == nil ||
		!strings.Contains(err.Error(), `no service publishes "z.thing.happened.v1"`) {
		t.Errorf("loading: %v", err)
	}
}

func TestASagaStepBeforeThePivotNeedsACompensation(t *testing.T) {
	cfg := load(t, "services:\n  orders: {listen: \"127.0.0.1:0\"}\n")
	steps := func(undo bool) []saga.StepInfo {
		return []saga.StepInfo{{Name: "hold", Compensated: true}, {Name: "note", Compensated: undo}, {Name: "charge", Pivot: true}, {Name: "ship"}}
	}
	flawed := analysis.Analyze(analysis.Input{Config: cfg, Sagas: []analysis.Saga{{Service: "orders", Name: "order", Steps: steps(false)}}})
	got := findings(flawed, analysis.RuleUncompensatedStep)
	if len(got) != 1 || got[0].Subject != "orders saga order, step note" || !strings.Contains(got[0].Message, "step 2 of 4, note, comes before the pivot") {
		t.Fatalf("%+v", got)
	}
	sound := analysis.Analyze(analysis.Input{Config: cfg, Sagas: []analysis.Saga{{Service: "orders", Name: "order", Steps: steps(true)}}})
	if got := findings(sound, analysis.RuleUncompensatedStep); len(got) > 0 {
		t.Errorf("the steps past the pivot need no compensation: %+v", got)
	}
}

// A deadline travels with the call: a hop's timeout beyond what its route leaves
// is noted, and each hop's budget is the least of what it inherits.
func TestTheRouteDeadlineIsDividedAmongItsHops(t *testing.T) {
	cfg := load(t, `services:
  leaf: {listen: "127.0.0.1:0"}
  middle:
    listen: "127.0.0.1:0"
    dependencies:
      leaf: {protocol: grpc, policy: {timeout: 3s, try_timeout: 1s, retry: {max_attempts: 2}}}
gateway:
  policy: {timeout: 2s, try_timeout: 2s, retry: {max_attempts: 1}}
  routes:
    - {prefix: /api/v1/m, service: middle, timeout: 1500ms, auth: required}
`)
	r := analysis.Analyze(analysis.Input{Config: cfg})
	if len(r.Routes) != 1 || len(r.Routes[0].Paths) != 1 {
		t.Fatalf("%+v", r.Routes)
	}
	hops := r.Routes[0].Paths[0]
	if hops[0].Left.String() != "1.5s" || hops[1].Left.String() != "1s" {
		t.Errorf("budgets %+v: want 1.5s at middle (the route's), 1s at leaf (its per-try)", hops)
	}
	if got := findings(r, analysis.RuleDeadlineBudget); len(got) != 1 || !strings.Contains(got[0].Message, "middle's timeout toward leaf is 3s, but on /api/v1/m at most 1.5s is left") {
		t.Errorf("%+v", got)
	}
	// And the route, like the gateway's per-try timeout, is shorter than the 2.05s
	// middle may take: two inversions.
	got := findings(r, analysis.RuleTimeoutInversion)
	if len(got) != 2 || got[0].Subject != "/api/v1/m: gateway → middle" || !strings.Contains(got[0].Message, "the route gives middle 1.5s per try, but middle may take up to 2.05s") ||
		got[1].Subject != "gateway → middle" {
		t.Errorf("%+v", got)
	}
}

// With budgets, each hop lets ratio + allowance/rate retries per call through.
func TestBudgetsHoldTheAmplification(t *testing.T) {
	if got := analysis.Attempts(3, 0.2, 10, 1, 40); math.Abs(got-1.45) > 1e-9 {
		t.Errorf("at 40 calls/s: %v attempts per call, want 1.45", got)
	}
	if got := analysis.Attempts(3, 0.2, 10, 1, 2); got != 3 {
		t.Errorf("at 2 calls/s the allowance covers every retry: %v, want 3", got)
	}
	if got := analysis.Attempts(3, 0.2, 10, 4, 40); math.Abs(got-2.2) > 1e-9 {
		t.Errorf("four callers, four allowances: %v, want 2.2", got)
	}
}

// The shop's own configuration: no errors, and what is left is explained.
func TestTheShopsDesignHasNoErrors(t *testing.T) {
	cfg, err := config.Load("switchyard.yaml", switchyard.DefaultConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := analysis.Analyze(analysis.Input{Config: cfg})
	for _, f := range r.Findings {
		t.Logf("%s %s %s: %s", f.Severity, f.Rule, f.Subject, f.Message)
		switch {
		case f.Severity == analysis.Error:
			t.Errorf("the shop's design has an error: %+v", f)
		case f.Severity == analysis.Warning && f.Rule != analysis.RuleRetriesExceedTimeout:
			t.Errorf("an unexpected warning: %+v", f)
		}
	}
	if len(r.Paths) == 0 || len(r.Routes) == 0 {
		t.Errorf("no paths or routes analysed: %+v", r)
	}
}

// A forecast replays recorded attempts under a policy: more attempts raise the
// success rate of independent failures, and a failure share past the breaker's
// ratio says the breaker would open.
func TestAForecastReplaysAttemptsUnderAPolicy(t *testing.T) {
	o := analysis.Observed{From: "a", To: "b", Window: 10 * time.Second}
	for i := range 100 {
		o.Calls = append(o.Calls, analysis.Sample{Took: time.Millisecond})
		o.Attempts = append(o.Attempts, analysis.Sample{Took: time.Millisecond, Failed: i%5 < 3}) // 60 % fail
	}
	p := resilience.Config{MaxAttempts: 1, NoBreaker: true}
	one := analysis.Predict(o, p, 1)
	p.MaxAttempts = 3
	three := analysis.Predict(o, p, 1)
	if math.Abs(one.Success-0.4) > 0.02 || math.Abs(three.Success-(1-0.6*0.6*0.6)) > 0.02 || one.BreakerOpens || three.BreakerOpens {
		t.Errorf("one attempt %+v, three %+v", one, three)
	}
	// At 10 calls a second the budget (20 % + 10/s) covers every retry; at 1000 it
	// holds them to about a fifth of the calls.
	if three.Attempts < 1.9 {
		t.Errorf("three attempts at 10 calls/s: %.2f per call, want the budget to allow them", three.Attempts)
	}
	o.Window = 100 * time.Millisecond
	budgeted := analysis.Predict(o, p, 1)
	if budgeted.Attempts > 1.35 || budgeted.Success > three.Success {
		t.Errorf("at 1000 calls/s: %+v, want about 1.3 attempts per call", budgeted)
	}
	if withBreaker := analysis.Predict(o, resilience.Config{MaxAttempts: 3}, 1); !withBreaker.BreakerOpens {
		t.Errorf("60 %% of attempts failing under a 50 %% breaker: %+v", withBreaker)
	}
}
