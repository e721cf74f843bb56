package telemetry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// TraceConfig configures a process's tracer provider.
type TraceConfig struct {
	// Service is the service.name resource attribute.
	Service string
	// Version is the service.version resource attribute.
	Version string
	// Instance is the service.instance.id resource attribute (e.g. host:port).
	Instance string
	// SampleRatio of new root traces to record, 0 to 1 [1]. Children follow their
	// parent's decision.
	SampleRatio float64
	// Propagators lists the propagators, as OTEL_PROPAGATORS does: tracecontext,
	// baggage, or none [tracecontext,baggage].
	Propagators string
	// Exporters receive every finished span (an OTLP collector, the local trace
	// store of `switchyard up`, a test recorder). Each is batched. (The platform
	// makes the OTLP ones: this package stays free of exporters, so that every
	// package using its propagator and middleware does too.)
	Exporters []sdktrace.SpanExporter
}

// Tracing is a process's tracer provider and propagator.
type Tracing struct {
	// Provider creates tracers; pass it, never install it globally.
	Provider *sdktrace.TracerProvider
	// Propagator injects and extracts W3C traceparent/tracestate and baggage.
	Propagator propagation.TextMapPropagator
}

// Propagator is the W3C trace context plus baggage propagator every hop uses.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// NewTracing builds the tracer provider described by cfg. Spans are always created
// (so logs carry trace ids) even when nothing exports them.
func NewTracing(_ context.Context, cfg TraceConfig) (*Tracing, error) {
	ratio := cfg.SampleRatio
	if ratio < 0 || ratio > 1 {
		return nil, fmt.Errorf("tracing: sample ratio %v is not between 0 and 1", ratio)
	}
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(cfg.Service),
		semconv.ServiceVersion(cfg.Version),
		semconv.ServiceInstanceID(cfg.Instance),
	))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	}
	prop, err := ParsePropagators(cfg.Propagators)
	if err != nil {
		return nil, err
	}
	for _, exp := range cfg.Exporters {
		opts = append(opts, sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)))
	}
	return &Tracing{Provider: sdktrace.NewTracerProvider(opts...), Propagator: prop}, nil
}

// ParsePropagators builds the propagator a comma-separated list names, in the
// values OTEL_PROPAGATORS takes: tracecontext, baggage, none. Empty means
// tracecontext,baggage. "none" alone turns propagation off: the process neither
// reads a caller's trace context nor passes its own on.
func ParsePropagators(list string) (propagation.TextMapPropagator, error) {
	if strings.TrimSpace(list) == "" {
		return Propagator(), nil
	}
	var props []propagation.TextMapPropagator
	for _, name := range strings.Split(list, ",") {
		switch strings.TrimSpace(name) {
		case "tracecontext":
			props = append(props, propagation.TraceContext{})
		case "baggage":
			props = append(props, propagation.Baggage{})
		case "none":
		default:
			return nil, fmt.Errorf("tracing: unknown propagator %q (want tracecontext, baggage or none)", strings.TrimSpace(name))
		}
	}
	return propagation.NewCompositeTextMapPropagator(props...), nil
}

// Tracer returns a named tracer of the provider.
func (t *Tracing) Tracer(name string) trace.Tracer { return t.Provider.Tracer(name) }

// Shutdown flushes pending spans and stops the exporters; bounded by ctx.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if err := t.Provider.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}
