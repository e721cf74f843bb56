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
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/budget"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/hedgepolicy"
	"github.com/failsafe-go/failsafe-go/policy"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/failsafe-go/failsafe-go/timeout"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/problem"
)

// Config is the policy of one dependency. Zero fields take the default in brackets.
type Config struct {
	// Dependency names the service called, for errors, metrics and spans. Required.
	Dependency string
	// Timeout is the overall deadline of a call, retries included [2s].
	Timeout time.Duration
	// TryTimeout bounds each attempt [1s].
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
// executor throughout. The per-try timeout is a context deadline on each attempt.
type Policy struct {
	cfg      Config
	m        depMetrics
	breaker  circuitbreaker.CircuitBreaker[*http.Response]
	bulkhead bulkhead.Bulkhead[*http.Response]
	budget   *Budget
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
	p := &Policy{cfg: cfg, m: m, budget: NewBudget(cfg.BudgetRatio, cfg.BudgetPerSecond, nil)}

	cb := circuitbreaker.NewBuilder[*http.Response]().
		HandleIf(func(r *http.Response, err error) bool { return failed(r, err) }).
		WithDelay(cfg.OpenFor).
		WithSuccessThreshold(uint(cfg.HalfOpenProbes)).
		OnStateChanged(func(e circuitbreaker.StateChangedEvent) { m.breakerState(e.NewState) })
	if cfg.ConsecutiveFailures > 0 {
		cb = cb.WithFailureThreshold(uint(cfg.ConsecutiveFailures))
	} else {
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
					trace.WithAttributes(attribute.String("retry.after", describe(e.LastResult(), e.LastError()))))
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

// Attempt sends one try of a call. It receives a private shallow copy of the call's
// request, bound to the try's context and with a fresh body when retrying: it may
// change the copy's URL, Host and Header (replacing, never mutating, the caller's
// header map), and must not retry on its own. An attempt it refuses before reaching
// the dependency (no instance to send it to) it reports as an Unavailable problem
// with a RetryAfter: retried like a failure, but not held against the dependency.
type Attempt func(*http.Request) (*http.Response, error)

// Do runs a call under the policy, within ctx (req's own context is ignored). The
// final error, if any, is a *problem.Error when a policy decided the outcome (breaker
// open, bulkhead full, deadline passed).
func (p *Policy) Do(ctx context.Context, req *http.Request, attempt Attempt) (*http.Response, error) {
	start := time.Now()
	parent := ctx
	deadline := start.Add(p.cfg.Timeout)
	if dl, ok := parent.Deadline(); ok && dl.Before(deadline) {
		deadline = dl // the caller's deadline wins
	}
	p.budget.RecordExecution()
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	canRetry := p.retrying != nil && replayable && Retryable(req)

	var (
		resp *http.Response
		err  error
	)
	if p.hedged != nil && replayable && safeRead(req) {
		ctx, cancel := context.WithDeadline(parent, deadline)
		resp, err = p.execute(ctx, p.hedged, req, attempt, false)
		err = p.finish(ctx, cancel, resp, err)
	} else {
		// The first attempt needs only its own deadline, the earlier of the per-try
		// and the overall one; the overall context exists only if retries follow.
		resp, err = p.first(parent, deadline, req, attempt)
		if canRetry && retryable(resp, err) && !errors.Is(err, circuitbreaker.ErrOpen) && !errors.Is(err, bulkhead.ErrFull) &&
			parent.Err() == nil && time.Now().Before(deadline) {
			ctx, cancel := context.WithDeadline(parent, deadline)
			resp, err = p.retry(ctx, req, attempt, resp, err)
			err = p.finish(ctx, cancel, resp, err)
		} else {
			err = p.translate(parent, err)
		}
	}
	p.m.call(resp, err, time.Since(start))
	if err != nil && p.cfg.Fallback != nil {
		return p.cfg.Fallback(req, err)
	}
	return resp, err
}

// finish translates err and ties cancel to the response: at once on failure, when the
// body is closed on success.
func (p *Policy) finish(ctx context.Context, cancel context.CancelFunc, resp *http.Response, err error) error {
	err = p.translate(ctx, err)
	if err != nil {
		cancel()
		return err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return nil
}

// first sends the first attempt through the breaker and bulkhead, without an executor,
// by the overall deadline.
func (p *Policy) first(ctx context.Context, deadline time.Time, req *http.Request, attempt Attempt) (*http.Response, error) {
	if !p.acquireSlot(ctx) {
		return nil, bulkhead.ErrFull
	}
	if !p.breaker.TryAcquirePermit() {
		p.bulkhead.ReleasePermit()
		return nil, circuitbreaker.ErrOpen
	}
	p.m.bulkheadInUse(1)
	resp, err := p.tryBy(ctx, deadline, req, attempt, false)
	p.bulkhead.ReleasePermit()
	p.m.bulkheadInUse(-1)
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			p.breaker.RecordSuccess() // the caller went away: not the dependency's fault
		} else {
			p.breaker.RecordError(err)
		}
		return nil, err
	}
	p.breaker.RecordResult(resp)
	return resp, nil
}

func (p *Policy) acquireSlot(ctx context.Context) bool {
	if p.cfg.MaxWait <= 0 {
		return p.bulkhead.TryAcquirePermit()
	}
	return p.bulkhead.AcquirePermitWithMaxWait(ctx, p.cfg.MaxWait) == nil
}

// retry hands a call whose first attempt failed to failsafe's retry executor, after
// the first backoff, if the budget allows a retry at all.
func (p *Policy) retry(ctx context.Context, req *http.Request, attempt Attempt, lastResp *http.Response, lastErr error) (*http.Response, error) {
	if !p.budget.TryAcquirePermit() {
		p.m.budgetExhausted()
		trace.SpanFromContext(ctx).AddEvent("budget exhausted")
		return lastResp, lastErr // the failure stands
	}
	delay := p.delayAfter(lastResp, 0)
	discard(lastResp)
	p.m.retry()
	trace.SpanFromContext(ctx).AddEvent("retry 1", trace.WithAttributes(
		attribute.String("retry.after", describe(lastResp, lastErr)), attribute.String("retry.delay", delay.String())))
	if !sleep(ctx, delay) {
		return nil, ctx.Err()
	}
	return p.execute(ctx, p.retrying, req, attempt, true)
}

// execute runs attempts on a failsafe executor.
func (p *Policy) execute(ctx context.Context, exec failsafe.Executor[*http.Response], req *http.Request, attempt Attempt, replay bool) (*http.Response, error) {
	return exec.WithContext(ctx).GetWithExecution(func(e failsafe.Execution[*http.Response]) (*http.Response, error) {
		resp, err := p.try(e.Context(), req, attempt, replay || e.Attempts() > 1 || e.IsHedge())
		if err != nil {
			return nil, err
		}
		if e.IsCanceled() { // a hedge lost
			discard(resp)
			return nil, context.Canceled
		}
		// The attempt's context must outlive the execution until the body is read.
		if x, ok := e.(policy.ExecutionInternal[*http.Response]); ok {
			resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: x.DeferCancel()}
		}
		return resp, nil
	})
}

