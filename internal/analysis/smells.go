package analysis

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/saga"
)

// breakers finds synchronous dependencies without a circuit breaker.
func (a *analyzer) breakers() {
	for _, p := range a.cfg.Processes() {
		for _, e := range a.policies(p) {
			if e.policy.NoBreaker {
				a.add(RuleNoBreaker, Warning, e.from+" → "+e.to, e.policyKey("breaker.disabled"),
					"without a breaker a failing callee keeps receiving every call and retry, and the caller's requests wait on it until their timeouts",
					"%s calls %s with its breaker disabled", e.from, e.to)
			}
		}
	}
}

// events finds cycles through events, events nobody consumes and subscriptions
// nobody publishes.
func (a *analyzer) events() {
	publishers, consumers := map[string][]string{}, map[string][]string{}
	for _, name := range slices.Sorted(maps.Keys(a.cfg.Services)) {
		s := a.cfg.Services[name]
		for _, t := range s.Publishes {
			publishers[t] = append(publishers[t], name)
		}
		for _, t := range s.Subscriptions {
			consumers[t] = append(consumers[t], name)
		}
	}
	for _, t := range slices.Sorted(maps.Keys(publishers)) {
		if len(consumers[t]) == 0 {
			p := publishers[t][0]
			a.add(RuleUnconsumedEvent, Info, t, fmt.Sprintf("services.%s.publishes.%d", p, slices.Index(a.cfg.Services[p].Publishes, t)),
				"an event nobody reads is written, relayed and kept for nothing — or a consumer is missing from the design",
				"%s publishes %s and no service subscribes to it", strings.Join(publishers[t], ", "), t)
		}
	}
	for _, t := range slices.Sorted(maps.Keys(consumers)) {
		if len(publishers[t]) == 0 {
			c := consumers[t][0]
			a.add(RuleUnpublishedSubscription, Error, t, fmt.Sprintf("services.%s.subscriptions.%d", c, slices.Index(a.cfg.Services[c].Subscriptions, t)),
				"the consumer waits for events that never come",
				"%s subscribes to %s and no service publishes it", strings.Join(consumers[t], ", "), t)
		}
	}

	// A service reaches another through an event when it publishes a type the other
	// consumes; a cycle comes back to where it started.
	next := map[string][]string{}
	via := map[[2]string]string{}
	for t, ps := range publishers {
		for _, p := range ps {
			for _, c := range consumers[t] {
				if !slices.Contains(next[p], c) {
					next[p] = append(next[p], c)
					via[[2]string{p, c}] = t
				}
			}
		}
	}
	for _, n := range next {
		slices.Sort(n)
	}
	seen := map[string]bool{}
	for _, start := range slices.Sorted(maps.Keys(next)) {
		cycle := findCycle(start, next)
		if cycle == nil {
			continue
		}
		key := canonical(cycle)
		if seen[key] {
			continue
		}
		seen[key] = true
		var steps []string
		for i, s := range cycle {
			steps = append(steps, fmt.Sprintf("%s —%s→ %s", s, via[[2]string{s, cycle[(i+1)%len(cycle)]}], cycle[(i+1)%len(cycle)]))
		}
		a.add(RuleEventCycle, Warning, strings.Join(append(cycle, cycle[0]), " → "), "services."+cycle[0]+".publishes",
			"events that lead back to their publisher can loop without end; each handler must stop the chain (by state, or a counter) and say so",
			"events go round: %s", strings.Join(steps, ", "))
	}
}

// findCycle returns the shortest cycle through start, or nil.
func findCycle(start string, next map[string][]string) []string {
	prev := map[string]string{}
	queue := []string{start}
	visited := map[string]bool{start: true}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, m := range next[n] {
			if m == start {
				cycle := []string{n}
				for x := n; x != start; {
					x = prev[x]
					cycle = append(cycle, x)
				}
				slices.Reverse(cycle)
				return cycle
			}
			if !visited[m] {
				visited[m], prev[m] = true, n
				queue = append(queue, m)
			}
		}
	}
	return nil
}

// canonical names a cycle whatever service it is written from.
func canonical(cycle []string) string {
	i := slices.Index(cycle, slices.Min(cycle))
	return strings.Join(append(slices.Clone(cycle[i:]), cycle[:i]...), ",")
}

