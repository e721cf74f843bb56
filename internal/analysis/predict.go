package analysis

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/traffic"
	"github.com/switchyard/switchyard/observe"
	"github.com/switchyard/switchyard/resilience"
)

// Sample is one observed attempt (or call): how long it took and whether it failed.
type Sample struct {
	Took   time.Duration
	Failed bool
}

// Observed is the traffic recorded on one edge: the caller's calls (client spans)
// and the attempts that reached the callee (its server spans below them).
type Observed struct {
	From, To string
	Calls    []Sample
	// Attempts are the callee's answers, each with the caller's overhead added
	// (the median gap between a one-attempt call and its answer), so that they
	// stand for an attempt as the caller times it.
	Attempts []Sample
	// Retries counts the attempts beyond the first of each call.
	Retries int
	// Window is the time from the first call to the last.
	Window time.Duration
	// RetryGap is the caller's own time between a failed attempt and the next,
	// beyond the backoff: set by Calibrate.
	RetryGap time.Duration

	// retried are the calls that made several attempts: the time each spent
	// beyond its attempts, and how many it made.
	retried []retried
}

type retried struct {
	beyond   time.Duration
	attempts int
}

// Calibrate estimates RetryGap from the calls that retried, knowing the policy
// they ran under: what they spent beyond their attempts, less the backoff the
// policy draws on average, shared among their retries.
func (o *Observed) Calibrate(recorded resilience.Config) {
	recorded = recorded.WithDefaults()
	var sum time.Duration
	var retries int
	for _, r := range o.retried {
		gap := r.beyond
		for k := 1; k < r.attempts; k++ {
			gap -= backoff(recorded, k) / 2
		}
		sum += gap
		retries += r.attempts - 1
	}
	if retries > 0 {
		o.RetryGap = max(sum/time.Duration(retries), 0)
	}
}

// Rate is the calls per second the edge carried.
func (o Observed) Rate() float64 {
	if o.Window <= 0 {
		return 0
	}
	return float64(len(o.Calls)) / o.Window.Seconds()
}

// Observe groups recorded spans by edge.
func Observe(spans []observe.Span) []Observed {
	children := map[string][]*observe.Span{}
	for i := range spans {
		if s := &spans[i]; s.Kind == observe.Server && s.ParentID != "" {
			children[s.ParentID] = append(children[s.ParentID], s)
		}
	}
	type acc struct {
		Observed
		first, last time.Time
		gaps        []time.Duration
		answers     []Sample
	}
	edges := map[[2]string]*acc{}
	for i := range spans {
		c := &spans[i]
		peer := c.Peer()
		if c.Kind != observe.Client || peer == "" {
			continue
		}
		k := [2]string{c.Service, peer}
		e := edges[k]
		if e == nil {
			e = &acc{Observed: Observed{From: c.Service, To: peer}, first: c.Start, last: c.Start}
			edges[k] = e
		}
		e.Calls = append(e.Calls, Sample{Took: c.Duration(), Failed: c.Error})
		e.first, e.last = minTime(e.first, c.Start), maxTime(e.last, c.Start)
		answers := children[c.SpanID]
		e.Retries += max(len(answers)-1, 0)
		for _, a := range answers {
			e.answers = append(e.answers, Sample{Took: a.Duration(), Failed: a.Error})
		}
		if len(answers) == 1 {
			e.gaps = append(e.gaps, c.Duration()-answers[0].Duration())
		}
		if len(answers) > 1 {
			beyond := c.Duration()
			for _, a := range answers {
				beyond -= a.Duration()
			}
			e.retried = append(e.retried, retried{beyond: beyond, attempts: len(answers)})
		}
	}
	var out []Observed
	for _, e := range edges {
		overhead := max(traffic.Percentile(e.gaps, 0.5), 0)
		for i := range e.retried {
			e.retried[i].beyond -= time.Duration(e.retried[i].attempts) * overhead
		}
		for _, a := range e.answers {
			e.Attempts = append(e.Attempts, Sample{Took: a.Took + overhead, Failed: a.Failed})
		}
		e.Window = e.last.Sub(e.first)
		out = append(out, e.Observed)
	}
	slices.SortFunc(out, func(a, b Observed) int { return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To)) })
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Outcome is how calls on an edge fare: the share that succeeds, their 99th
// percentile latency, and the attempts each makes.
type Outcome struct {
	Success  float64       `json:"success"`
	P99      time.Duration `json:"p99"`
	Attempts float64       `json:"attempts"`
	// BreakerOpens says that the share of attempts failing reaches the policy's
	// breaker ratio: the breaker would open, and the calls it then refuses are not
	// in the forecast.
	BreakerOpens bool `json:"breaker_opens,omitempty"`
}

