package bus_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/event"
)

// A replay continues the trace of the request that wrote the event and links to
// the administrator's request that asked for it.
func TestAReplayContinuesTheEventsTrace(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	tr := tp.Tracer("t")
	wctx, writer := tr.Start(context.Background(), "POST /v1/orders")
	var e event.Event
	e.ID, e.Type = "e1", "orders.order.placed.v1"
	event.SetTraceContext(wctx, &e)
	writer.End()

	actx, admin := tr.Start(context.Background(), "POST /api/v1/admin/dead-letters/{id}/replay")
	_, replay := bus.ReplaySpan(actx, tr, bus.System{Name: "nats"}, &bus.DeadLetter{ID: "42", Event: e, Group: "notifications"})
	replay.End()
	admin.End()

	var got tracetest.SpanStub
	for _, s := range spans.GetSpans() {
		if s.Name == "replay events.orders.order.placed" {
			got = s
		}
	}
	if got.SpanContext.TraceID() != writer.SpanContext().TraceID() || got.Parent.SpanID() != writer.SpanContext().SpanID() {
		t.Errorf("replay span in trace %s under %s; want the writer's trace %s under its span", got.SpanContext.TraceID(), got.Parent.SpanID(), writer.SpanContext().TraceID())
	}
	if len(got.Links) != 1 || got.Links[0].SpanContext.SpanID() != admin.SpanContext().SpanID() {
		t.Errorf("replay links %+v; want the administrator's request", got.Links)
	}
}