// compensations finds saga steps before the pivot (or, with no pivot, before the
// last step) that nothing undoes.
func (a *analyzer) compensations() {
	for _, sg := range a.sagas {
		pivot := slices.IndexFunc(sg.Steps, func(s saga.StepInfo) bool { return s.Pivot })
		if pivot < 0 {
			pivot = len(sg.Steps) - 1
		}
		for i, st := range sg.Steps[:max(pivot, 0)] {
			if !st.Compensated {
				a.add(RuleUncompensatedStep, Warning, fmt.Sprintf("%s saga %s, step %s", sg.Service, sg.Name, st.Name), "",
					"when a later step fails the saga compensates backwards; a step with no undo leaves its effect in place (give it one, or move it past the pivot)",
					"step %d of %d, %s, comes before the pivot and has no compensation", i+1, len(sg.Steps), st.Name)
			}
		}
	}
}

// publicRoutes finds routes open to anonymous clients with no rate limit.
func (a *analyzer) publicRoutes() {
	if a.cfg.Gateway == nil {
		return
	}
	for i, r := range a.cfg.Gateway.Routes {
		if (r.Auth == "none" || r.Auth == "optional") && r.RateLimit == nil {
			a.add(RuleUnlimitedPublicRoute, Warning, r.Prefix, fmt.Sprintf("gateway.routes.%d", i),
				"anyone can call it as often as they like: a scraper or a loop in a client takes the service (and the error budget) with it",
				"%s is open to clients without a token (auth: %s) and has no rate_limit", r.Prefix, r.Auth)
		}
	}
}

// fanOut finds routes whose simulated fan-out fails more often than the route's
// objective allows.
func (a *analyzer) fanOut() {
	g := a.cfg.Gateway
	if g == nil {
		return
	}
	gw := a.cfg.GatewayService()
	for i, r := range g.Routes {
		svc := a.cfg.Service(r.Service)
		if !svc.Simulated() {
			continue
		}
		objective := r.Objective
		if objective == 0 {
			objective = 0.999
		}
		upstream := r.Path
		if upstream == "" {
			upstream = strings.TrimPrefix(r.Prefix, "/api")
		}
		p := Policy(gw.Dependencies[r.Service].Policy)
		for _, ep := range svc.Simulate.Endpoints {
			kind, _, path, err := config.ParseEndpoint(ep.Endpoint)
			if err != nil || kind == config.Stream || !strings.HasPrefix(path, upstream) {
				continue
			}
			fail := 1 - a.success(svc, ep, 0)
			// The gateway retries the endpoint's failures too.
			fail = math.Pow(fail, float64(p.MaxAttempts))
			if fail > 1-objective {
				a.add(RuleFanOutOverBudget, Warning, r.Prefix+": "+ep.Endpoint, fmt.Sprintf("gateway.routes.%d", i),
					"each call an endpoint cannot do without multiplies its chance of failing; past the route's error budget the objective is lost before any incident",
					"%s on %s fails %.3g%% of requests by its declared error rates (%d calls it needs, retries counted), over the route's budget of %.3g%% (objective %g)",
					ep.Endpoint, r.Service, 100*fail, a.required(svc, ep), 100*(1-objective), objective)
			}
		}
	}
}

// success is the probability a simulated endpoint answers without error: its
// own error rate and every call it cannot do without, each call succeeding
// unless all its attempts fail.
func (a *analyzer) success(s *config.Service, ep *config.Endpoint, depth int) float64 {
	p := 1 - ep.ErrorRate
	if depth > 8 {
		return p
	}
	for _, c := range ep.Calls {
		if c.Optional || s.Dependencies[c.To] == nil {
			continue
		}
		callee := a.cfg.Service(c.To)
		attempt := 1.0
		if callee.Simulated() {
			if target := callee.Simulate.Endpoint(c.Endpoint); target != nil {
				attempt = a.success(callee, target, depth+1)
			}
		}
		pol := Policy(s.Dependencies[c.To].Policy)
		call := 1 - math.Pow(1-attempt, float64(pol.MaxAttempts))
		made := 1.0
		if c.Probability != nil {
			made = *c.Probability
		}
		p *= math.Pow(made*call+(1-made), float64(max(c.Count, 1)))
	}
	return p
}

// required counts the calls an endpoint cannot do without.
func (a *analyzer) required(s *config.Service, ep *config.Endpoint) int {
	n := 0
	for _, c := range ep.Calls {
		if !c.Optional && s.Dependencies[c.To] != nil {
			n += max(c.Count, 1)
		}
	}
	return n
}
