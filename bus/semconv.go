package bus

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/switchyard/switchyard/event"
)

// System is what a broker's messaging spans say of it, in the OpenTelemetry
// semantic conventions: its messaging.system and where each event type travels
// (messaging.destination.name). Every bus here has one; the outbox takes its bus's,
// so that the spans of an event written in a transaction name the broker that
// will carry it.
type System struct {
	// Name is the messaging.system value: "nats", "kafka".
	Name string
	// Destination is the subject or topic events of a type travel on; nil means
	// the NATS subject (events.<domain>.<entity>.<verb>).
	Destination func(eventType string) string
}

// DestinationOf is where events of the type travel on this system.
func (s System) DestinationOf(eventType string) string {
	if s.Destination != nil {
		return s.Destination(eventType)
	}
	t, err := event.ParseType(eventType)
	if err != nil {
		return ""
	}
	return t.Subject()
}

// The operations of messaging spans: messaging.operation.name, with the
// messaging.operation.type each one is.
const (
	// OpCreate is an event written to an outbox, inside the transaction that
	// changes what it announces (type create).
	OpCreate = "create"
	// OpSend is the relay's send of written events to the broker (type send).
	OpSend = "send"
	// OpReplay is a dead letter sent again (type send).
	OpReplay = "replay"
	// OpProcess is a consumer's handler run on one delivery (type process).
	OpProcess = "process"
	// OpAck, OpNak, OpTerm, OpRetry and OpDeadLetter settle a delivery (type
	// settle): done; redeliver (NATS); never redeliver (NATS, after the dead letter
	// is kept); move to the group's retry topic (Kafka); move to the dead letters
	// (Kafka).
	OpAck        = "ack"
	OpNak        = "nak"
	OpTerm       = "term"
	OpRetry      = "retry"
	OpDeadLetter = "dead_letter"
)

// operationType is the messaging.operation.type of an operation name.
func operationType(op string) attribute.KeyValue {
	switch op {
	case OpCreate:
		return semconv.MessagingOperationTypeCreate
	case OpSend, OpReplay:
		return semconv.MessagingOperationTypeSend
	case OpProcess:
		return semconv.MessagingOperationTypeProcess
	}
	return semconv.MessagingOperationTypeSettle
}

// Attributes are the standard attributes of a messaging span of operation op on
// event e, sent to or received from destination, with the consumer group when
// there is one (process and settle spans).
func (s System) Attributes(op string, e *event.Event, destination, group string) []attribute.KeyValue {
	kv := make([]attribute.KeyValue, 0, 8)
	kv = append(kv,
		semconv.MessagingSystemKey.String(s.Name),
		semconv.MessagingOperationName(op),
		operationType(op),
		semconv.MessagingDestinationName(destination),
		semconv.MessagingMessageID(e.ID),
		semconv.CloudEventsEventType(e.Type),
	)
	if e.Subject != "" {
		kv = append(kv, semconv.CloudEventsEventSubject(e.Subject))
	}
	if group != "" {
		kv = append(kv, semconv.MessagingConsumerGroupName(group))
	}
	return kv
}

// SpanName is a messaging span's name as the conventions put it: the operation,
// then the destination.
func SpanName(op, destination string) string {
	if destination == "" {
		return op
	}
	return op + " " + destination
}

// Settle records the settlement of a delivery — an ack, a nak, a move to the
// retry topic or the dead letters — as a client span of operation op under the
// process span res names, around fn, which carries it out. A delivery whose
// process span was not recorded settles without a span.
func (d *Dispatcher) Settle(ctx context.Context, sub *Subscription, del Delivery, res Result, op string, fn func(context.Context) error) error {
	if !res.Span.IsSampled() || d.Tracer == nil {
		return fn(ctx)
	}
	if _, ok := d.Tracer.(noop.Tracer); ok {
		return fn(ctx)
	}
	ctx, span := d.Tracer.Start(trace.ContextWithSpanContext(ctx, res.Span), SpanName(op, del.Subject),
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(d.System.Attributes(op, &res.Event, del.Subject, sub.Group)...))
	defer span.End()
	err := fn(ctx)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(semconv.ErrorTypeKey.String(op + "_failed"))
	}
	return err
}
