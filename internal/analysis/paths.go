package analysis

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/config"
)

// Hop is one call of a path when the path's leaf fails every time.
type Hop struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Calls the caller makes per request it serves.
	Calls int `json:"calls"`
	// MaxAttempts of the caller's policy (retries included).
	MaxAttempts int `json:"max_attempts"`
	// Attempts per call the retry budget lets through at the path's rate.
	Attempts float64 `json:"attempts"`
	// Rate is the attempts per second that reach To.
	Rate float64 `json:"rate"`
}

// Path is a chain of calls from an entry point to a leaf.
type Path struct {
	Hops []Hop `json:"hops"`
	// Worst is how many attempts reach the leaf per request entering the path
	// with no retry budget: the product of every hop's calls × max attempts.
	Worst int `json:"worst"`
	// Budgeted is the same with the retry budgets at the report's rate.
	Budgeted float64 `json:"budgeted"`
}

// String writes the path as "gateway → orders → payments".
func (p Path) String() string {
	names := []string{p.Hops[0].From}
	for _, h := range p.Hops {
		names = append(names, h.To)
	}
	return strings.Join(names, " → ")
}

// Leaf is the path's last service.
func (p Path) Leaf() string { return p.Hops[len(p.Hops)-1].To }

// entries are where requests enter: the gateway, and every service nobody calls.
func (a *analyzer) entries() []*config.Service {
	var out []*config.Service
	for _, p := range a.cfg.Processes() {
		if len(a.cfg.Callers(p.Name)) == 0 && len(p.Dependencies) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// callsTo is how many calls to dependency to one request to s makes at most: the
// simulation's count for the endpoint calling it most, else one.
func callsTo(s *config.Service, to string) int {
	if !s.Simulated() {
		return 1
	}
	most := 0
	count := func(calls []*config.Call) int {
		n := 0
		for _, c := range calls {
			if c.To == to {
				n += max(c.Count, 1)
			}
		}
		return n
	}
	for _, ep := range s.Simulate.Endpoints {
		most = max(most, count(ep.Calls))
	}
	for _, h := range s.Simulate.Handlers {
		most = max(most, count(h.Calls))
	}
	return max(most, 1)
}

// Attempts is how many attempts per call a policy's retry budget lets through
// when every attempt fails and calls arrive at rate per second at each of
// replicas callers: 1 + min(max_attempts - 1, ratio + replicas × allowance / rate).
func Attempts(maxAttempts int, ratio float64, perSecond, replicas int, rate float64) float64 {
	retries := float64(maxAttempts - 1)
	if rate > 0 {
		retries = math.Min(retries, ratio+float64(replicas*perSecond)/rate)
	}
	return 1 + retries
}

// amplification walks every path from every entry point.
func (a *analyzer) amplification() {
	var walk func(s *config.Service, rate float64, hops []Hop, worst int, budgeted float64)
	walk = func(s *config.Service, rate float64, hops []Hop, worst int, budgeted float64) {
		edges := a.edges(s)
		if len(edges) == 0 && len(hops) > 0 {
			a.paths = append(a.paths, Path{Hops: slices.Clone(hops), Worst: worst, Budgeted: budgeted})
			return
		}
		for _, e := range edges {
			calls := callsTo(s, e.to)
			callRate := rate * float64(calls)
			att := Attempts(e.policy.MaxAttempts, e.policy.BudgetRatio, e.policy.BudgetPerSecond, e.replicas, callRate)
			h := Hop{From: s.Name, To: e.to, Calls: calls, MaxAttempts: e.policy.MaxAttempts, Attempts: att, Rate: callRate * att}
			callee := a.cfg.Process(e.to)
			if callee == nil || slices.ContainsFunc(hops, func(x Hop) bool { return x.From == e.to }) {
				continue
			}
			walk(callee, h.Rate, append(hops, h), worst*calls*e.policy.MaxAttempts, budgeted*float64(calls)*att)
		}
	}
	for _, entry := range a.entries() {
		walk(entry, a.rate, nil, 1, 1)
	}
	for _, p := range a.paths {
		if len(p.Hops) < 2 {
			continue
		}
		single := 0
		for _, h := range p.Hops {
			single = max(single, h.Calls*h.MaxAttempts)
		}
		if p.Budgeted > float64(single)+0.05 {
			last := p.Hops[len(p.Hops)-1]
			a.add(RuleRetryAmplification, Warning, p.String(), "services."+last.From+".dependencies."+last.To+".policy.retry",
				"retries at several layers multiply: when the leaf fails, every layer above it retries the failures of the layer below, and the leaf receives the product",
				"when %s fails, each request entering at %s reaches it %.2g times at %g req/s (%d times without retry budgets), more than any one layer's %d",
				p.Leaf(), p.Hops[0].From, p.Budgeted, a.rate, p.Worst, single)
		}
	}
}

// HopBudget is one hop of a route with the time it may take.
type HopBudget struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Timeout is the hop's declared overall timeout, TryTimeout its per-try one.
	Timeout    time.Duration `json:"timeout"`
	TryTimeout time.Duration `json:"try_timeout"`
	// Left is the most the route's deadline can leave the callee on arrival: the
	// least of the caller's arrival budget, this hop's timeout and its per-try
	// timeout.
	Left time.Duration `json:"left"`
}

// RouteBudget is a gateway route's deadline divided among its hops.
type RouteBudget struct {
	Prefix  string        `json:"prefix"`
	Timeout time.Duration `json:"timeout"`
	// Paths are the chains of hops below the route, each from the gateway to a leaf.
	Paths [][]HopBudget `json:"paths"`
}

// routeBudgets divides each route's deadline among the hops below it.
func (a *analyzer) routeBudgets() {
	g := a.cfg.Gateway
	gw := a.cfg.GatewayService()
	if g == nil || gw == nil {
		return
	}
	for i, r := range g.Routes {
		if r.Service == "" || r.Streaming {
			continue
		}
		timeout := r.Timeout.Or(30 * time.Second)
		rb := RouteBudget{Prefix: r.Prefix, Timeout: timeout}
		var walk func(from string, p edgePolicy, left time.Duration, chain []HopBudget)
		walk = func(from string, e edgePolicy, left time.Duration, chain []HopBudget) {
			arrive := min(left, e.timeout, e.try)
			chain = append(chain, HopBudget{From: from, To: e.to, Timeout: e.timeout, TryTimeout: e.try, Left: arrive})
			if e.timeout > left && from != config.GatewayName {
				a.add(RuleDeadlineBudget, Info, r.Prefix+": "+from+" → "+e.to, e.key+".policy.timeout",
					"the deadline travels with the call: the callee's own timeout is cut to what is left of the route's",
					"%s's timeout toward %s is %s, but on %s at most %s is left when %s calls",
					from, e.to, e.timeout, r.Prefix, left, from)
			}
			callee := a.cfg.Process(e.to)
			next := a.edges(callee)
			if len(next) == 0 || len(chain) > 8 {
				rb.Paths = append(rb.Paths, slices.Clone(chain))
				return
			}
			for _, n := range next {
				walk(e.to, edgePolicy{to: n.to, timeout: n.policy.Timeout, try: n.policy.TryTimeout, key: n.key}, arrive, chain)
			}
		}
		p := Policy(gw.Dependencies[r.Service].Policy)
		walk(config.GatewayName, edgePolicy{to: r.Service, timeout: p.Timeout, try: p.TryTimeout, key: fmt.Sprintf("gateway.routes.%d", i)}, timeout, nil)
		a.routes = append(a.routes, rb)
		if need := a.own(r.Service); min(timeout, p.TryTimeout) < need {
			a.add(RuleTimeoutInversion, Error, r.Prefix+": gateway → "+r.Service, fmt.Sprintf("gateway.routes.%d.timeout", i),
				"the gateway answers 504 while the service still works, and a retry by the client doubles the work",
				"the route gives %s %s per try, but %s may take up to %s under its own policies (%s)",
				r.Service, min(timeout, p.TryTimeout), r.Service, need, a.why(r.Service))
		}
	}
}

type edgePolicy struct {
	to           string
	timeout, try time.Duration
	key          string
}
