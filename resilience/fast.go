package resilience

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/timeout"
)

// first sends the first attempt, started at now, through the breaker and bulkhead,
// without an executor, by the overall deadline.
func (p *Policy) first(ctx context.Context, now, deadline time.Time, req *http.Request, attempt Attempt) (*http.Response, error) {
	if !p.acquireSlot(ctx) {
		return nil, bulkhead.ErrFull
	}
	if !p.breaker.TryAcquirePermit() {
		p.bulkhead.ReleasePermit()
		return nil, circuitbreaker.ErrOpen
	}
	p.m.bulkheadInUse(1)
	resp, err := p.tryBy(ctx, now, deadline, req, attempt, false)
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

// try sends one attempt under the per-try timeout, with a fresh body when replay is
// set. The try's deadline stays in force until the response body is closed.
func (p *Policy) try(ctx context.Context, req *http.Request, attempt Attempt, replay bool) (*http.Response, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(p.cfg.Timeout)
	}
	return p.tryBy(ctx, time.Now(), deadline, req, attempt, replay)
}

// tryBy is try started at now with the overall deadline given: the attempt's
// deadline is the earlier of it and the per-try timeout, enforced by the policy's
// deadlines (deadline.go) rather than a timer of its own.
//
// When ctx's own deadline already comes by then (the caller's deadline, or the
// executor's overall one, is the nearer limit), the attempt runs in ctx itself:
// the limit is in force already.
func (p *Policy) tryBy(ctx context.Context, now, deadline time.Time, req *http.Request, attempt Attempt, replay bool) (*http.Response, error) {
	tryDeadline := now.Add(p.cfg.TryTimeout)
	overall := !deadline.After(tryDeadline)
	if overall {
		tryDeadline = deadline
	}
	var t *tryCtx
	tctx := ctx
	if dl, ok := ctx.Deadline(); !ok || dl.After(tryDeadline) {
		t = p.deadlines.withDeadline(ctx, tryDeadline, now)
		tctx = t
	}
	r := req.WithContext(tctx)
	if replay && req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			release(t)
			return nil, err
		}
		r.Body = body
	}
	resp, err := attempt(r)
	if err != nil {
		if release(t) && errors.Is(err, context.Canceled) {
			// The deadline cancelled the attempt: what reached the transport as a
			// cancellation is the deadline, as a context.WithDeadline reports it.
			err = context.DeadlineExceeded
		}
		if errors.Is(tctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil && !overall {
			// This try's limit, not the call's: retryable, unlike the call's own deadline.
			return nil, fmt.Errorf("%w after %s: %s", timeout.ErrExceeded, p.cfg.TryTimeout, err.Error())
		}
		return nil, err
	}
	if t != nil {
		t.body = resp.Body
		resp.Body = (*tryBody)(t)
	}
	return resp, nil
}

// release ends an attempt's own context, if it has one, and reports whether its
// deadline had ended it.
func release(t *tryCtx) bool { return t != nil && t.release() }

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
