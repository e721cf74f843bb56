// Package analysis reasons about a declared system. It reads the policies along
// every call path of a switchyard.yaml and says where they contradict each other
// or the system's shape: a caller that gives up before its callee's own retries
// could finish, retries that multiply layer upon layer, the deadline each hop of a
// route inherits, and structural smells (no breaker, events in a cycle or read by
// nobody, a saga step that cannot be undone, a public route without a limit, a
// fan-out that fails more often than its route may).
//
// The figures are the policies' worst cases, computed the way the resilience
// stack applies them: a call's time is min(timeout, attempts × per-try timeout +
// the backoff bounds between them); the attempts reaching a callee are the
// caller's max_attempts, held by its retry budget to ratio × calls + replicas ×
// per-second allowance (resilience.Budget). Breakers are left out of the
// amplification on purpose: they open only after failures have arrived, and the
// figure is what arrives before.
//
// With spans recorded by the hub, [Predict] replays each edge's observed attempts
// under a policy — the declared one, or a changed one — to forecast its success
// rate, p99 and extra load.
package analysis

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/resilience"
	"github.com/switchyard/switchyard/saga"
)

// Severity ranks a finding. Errors fail `switchyard lint`.
type Severity string

// The severities.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
	Info    Severity = "info"
)

// The rules.
const (
	RuleTimeoutInversion        = "timeout-inversion"
	RuleRetriesExceedTimeout    = "retries-exceed-timeout"
	RuleRetryAmplification      = "retry-amplification"
	RuleDeadlineBudget          = "deadline-budget"
	RuleNoBreaker               = "no-breaker"
	RuleEventCycle              = "event-cycle"
	RuleUnconsumedEvent         = "unconsumed-event"
	RuleUnpublishedSubscription = "unpublished-subscription"
	RuleUncompensatedStep       = "uncompensated-step"
	RuleUnlimitedPublicRoute    = "unlimited-public-route"
	RuleFanOutOverBudget        = "fan-out-over-budget"
)

// Finding is one thing the analysis says about the design.
type Finding struct {
	Rule     string   `json:"rule"`
	Severity Severity `json:"severity"`
	// Subject is what the finding is about: "orders → payments", a route, an event.
	Subject string `json:"subject"`
	// Key is the configuration key to change, and Line where it is (0 when the
	// key is not written in the file: a default applies).
	Key  string `json:"key,omitempty"`
	Line int    `json:"line,omitempty"`
	// Message says what is wrong, with the figures; Reason why it matters.
	Message string `json:"message"`
	Reason  string `json:"reason"`
}

// Saga is a saga a service runs, as its code describes it.
type Saga struct {
	Service, Name string
	Steps         []saga.StepInfo
}

// Input is what is analysed.
type Input struct {
	Config *config.Config
	// Sagas are the sagas the services' code defines.
	Sagas []Saga
	// Rate is the requests per second entering each entry point, for the retry
	// budgets [the declared load's rate, else 10].
	Rate float64
}

// Report is the analysis of one configuration.
type Report struct {
	Source string `json:"source"`
	// Rate is the entry rate the budgeted figures assume, requests per second.
	Rate     float64   `json:"rate"`
	Findings []Finding `json:"findings"`
	// Paths are the call paths from each entry point to a leaf, with the attempts
	// each hop makes when the leaf fails.
	Paths []Path `json:"paths"`
	// Routes are the gateway's routes with the deadline each hop inherits.
	Routes []RouteBudget `json:"routes,omitempty"`
}

// Errors counts the findings of severity Error.
func (r Report) Errors() int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == Error {
			n++
		}
	}
	return n
}

// Analyze analyses in.Config.
func Analyze(in Input) Report {
	cfg := in.Config
	rate := in.Rate
	if rate <= 0 {
		rate = 10
		if cfg.Load != nil && cfg.Load.Rate > 0 {
			rate = cfg.Load.Rate
		}
	}
	a := &analyzer{cfg: cfg, rate: rate, sagas: in.Sagas}
	a.timeouts()
	a.amplification()
	a.routeBudgets()
	a.breakers()
	a.events()
	a.compensations()
	a.publicRoutes()
	a.fanOut()
	slices.SortStableFunc(a.findings, func(x, y Finding) int {
		return cmp.Or(cmp.Compare(rank(x.Severity), rank(y.Severity)), cmp.Compare(x.Rule, y.Rule), cmp.Compare(x.Subject, y.Subject))
	})
	return Report{Source: cfg.Source, Rate: rate, Findings: a.findings, Paths: a.paths, Routes: a.routes}
}

func rank(s Severity) int {
	switch s {
	case Error:
		return 0
	case Warning:
		return 1
	}
	return 2
}

type analyzer struct {
	cfg      *config.Config
	rate     float64
	sagas    []Saga
	findings []Finding
	paths    []Path
	routes   []RouteBudget
}

func (a *analyzer) add(rule string, sev Severity, subject, key, reason, format string, args ...any) {
	f := Finding{Rule: rule, Severity: sev, Subject: subject, Key: key, Reason: reason, Message: fmt.Sprintf(format, args...)}
	if key != "" {
		f.Line = a.cfg.Errorf(key, "").Line
	}
	a.findings = append(a.findings, f)
}

// edge is one declared synchronous call, with the policy the platform applies.
type edge struct {
	from, to string
	policy   resilience.Config
	key      string // the dependency's key in the file
	replicas int    // of the caller: each has its own retry budget
}

// policies lists each declared policy of process p once, with the callees it
// governs: the gateway's own policy governs the calls to every route's service.
func (a *analyzer) policies(p *config.Service) []edge {
	var out []edge
	for _, e := range a.edges(p) {
		if i := slices.IndexFunc(out, func(o edge) bool { return o.key == e.key }); i >= 0 {
			out[i].to += ", " + e.to
			continue
		}
		out = append(out, e)
	}
	return out
}

