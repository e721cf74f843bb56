// Package resilience is the policy stack every outgoing call of a dependency goes
// through, built on failsafe-go. From the outside in:
//
//		overall deadline → retries (with a budget) → [hedge] → circuit breaker → bulkhead → per-try timeout → the attempt
//
//	  - The overall deadline bounds the whole call, retries included; a caller's
//	    earlier deadline wins.
//	  - Retries use exponential backoff with full jitter, honour Retry-After on 429 and
//	    503, and happen only for calls that are safe to repeat: idempotent HTTP methods,
//	    or requests carrying an Idempotency-Key. Retries stop when the breaker is open,
//	    the bulkhead is full, or the retry budget is spent.
//	  - The retry budget caps retries at a share of calls plus a small steady
//	    allowance per second (20 % + 10/s by default), so a failing dependency sees at
//	    most that much extra load however many layers retry. failsafe-go's own budget
//	    bounds concurrent retries instead; [Budget] gives it the rate semantics through
//	    the same hook.
//	  - The circuit breaker opens on a failure ratio over a window, or on consecutive
//	    failures; while open, calls fail at once with an Unavailable problem carrying
//	    Retry-After; after OpenFor it lets probes through.
//	  - The bulkhead caps calls in flight; beyond it, calls are refused at once (or after
//	    MaxWait), so one hung dependency cannot take every goroutine with it.
//	  - Hedging, for idempotent reads when configured, sends a second attempt after a
//	    delay and keeps the first answer.
//
// What counts as a failure: transport errors, 5xx except 501, 429, and gRPC
// UNAVAILABLE/RESOURCE_EXHAUSTED/DEADLINE_EXCEEDED signalled in headers. 4xx answers
// are the caller's problem, not the dependency's. A 429 or 503 that carries
// Retry-After is the dependency shedding load — alive, and saying when to come
// back: it is retried after that (where retries are allowed) but not held against
// the dependency by the breaker, which would otherwise turn a partial refusal into
// a total one (Finagle's failure accrual ignores its "nacks" alike).
//
// Every decision is visible: a Metrics records calls, retries, breaker state,
// bulkhead use and rejections per dependency, and each decision is added as an event
// to the call's span ("retry 2", "breaker open", "bulkhead full", "budget exhausted").
package resilience

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/hedgepolicy"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/telemetry"
)

// Config is the policy of one dependency. Zero fields take the default in brackets.
type Config struct {
	// Dependency names the service called, for errors, metrics and spans. Required.
	Dependency string
	// Timeout is the overall deadline of a call, retries included [2s].
	Timeout time.Duration
	// TryTimeout bounds each attempt [1s]. An attempt past its deadline is ended
	// within a tick of it: 1/256 of TryTimeout, between 0.5 ms and 5 ms.
	TryTimeout time.Duration
	// MaxAttempts counts the first try; 1 disables retries [3].
	MaxAttempts int
	// Backoff is the upper bound of the first retry's delay [50ms]; it doubles with
	// each retry, and the delay is drawn uniformly below it (full jitter).
	Backoff time.Duration
	// MaxBackoff caps the backoff [1s].
	MaxBackoff time.Duration
	// BudgetRatio of calls that may be retries [0.2].
	BudgetRatio float64
	// BudgetPerSecond retries allowed beyond the ratio [10].
	BudgetPerSecond int
	// FailureRatio opens the breaker when this share of the calls in Window fail, once
	// MinCalls calls were made [0.5 of 10 calls in 10s]. Ignored when
	// ConsecutiveFailures is set.
	FailureRatio float64
	// MinCalls is how many calls Window needs before FailureRatio counts [10].
	MinCalls int
	// Window over which FailureRatio is measured [10s].
	Window time.Duration
	// ConsecutiveFailures opens the breaker after this many failures in a row.
	ConsecutiveFailures int
	// OpenFor is how long the breaker stays open before probing [5s].
	OpenFor time.Duration
	// HalfOpenProbes must all succeed to close the breaker [1].
	HalfOpenProbes int
	// NoBreaker removes the breaker: calls reach the dependency however often it
	// fails (the other breaker fields are ignored).
	NoBreaker bool
	// MaxConcurrent calls in flight [64].
	MaxConcurrent int
	// MaxWait for a bulkhead slot before refusing [0: refuse at once].
	MaxWait time.Duration
	// HedgeDelay, when positive, sends a hedged attempt of an idempotent read that has
	// not answered within it.
	HedgeDelay time.Duration
	// MaxHedges per call [1].
	MaxHedges int
	// Fallback, when set, answers a call that failed for good (breaker open, bulkhead
	// full, retries spent, deadline passed) instead of the error.
	Fallback func(req *http.Request, err error) (*http.Response, error)
	// Metrics records the decisions; nil records nothing.
	Metrics *Metrics
}

