package bus

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/telemetry"
)

// ReplaySpan starts the producer span of a dead letter's replay: it continues the
// event's own trace (so the trace of the request that wrote the event shows it
// replayed, and the replayed delivery joins it), and links to the span of whoever
// asked for the replay (an administrator's request). A nil tracer records nothing.
func ReplaySpan(ctx context.Context, tracer trace.Tracer, system System, dl *DeadLetter) (context.Context, trace.Span) {
	if tracer == nil {
		tracer = noop.NewTracerProvider().Tracer("")
	}
	destination := system.DestinationOf(dl.Event.Type)
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(append(system.Attributes(OpReplay, &dl.Event, destination, dl.Group),
			attribute.String(telemetry.KeyDeadLetterID, dl.ID))...),
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.String(telemetry.KeyLink, "replayed by")}}))
	}
	// Under the event's trace context (ctx's own when the event carries none), with
	// ctx's cancellation.
	return tracer.Start(event.TraceContext(ctx, &dl.Event), SpanName(OpReplay, destination), opts...)
}

// CheckReplay refuses to replay a dead letter whose event would be refused again
// as it is (it breaks its schema): Unprocessable, naming the dead letter and why.
func CheckReplay(reg *event.Registry, dl *DeadLetter) error {
	if err := reg.Validate(&dl.Event); err != nil {
		return &problem.Error{Kind: problem.Unprocessable, Detail: fmt.Sprintf("dead letter %s cannot be replayed: %v", dl.ID, err), Err: err}
	}
	return nil
}
