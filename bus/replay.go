package bus

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/problem"
)

// ReplaySpan starts the producer span of a dead letter's replay: it continues the
// event's own trace (so the trace of the request that wrote the event shows it
// replayed, and the replayed delivery joins it), and links to the span of whoever
// asked for the replay (an administrator's request). A nil tracer records nothing.
func ReplaySpan(ctx context.Context, tracer trace.Tracer, dl *DeadLetter) (context.Context, trace.Span) {
	if tracer == nil {
		tracer = noop.NewTracerProvider().Tracer("")
	}
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.operation.type", "send"),
			attribute.String("messaging.message.id", dl.Event.ID),
			attribute.String("cloudevents.event_type", dl.Event.Type),
			attribute.String("dead_letter.id", dl.ID),
			attribute.String("messaging.consumer.group.name", dl.Group),
		),
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.String("link", "replayed by")}}))
	}
	// Under the event's trace context (ctx's own when the event carries none), with
	// ctx's cancellation.
	return tracer.Start(event.TraceContext(ctx, &dl.Event), "replay "+dl.Event.Type, opts...)
}

// CheckReplay refuses to replay a dead letter whose event would be refused again
// as it is (it breaks its schema): Unprocessable, naming the dead letter and why.
func CheckReplay(reg *event.Registry, dl *DeadLetter) error {
	if err := reg.Validate(&dl.Event); err != nil {
		return &problem.Error{Kind: problem.Unprocessable, Detail: fmt.Sprintf("dead letter %s cannot be replayed: %v", dl.ID, err), Err: err}
	}
	return nil
}
