package resilience

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
)

// How a call runs. Do decides which of the two execution paths a call takes: the
// fast path (fast.go) sends the first attempt through the breaker and the
// bulkhead without an executor; the executor path (executor.go) hands retries and
// hedged reads to failsafe-go. Both classify outcomes with the same functions
// (classify.go), and TestBothPathsDecideAlike holds them to it.

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
	deadline := p.Deadline(ctx, start)
	p.budget.recordAt(start) // NewBudget(…, nil) in New: the budget's clock is time.Now
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
		resp, err = p.first(parent, start, deadline, req, attempt)
		if canRetry && retryable(resp, err) && !errors.Is(err, circuitbreaker.ErrOpen) && !errors.Is(err, bulkhead.ErrFull) &&
			parent.Err() == nil && time.Now().Before(deadline) {
			ctx, cancel := context.WithDeadline(parent, deadline)
			resp, err = p.retry(ctx, req, attempt, resp, err)
			err = p.finish(ctx, cancel, resp, err)
		} else {
			err = p.translate(parent, err)
		}
	}
	if p.m.enabled() {
		p.m.call(resp, err, time.Since(start))
	}
	if err != nil && p.cfg.Fallback != nil {
		return p.cfg.Fallback(req, err)
	}
	return resp, err
}

// Deadline is when a call made at now within ctx must end: after the overall
// timeout, or at ctx's deadline when that comes first.
func (p *Policy) Deadline(ctx context.Context, now time.Time) time.Time {
	deadline := now.Add(p.cfg.Timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		return dl // the caller's deadline wins
	}
	return deadline
}

// Count records, in the dependency's metrics, a call that ran outside Do: a
// stream's opening (a WebSocket upgrade), which no deadline, retry or breaker
// governs but which rpc_client_calls_total must still count.
func (p *Policy) Count(resp *http.Response, err error, took time.Duration) { p.m.call(resp, err, took) }

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