// try sends one attempt under the per-try timeout, with a fresh body when replay is
// set. The try's deadline stays in force until the response body is closed.
func (p *Policy) try(ctx context.Context, req *http.Request, attempt Attempt, replay bool) (*http.Response, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(p.cfg.Timeout)
	}
	return p.tryBy(ctx, deadline, req, attempt, replay)
}

// tryBy is try with the overall deadline given: the attempt's deadline is the
// earlier of it and the per-try timeout.
func (p *Policy) tryBy(ctx context.Context, deadline time.Time, req *http.Request, attempt Attempt, replay bool) (*http.Response, error) {
	tryDeadline := time.Now().Add(p.cfg.TryTimeout)
	overall := !deadline.After(tryDeadline)
	if overall {
		tryDeadline = deadline
	}
	tctx, cancel := context.WithDeadline(ctx, tryDeadline)
	r := req.WithContext(tctx)
	if replay && req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			cancel()
			return nil, err
		}
		r.Body = body
	}
	resp, err := attempt(r)
	if err != nil {
		cancel()
		if errors.Is(tctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil && !overall {
			// This try's limit, not the call's: retryable, unlike the call's own deadline.
			return nil, fmt.Errorf("%w after %s: %s", timeout.ErrExceeded, p.cfg.TryTimeout, err.Error())
		}
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// cancelOnClose ends a context when the response body it carries is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel func()
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// translate turns the policies' sentinel errors into problems the edge can map.
func (p *Policy) translate(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	dep := p.cfg.Dependency
	span := trace.SpanFromContext(ctx)
	switch {
	case errors.Is(err, circuitbreaker.ErrOpen):
		span.AddEvent("breaker open")
		retryAfter := p.breaker.RemainingDelay()
		switch {
		case retryAfter > 0:
		case p.breaker.IsHalfOpen():
			retryAfter = 100 * time.Millisecond // its probes are in flight: soon
		default:
			retryAfter = time.Second
		}
		return &problem.Error{Kind: problem.Unavailable, Detail: dep + " is unavailable (circuit open)", RetryAfter: retryAfter, Err: err}
	case errors.Is(err, bulkhead.ErrFull):
		span.AddEvent("bulkhead full")
		p.m.bulkheadRejected()
		return &problem.Error{Kind: problem.Unavailable, Detail: dep + " is at capacity (bulkhead full)", RetryAfter: time.Second, Err: err}
	case errors.Is(err, budget.ErrExceeded):
		span.AddEvent("budget exhausted")
		p.m.budgetExhausted()
		return &problem.Error{Kind: problem.Unavailable, Detail: dep + " is failing (retry budget exhausted)", RetryAfter: time.Second, Err: err}
	case errors.Is(err, timeout.ErrExceeded), errors.Is(err, context.DeadlineExceeded):
		span.AddEvent("deadline exceeded")
		return &problem.Error{Kind: problem.Timeout, Detail: dep + " did not answer in time", Err: err}
	}
	return err
}

// delay is failsafe's view of delayAfter: the executor's retries come after the
// first one, which Do made itself.
func (p *Policy) delay(e failsafe.ExecutionAttempt[*http.Response]) time.Duration {
	return p.delayAfter(e.LastResult(), e.Retries()+1)
}

// delayAfter is the wait before retry number n+1 (n from 0): the server's Retry-After
// when it gave one, else full jitter below Backoff × 2ⁿ, capped at MaxBackoff.
func (p *Policy) delayAfter(last *http.Response, n int) time.Duration {
	if d, ok := retryAfter(last); ok {
		return d
	}
	bound := p.cfg.Backoff << min(n, 20)
	if bound > p.cfg.MaxBackoff || bound <= 0 {
		bound = p.cfg.MaxBackoff
	}
	return time.Duration(rand.Int64N(int64(bound) + 1))
}

func retryAfter(r *http.Response) (time.Duration, bool) {
	if r == nil || (r.StatusCode != http.StatusTooManyRequests && r.StatusCode != http.StatusServiceUnavailable) {
		return 0, false
	}
	s := r.Header.Get("Retry-After")
	if s == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(s); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(s); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

// failed classifies an attempt's outcome for the breaker. An attempt refused before
// it reached the dependency — no instance to send it to — is not the dependency's
// failure.
func failed(r *http.Response, err error) bool {
	if err != nil {
		var pe *problem.Error
		if errors.As(err, &pe) && pe.Kind == problem.Unavailable && pe.RetryAfter > 0 {
			return false
		}
		return !errors.Is(err, context.Canceled) && !errors.Is(err, bulkhead.ErrFull)
	}
	if shed(r) {
		return false
	}
	if r.StatusCode >= 500 && r.StatusCode != http.StatusNotImplemented {
		return true
	}
	return grpcFailure(r)
}

// shed reports whether an answer is the dependency refusing for now, with the time
// to come back: 429 or 503 with Retry-After.
func shed(r *http.Response) bool {
	return (r.StatusCode == http.StatusServiceUnavailable || r.StatusCode == http.StatusTooManyRequests) && r.Header.Get("Retry-After") != ""
}

// retryable decides whether an attempt's outcome deserves another try.
func retryable(r *http.Response, err error) bool {
	if err != nil {
		return !errors.Is(err, context.Canceled)
	}
	return r.StatusCode == http.StatusTooManyRequests || shed(r) || failed(r, nil)
}

// grpcFailure reads a gRPC status carried in the headers (a trailers-only
// response): UNAVAILABLE, RESOURCE_EXHAUSTED and DEADLINE_EXCEEDED are the
// dependency's trouble.
func grpcFailure(r *http.Response) bool {
	switch r.Header.Get("Grpc-Status") {
	case "4", "8", "14":
		return true
	}
	return false
}

// discard drains and closes a response that will not be returned, so its
// connection can be reused.
func discard(r *http.Response) {
	if r == nil || r.Body == nil {
		return
	}
	_, _ = io.CopyN(io.Discard, r.Body, 64<<10)
	_ = r.Body.Close()
}

func describe(r *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	if r != nil {
		return r.Status
	}
	return ""
}
