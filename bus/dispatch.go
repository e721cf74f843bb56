package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/telemetry"
)

// RelayTraceHeader is the broker header in which the publisher (the outbox relay)
// puts the trace context of its publish span; a consumer's span links to it.
const RelayTraceHeader = "Relay-Traceparent"

// Dispatcher is the part of consuming that does not depend on the broker: decode
// the event, check it against its schema, continue its trace, run the handler, and
// decide the verdict. Implementations call Deliver for each message.
type Dispatcher struct {
	// Registry validates events; nil accepts any well-formed envelope.
	Registry *event.Registry
	// Tracer starts the consumer span [no tracing].
	Tracer trace.Tracer
	// Logger receives failures [discard].
	Logger *slog.Logger
	// Metrics records deliveries; nil records nothing.
	Metrics *Metrics
	// System is the broker's, as the spans name it.
	System System
}

// Delivery is one message as the broker handed it over.
type Delivery struct {
	// Raw is the message body: the event in structured JSON mode.
	Raw []byte
	// Subject is the broker subject (or topic) it came on.
	Subject string
	// Attempt counts deliveries to this group, from 1.
	Attempt int
	// RelayTraceParent is the publisher's span context, when the broker carried one.
	RelayTraceParent string
}

// Result is the verdict on a delivery.
type Result struct {
	Verdict Verdict
	// Delay before redelivery, with Redeliver.
	Delay time.Duration
	// Err is why the delivery failed (nil with Ack).
	Err error
	// Event is the decoded event; zero when the message was not one.
	Event event.Event
	// Span is the process span's context: the settlement's span is its child.
	Span trace.SpanContext
}

// Deliver runs h on one delivery and returns the verdict.
func (d *Dispatcher) Deliver(ctx context.Context, sub *Subscription, del Delivery, h Handler) Result {
	e, err := event.Unmarshal(del.Raw)
	if err != nil {
		d.record(sub.Group, "", "undecodable")
		return Result{Verdict: Bury, Err: err, Event: e}
	}
	if d.Registry != nil {
		err = d.Registry.Validate(&e)
	} else {
		err = e.Validate()
	}
	if err != nil {
		d.record(sub.Group, e.Type, "invalid")
		return Result{Verdict: Bury, Err: Permanent(err), Event: e}
	}
	tracer := d.Tracer
	if tracer == nil {
		tracer = noop.NewTracerProvider().Tracer("")
	}
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(append(d.System.Attributes(OpProcess, &e, del.Subject, sub.Group),
			attribute.Int(telemetry.KeyDeliveryAttempt, del.Attempt))...),
	}
	if del.RelayTraceParent != "" {
		relay := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": del.RelayTraceParent})
		if sc := trace.SpanContextFromContext(relay); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc, Attributes: []attribute.KeyValue{attribute.String(telemetry.KeyLink, "relay")}}))
		}
	}
	hctx, span := tracer.Start(event.TraceContext(ctx, &e), SpanName(OpProcess, del.Subject), opts...)
	defer span.End()
	sc := span.SpanContext()
	hctx = event.WithCause(hctx, &e)
	hctx, cancel := context.WithTimeout(hctx, sub.HandlerTimeout)
	defer cancel()

	start := time.Now()
	err = safely(hctx, h, &Message{Event: e, Attempt: del.Attempt, Subject: del.Subject})
	if d.Metrics != nil {
		d.Metrics.duration.WithLabelValues(sub.Group, e.Type).Observe(time.Since(start).Seconds())
	}
	if err == nil {
		d.record(sub.Group, e.Type, "ok")
		return Result{Verdict: Ack, Event: e, Span: sc}
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	span.SetAttributes(semconv.ErrorTypeKey.String(errorType(hctx, err)))
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch delay, retry := RetryAfter(err); {
	case IsPermanent(err):
		span.AddEvent("dead letter: permanent failure")
		d.record(sub.Group, e.Type, "dead_letter")
		log.WarnContext(hctx, "event dead-lettered", "group", sub.Group, "event_id", e.ID, "type", e.Type, "error", err.Error())
		return Result{Verdict: Bury, Err: err, Event: e, Span: sc}
	case del.Attempt >= sub.MaxAttempts:
		span.AddEvent(fmt.Sprintf("dead letter after %d attempts", del.Attempt))
		d.record(sub.Group, e.Type, "dead_letter")
		log.WarnContext(hctx, "event dead-lettered", "group", sub.Group, "event_id", e.ID, "type", e.Type, "attempts", del.Attempt, "error", err.Error())
		return Result{Verdict: Bury, Err: err, Event: e, Span: sc}
	case retry:
		span.AddEvent(fmt.Sprintf("redeliver in %s", delay))
		d.record(sub.Group, e.Type, "retry")
		return Result{Verdict: Redeliver, Delay: delay, Err: err, Event: e, Span: sc}
	default:
		delay := sub.BackoffFor(del.Attempt)
		span.AddEvent(fmt.Sprintf("redeliver in %s", delay))
		d.record(sub.Group, e.Type, "retry")
		log.InfoContext(hctx, "event handler failed; will retry", "group", sub.Group, "event_id", e.ID, "attempt", del.Attempt, "in", delay, "error", err.Error())
		return Result{Verdict: Redeliver, Delay: delay, Err: err, Event: e, Span: sc}
	}
}

