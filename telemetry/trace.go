package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
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
	// Sampler names the sampler as OTEL_TRACES_SAMPLER does (always_on,
	// always_off, traceidratio, parentbased_always_on, parentbased_always_off,
	// parentbased_traceidratio), and SamplerArg is its OTEL_TRACES_SAMPLER_ARG (the
	// ratio of the traceidratio ones, 0 to 1 [1]). Empty Sampler means
	// parentbased_traceidratio at SampleRatio.
	Sampler, SamplerArg string
	// ResourceAttributes are more resource attributes, in OTEL_RESOURCE_ATTRIBUTES
	// form: key=value pairs separated by commas, values percent-encoded. They never
	// replace service.name, service.version or service.instance.id, which the
	// platform sets from the declaration.
	ResourceAttributes string
	// Disabled turns the SDK off as OTEL_SDK_DISABLED=true does: nothing is
	// recorded or exported. Trace ids are still made and propagated.
	Disabled bool
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
	extra, err := ParseResourceAttributes(cfg.ResourceAttributes)
	if err != nil {
		return nil, err
	}
	res, err := resource.Merge(resource.NewSchemaless(extra...), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(cfg.Service),
		semconv.ServiceVersion(cfg.Version),
		semconv.ServiceInstanceID(cfg.Instance),
	))
	if err == nil {
		res, err = resource.Merge(resource.Default(), res)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	sampler := sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
	if cfg.Sampler != "" {
		if sampler, err = ParseSampler(cfg.Sampler, cfg.SamplerArg); err != nil {
			return nil, err
		}
	}
	if cfg.Disabled {
		sampler = sdktrace.NeverSample()
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithSampler(sampler)}
	prop, err := ParsePropagators(cfg.Propagators)
	if err != nil {
		return nil, err
	}
	for _, exp := range cfg.Exporters {
		if cfg.Disabled {
			break // a disabled SDK exports nothing
		}
		opts = append(opts, sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)))
	}
	return &Tracing{Provider: sdktrace.NewTracerProvider(opts...), Propagator: prop}, nil
}

// ParseSampler builds the sampler OTEL_TRACES_SAMPLER names, with arg its
// OTEL_TRACES_SAMPLER_ARG: the ratio, 0 to 1, of the traceidratio samplers (empty
// means 1). The parentbased ones follow a caller's decision and apply the named
// sampler to new traces only.
func ParseSampler(name, arg string) (sdktrace.Sampler, error) {
	ratio := func() (float64, error) {
		if strings.TrimSpace(arg) == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(strings.TrimSpace(arg), 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("tracing: OTEL_TRACES_SAMPLER_ARG %q is not a ratio between 0 and 1", arg)
		}
		return r, nil
	}
	base, parent := strings.CutPrefix(strings.TrimSpace(name), "parentbased_")
	var s sdktrace.Sampler
	switch base {
	case "always_on":
		s = sdktrace.AlwaysSample()
	case "always_off":
		s = sdktrace.NeverSample()
	case "traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		s = sdktrace.TraceIDRatioBased(r)
	default:
		return nil, fmt.Errorf("tracing: OTEL_TRACES_SAMPLER: unknown sampler %q (want always_on, always_off, traceidratio or one of them after parentbased_)", name)
	}
	if parent {
		s = sdktrace.ParentBased(s)
	}
	return s, nil
}

// ParseResourceAttributes reads resource attributes in OTEL_RESOURCE_ATTRIBUTES
// form: key=value pairs separated by commas, values percent-encoded (W3C baggage
// octets). A pair without "=" or with an empty key is an error naming it.
func ParseResourceAttributes(list string) ([]attribute.KeyValue, error) {
	var kvs []attribute.KeyValue
	for pair := range strings.SplitSeq(list, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("tracing: OTEL_RESOURCE_ATTRIBUTES: %q is not key=value", pair)
		}
		value, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("tracing: OTEL_RESOURCE_ATTRIBUTES: the value of %q is not percent-encoded: %w", k, err)
		}
		kvs = append(kvs, attribute.String(k, value))
	}
	return kvs, nil
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
