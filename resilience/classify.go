package resilience

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/budget"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/timeout"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/problem"
)

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
	return p.delayAfter(e.LastResult(), e.Retries()+1) //nolint:bodyclose // only its headers are read; OnRetryScheduled discards it
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