// Measured is the outcome the recorded calls had.
func (o Observed) Measured() Outcome {
	var ok int
	durations := make([]time.Duration, len(o.Calls))
	for i, c := range o.Calls {
		durations[i] = c.Took
		if !c.Failed {
			ok++
		}
	}
	n := max(len(o.Calls), 1)
	return Outcome{Success: float64(ok) / float64(n), P99: traffic.Percentile(durations, 0.99),
		Attempts: float64(len(o.Calls)+o.Retries) / float64(n)}
}

// Predict forecasts the edge's outcome under policy p at the recorded rate, with
// replicas callers each holding its own retry budget: calls are replayed by drawing
// attempts from the recorded ones — an attempt slower than the per-try timeout
// fails at it, a failed one is retried after a backoff drawn as the stack draws it
// (and the caller's RetryGap) while attempts and the overall timeout remain, and a retry is sent only as often
// as the retry budget allows at that rate. The draw is seeded: the same input
// gives the same forecast.
func Predict(o Observed, p resilience.Config, replicas int) Outcome {
	p = p.WithDefaults()
	if len(o.Attempts) == 0 {
		return Outcome{}
	}
	const calls = 20000
	run := func(allow float64) (Outcome, float64) {
		rnd := rand.New(rand.NewPCG(1, 2))
		durations := make([]time.Duration, calls)
		ok, attempts, failures := 0, 0, 0
		for i := range calls {
			var took time.Duration
			for k := 1; ; k++ {
				a := o.Attempts[rnd.IntN(len(o.Attempts))]
				attempts++
				d, failed := a.Took, a.Failed
				if d > p.TryTimeout {
					d, failed = p.TryTimeout, true
				}
				if took+d >= p.Timeout {
					took = p.Timeout
					failures++
					break
				}
				took += d
				if failed {
					failures++
				} else {
					ok++
					break
				}
				if k == p.MaxAttempts || rnd.Float64() >= allow {
					break
				}
				took += o.RetryGap + time.Duration(rnd.Int64N(int64(backoff(p, k))+1))
				if took >= p.Timeout {
					took = p.Timeout
					break
				}
			}
			durations[i] = took
		}
		failing := float64(failures) / float64(attempts)
		opens := !p.NoBreaker && p.ConsecutiveFailures == 0 && failing >= p.FailureRatio
		return Outcome{Success: float64(ok) / calls, P99: traffic.Percentile(durations, 0.99), Attempts: float64(attempts) / calls, BreakerOpens: opens},
			float64(attempts-calls) / calls
	}
	out, retries := run(1)
	// The budget lets ratio × calls + replicas × allowance retries a second through.
	if rate := o.Rate(); rate > 0 && retries > 0 {
		allowed := p.BudgetRatio + float64(max(replicas, 1)*p.BudgetPerSecond)/rate
		if allowed < retries {
			out, _ = run(math.Max(allowed/retries, 0))
		}
	}
	return out
}

// String writes the outcome as "97.3% 41ms ×1.31".
func (o Outcome) String() string {
	s := fmt.Sprintf("%.1f%% %s ×%.2f", 100*o.Success, o.P99.Round(100*time.Microsecond), o.Attempts)
	if o.BreakerOpens {
		s += " (breaker opens)"
	}
	return s
}

// Forecast is one edge's recorded outcome beside the forecasts under the declared
// policy and, when a change is analysed, under the changed one.
type Forecast struct {
	From     string   `json:"from"`
	To       string   `json:"to"`
	Calls    int      `json:"calls"`
	Measured Outcome  `json:"measured"`
	Declared Outcome  `json:"declared"`
	Changed  *Outcome `json:"changed,omitempty"`
	// ExtraLoad is the change's added (or, negative, removed) attempts per second
	// on the callee at the recorded rate.
	ExtraLoad float64 `json:"extra_load,omitempty"`
}

// Forecasts forecasts every recorded edge that cfg declares, under its declared
// policy and, when changed is not nil, under changed's.
func Forecasts(cfg, changed *config.Config, observed []Observed) []Forecast {
	var out []Forecast
	for _, o := range observed {
		from := cfg.Process(o.From)
		if from == nil || from.Dependencies[o.To] == nil || len(o.Calls) == 0 {
			continue
		}
		declared := Policy(from.Dependencies[o.To].Policy)
		o.Calibrate(declared)
		f := Forecast{From: o.From, To: o.To, Calls: len(o.Calls), Measured: o.Measured(),
			Declared: Predict(o, declared, from.Replicas)}
		if changed != nil {
			if p := changed.Process(o.From); p != nil && p.Dependencies[o.To] != nil {
				c := Predict(o, Policy(p.Dependencies[o.To].Policy), p.Replicas)
				f.Changed = &c
				f.ExtraLoad = (c.Attempts - f.Declared.Attempts) * o.Rate()
			}
		}
		out = append(out, f)
	}
	return out
}