// WithDefaults returns c with every zero field set to its default: the policy a
// Policy built from c applies.
func (c Config) WithDefaults() Config {
	c.defaults()
	return c
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Timeout, 2*time.Second)
	def(&c.TryTimeout, time.Second)
	def(&c.Backoff, 50*time.Millisecond)
	def(&c.MaxBackoff, time.Second)
	def(&c.Window, 10*time.Second)
	def(&c.OpenFor, 5*time.Second)
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.BudgetRatio <= 0 {
		c.BudgetRatio = 0.2
	}
	if c.BudgetPerSecond <= 0 {
		c.BudgetPerSecond = 10
	}
	if c.FailureRatio <= 0 {
		c.FailureRatio = 0.5
	}
	if c.MinCalls <= 0 {
		c.MinCalls = 10
	}
	if c.HalfOpenProbes <= 0 {
		c.HalfOpenProbes = 1
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = 64
	}
	if c.MaxHedges <= 0 {
		c.MaxHedges = 1
	}
}

// Policy is the assembled stack of one dependency. Share one Policy among every
// call to that dependency: the breaker, bulkhead and budget are its state.
//
// How a call runs: the first attempt takes a fast path through the breaker and the
// bulkhead using failsafe-go's standalone permits (no executor: on a loopback call
// the executor's contexts, timers and goroutines cost more than the policies
// themselves — see bench/RESULTS.md); only an attempt that failed in a way worth
// retrying hands the call to failsafe-go's retry executor, which drives the
// remaining attempts through the same breaker and bulkhead. Hedged reads use the
// executor throughout. The per-try timeout is a deadline on each attempt's context,
// enforced by the policy's own clock of ticks rather than a timer per attempt.
type Policy struct {
	cfg      Config
	m        depMetrics
	breaker  circuitbreaker.CircuitBreaker[*http.Response]
	bulkhead bulkhead.Bulkhead[*http.Response]
	budget   *Budget
	// deadlines ends attempts at their per-try deadlines.
	deadlines *deadlines
	// retrying drives the attempts after a failed first one; hedged serves
	// idempotent reads when hedging is on.
	retrying, hedged failsafe.Executor[*http.Response]
}