// edges lists the calls from process p, by callee.
func (a *analyzer) edges(p *config.Service) []edge {
	var out []edge
	for _, to := range slices.Sorted(maps.Keys(p.Dependencies)) {
		key := "services." + p.Name + ".dependencies." + to
		if p.Name == config.GatewayName {
			key = "gateway.dependencies." + to
			if _, own := a.cfg.Gateway.Dependencies[to]; !own {
				key = "gateway"
			}
		}
		out = append(out, edge{from: p.Name, to: to, policy: Policy(p.Dependencies[to].Policy), key: key, replicas: max(p.Replicas, 1)})
	}
	return out
}

// policyKey names a policy field of the edge in the file.
func (e edge) policyKey(field string) string {
	if e.key == "gateway" {
		return "gateway.policy." + field
	}
	return e.key + ".policy." + field
}

// Policy is the resilience policy a declared policy amounts to, defaults applied.
func Policy(p config.Policy) resilience.Config { return platform.PolicyConfig(p).WithDefaults() }

// Retrying is how long a call under p may take when every attempt times out:
// the per-try timeouts and the backoff bounds between them, without the overall
// timeout's cut.
func Retrying(p resilience.Config) time.Duration {
	d := time.Duration(p.MaxAttempts) * p.TryTimeout
	for k := 1; k < p.MaxAttempts; k++ {
		d += backoff(p, k)
	}
	return d
}

// fitting is how many tries, each timing out, fit in full in p's overall timeout.
func fitting(p resilience.Config) int {
	n := 0
	for k := 1; k <= p.MaxAttempts; k++ {
		q := p
		q.MaxAttempts = k
		if Retrying(q) > p.Timeout {
			break
		}
		n = k
	}
	return n
}

// Worst is the longest a call under p takes: Retrying, cut by the overall timeout.
func Worst(p resilience.Config) time.Duration { return min(Retrying(p), p.Timeout) }

// backoff is the bound of the delay before retry k (1-based), as the stack draws it.
func backoff(p resilience.Config, k int) time.Duration {
	b := p.Backoff
	for range k - 1 {
		b *= 2
		if b >= p.MaxBackoff {
			return p.MaxBackoff
		}
	}
	return min(b, p.MaxBackoff)
}

// own is the longest service s may take to answer one call, as far as the
// declaration says: for a simulation, its slowest endpoint's p99 and the worst
// case of the calls it makes in order (parallel ones at once); for code, the
// worst case of its slowest dependency (it makes at least that call).
func (a *analyzer) own(name string) time.Duration {
	s := a.cfg.Process(name)
	if s == nil {
		return 0
	}
	policy := func(to string) resilience.Config { return Policy(s.Dependencies[to].Policy) }
	if s.Simulated() {
		var longest time.Duration
		for _, ep := range s.Simulate.Endpoints {
			if k, _, _, err := config.ParseEndpoint(ep.Endpoint); err != nil || k == config.Stream {
				continue
			}
			d := ep.Latency.P99
			for _, c := range ep.Calls {
				if s.Dependencies[c.To] == nil {
					continue
				}
				w := Worst(policy(c.To))
				if c.Parallel {
					d += w
				} else {
					d += time.Duration(max(c.Count, 1)) * w
				}
			}
			longest = max(longest, d)
		}
		return longest
	}
	var longest time.Duration
	for to := range s.Dependencies {
		longest = max(longest, Worst(policy(to)))
	}
	return longest
}

// timeouts finds, on every edge, a caller that gives up before its callee could
// answer under the callee's own policies, and retries that cannot fit the
// overall timeout.
func (a *analyzer) timeouts() {
	for _, p := range a.cfg.Processes() {
		for _, e := range a.edges(p) {
			subject := e.from + " → " + e.to
			need := a.own(e.to)
			if e.policy.TryTimeout < need {
				a.add(RuleTimeoutInversion, Error, subject, e.policyKey("try_timeout"),
					"the callee's retries past the caller's deadline are wasted work, and the caller's own retry starts while the callee still works on the first",
					"%s gives each try to %s %s, but %s may take up to %s under its own policies (%s)",
					e.from, e.to, e.policy.TryTimeout, e.to, need, a.why(e.to))
			}
		}
		for _, e := range a.policies(p) {
			if r := Retrying(e.policy); r > e.policy.Timeout && e.policy.MaxAttempts > 1 {
				a.add(RuleRetriesExceedTimeout, Warning, e.from+" → "+e.to, e.policyKey("timeout"),
					"when every try times out the last attempts never get their per-try timeout: the retry policy promises more than the deadline allows",
					"%d tries of %s with backoff take up to %s, beyond the overall timeout %s: only %d of them fit in full",
					e.policy.MaxAttempts, e.policy.TryTimeout, r, e.policy.Timeout, fitting(e.policy))
			}
		}
	}
}

// why explains own(name).
func (a *analyzer) why(name string) string {
	s := a.cfg.Process(name)
	if s.Simulated() {
		return "its simulated latency and the calls it makes"
	}
	var slowest string
	var longest time.Duration
	for _, to := range slices.Sorted(maps.Keys(s.Dependencies)) {
		if w := Worst(Policy(s.Dependencies[to].Policy)); w > longest {
			slowest, longest = to, w
		}
	}
	p := Policy(s.Dependencies[slowest].Policy)
	return fmt.Sprintf("%d tries of %s toward %s, within %s", p.MaxAttempts, p.TryTimeout, slowest, p.Timeout)
}