// errorType is the error.type of a failed handler: a handler that ran out of
// time, panicked, refused the event for good, or failed otherwise.
func errorType(ctx context.Context, err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return "timeout"
	case errors.Is(err, errPanicked):
		return "panic"
	case IsPermanent(err):
		return "permanent"
	}
	return "handler_failed"
}

// errPanicked is wrapped by the error of a handler that panicked.
var errPanicked = errors.New("handler panicked")

// safely runs h, turning a panic into an error so one bad event cannot stop a
// consumer.
func safely(ctx context.Context, h Handler, m *Message) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v\n%s", errPanicked, p, debug.Stack())
		}
	}()
	err = h(ctx, m)
	if err == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = ctx.Err()
	}
	return err
}

func (d *Dispatcher) record(group, typ, outcome string) {
	if d.Metrics != nil {
		d.Metrics.consumed.WithLabelValues(group, typ, outcome).Inc()
		if outcome == "dead_letter" || outcome == "invalid" || outcome == "undecodable" {
			d.Metrics.deadLetters.WithLabelValues(group).Inc()
		}
	}
}

// NewDeadLetter builds the dead letter of a failed delivery.
func NewDeadLetter(sub *Subscription, del Delivery, res Result, firstFailure time.Time) DeadLetter {
	now := time.Now().UTC()
	if firstFailure.IsZero() {
		firstFailure = now
	}
	dl := DeadLetter{
		Event: res.Event, Subject: del.Subject, Group: sub.Group, Attempts: del.Attempt,
		FirstFailure: firstFailure.UTC(), LastFailure: now,
	}
	if res.Err != nil {
		dl.LastError = res.Err.Error()
	}
	if res.Event.ID == "" {
		dl.Raw = del.Raw
	}
	return dl
}

// Metrics are the bus metrics of a process:
//
//	bus_published_total{type}
//	bus_consumed_total{group,type,outcome}     outcome: ok, retry, dead_letter, invalid, undecodable
//	bus_handler_duration_seconds{group,type}
//	bus_dead_letters_total{group}
type Metrics struct {
	published   *prometheus.CounterVec
	consumed    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	deadLetters *prometheus.CounterVec
	lag         *prometheus.GaugeVec
}

// SetLag records how many events wait for a consumer group on the broker, not yet
// delivered to it. Safe on a nil Metrics.
func (m *Metrics) SetLag(group string, n int) {
	if m != nil {
		m.lag.WithLabelValues(group).Set(float64(n))
	}
}

// NewMetrics registers the bus metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bus_published_total", Help: "Events stored on the broker, by type."}, []string{"type"}),
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bus_consumed_total",
			Help: "Deliveries handled, by consumer group, type and outcome (ok, retry, dead_letter, invalid, undecodable)."}, []string{"group", "type", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "bus_handler_duration_seconds", Help: "Time an event handler took.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5}}, []string{"group", "type"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bus_dead_letters_total", Help: "Events a consumer group gave up on."}, []string{"group"}),
		lag:         prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bus_consumer_lag", Help: "Events on the broker not yet delivered to a consumer group."}, []string{"group"}),
	}
	for _, c := range []prometheus.Collector{m.published, m.consumed, m.duration, m.deadLetters, m.lag} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Published counts stored events of a type.
func (m *Metrics) Published(typ string, n int) {
	if m != nil {
		m.published.WithLabelValues(typ).Add(float64(n))
	}
}
