package resilience

import (
	"context"
	"net/http"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/policy"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/telemetry"
)

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
		attribute.String(telemetry.KeyRetryAfter, describe(lastResp, lastErr)), attribute.String(telemetry.KeyRetryDelay, delay.String())))
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