// New assembles the stack for cfg.
func New(cfg Config) (*Policy, error) {
	if cfg.Dependency == "" {
		return nil, errors.New("resilience: Dependency is required")
	}
	if cfg.TryTimeout > cfg.Timeout && cfg.Timeout > 0 {
		return nil, fmt.Errorf("resilience: %s: per-try timeout %s exceeds the overall %s", cfg.Dependency, cfg.TryTimeout, cfg.Timeout)
	}
	cfg.defaults()
	m := cfg.Metrics.forDependency(cfg.Dependency)
	p := &Policy{cfg: cfg, m: m, budget: NewBudget(cfg.BudgetRatio, cfg.BudgetPerSecond, nil), deadlines: newDeadlines(cfg.TryTimeout)}

	cb := circuitbreaker.NewBuilder[*http.Response]().
		HandleIf(func(r *http.Response, err error) bool { return failed(r, err) }).
		WithDelay(cfg.OpenFor).
		WithSuccessThreshold(uint(cfg.HalfOpenProbes)).
		OnStateChanged(func(e circuitbreaker.StateChangedEvent) { m.breakerState(e.NewState) })
	switch {
	case cfg.NoBreaker:
		// A breaker that never opens keeps one code path for every call.
		cb = cb.WithFailureThreshold(math.MaxUint32)
	case cfg.ConsecutiveFailures > 0:
		cb = cb.WithFailureThreshold(uint(cfg.ConsecutiveFailures))
	default:
		cb = cb.WithFailureRateThreshold(cfg.FailureRatio, uint(cfg.MinCalls), cfg.Window)
	}
	p.breaker = cb.Build()
	m.breakerState(circuitbreaker.ClosedState)

	p.bulkhead = bulkhead.NewBuilder[*http.Response](uint(cfg.MaxConcurrent)).
		WithMaxWaitTime(cfg.MaxWait).
		OnAcquired(func(failsafe.ExecutionEvent[*http.Response]) { m.bulkheadInUse(1) }).  // executor attempts;
		OnReleased(func(failsafe.ExecutionEvent[*http.Response]) { m.bulkheadInUse(-1) }). // first() counts its own
		Build()

	retry := func(attempts int) retrypolicy.RetryPolicy[*http.Response] {
		return retrypolicy.NewBuilder[*http.Response]().
			HandleIf(func(r *http.Response, err error) bool { return retryable(r, err) }).
			AbortOnErrors(circuitbreaker.ErrOpen, bulkhead.ErrFull, context.Canceled, context.DeadlineExceeded).
			WithMaxAttempts(attempts).
			WithDelayFunc(p.delay).
			WithBudget(retryBudget{p.budget}).
			ReturnLastFailure().
			OnRetryScheduled(func(e failsafe.ExecutionScheduledEvent[*http.Response]) {
				discard(e.LastResult()) // the response we will not return
			}).
			OnRetry(func(e failsafe.ExecutionEvent[*http.Response]) { // sent: the budget allowed it
				m.retry()
				trace.SpanFromContext(e.Context()).AddEvent(fmt.Sprintf("retry %d", e.Retries()+1),
					trace.WithAttributes(attribute.String(telemetry.KeyRetryAfter, describe(e.LastResult(), e.LastError()))))
			}).
			Build()
	}
	if cfg.MaxAttempts > 1 {
		// The executor takes over after the first attempt: it owns the remaining ones.
		p.retrying = failsafe.With[*http.Response](retry(cfg.MaxAttempts-1), p.breaker, p.bulkhead)
	}
	if cfg.HedgeDelay > 0 {
		hedge := hedgepolicy.NewBuilderWithDelay[*http.Response](cfg.HedgeDelay).
			WithMaxHedges(cfg.MaxHedges).
			CancelIf(func(r *http.Response, err error) bool { return err == nil && !failed(r, nil) }).
			OnHedge(func(e failsafe.ExecutionEvent[*http.Response]) {
				m.hedge()
				trace.SpanFromContext(e.Context()).AddEvent("hedge")
			}).
			Build()
		p.hedged = failsafe.With[*http.Response](retry(cfg.MaxAttempts), hedge, p.breaker, p.bulkhead)
	}
	return p, nil
}

// retryBudget lends the policy's Budget to failsafe's retry executor without the
// deposit: Do deposits once per call itself.
type retryBudget struct{ *Budget }

func (retryBudget) RecordExecution()  {}
func (retryBudget) ReleaseExecution() {}

// Config returns the policy's configuration, defaults filled in.
func (p *Policy) Config() Config { return p.cfg }

// BreakerOpen reports whether the breaker refuses calls now.
func (p *Policy) BreakerOpen() bool { return p.breaker.IsOpen() }

// Retryable reports whether a request is safe to repeat: an idempotent method, or an
// Idempotency-Key header.
func Retryable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return req.Header.Get("Idempotency-Key") != ""
}

func safeRead(req *http.Request) bool {
	return req.Method == http.MethodGet || req.Method == http.MethodHead
}
