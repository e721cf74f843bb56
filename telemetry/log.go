// Package telemetry gives a service its logs, traces and metrics, and the HTTP
// middleware that ties them to every request.
//
//   - Logs are log/slog records, JSON (or text for a human at a terminal), each
//     carrying the service and, from the context, trace_id, span_id and request_id.
//     Values under keys that name secrets (password, token, authorization, ...) are
//     replaced before they are written.
//   - Traces come from an OpenTelemetry tracer provider with W3C trace context and
//     baggage propagation, exported over OTLP/HTTP when an endpoint is configured.
//     Nothing is installed globally: the provider is passed to whoever needs it.
//   - Metrics live in a Prometheus registry owned by the process (not the global
//     default), served on /metrics.
//
// Compose them once per process in its composition root, then wrap the service's
// handler with [Middleware].
package telemetry

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// LogConfig configures a process logger.
type LogConfig struct {
	// Service is added to every record as "service".
	Service string
	// Level is the minimum level written.
	Level slog.Level
	// Text selects the human-readable text format instead of JSON.
	Text bool
}

// ParseLevel parses debug, info, warn or error.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

// NewLogger returns a logger writing to w.
func NewLogger(w io.Writer, cfg LogConfig) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.Level, ReplaceAttr: redact}
	var h slog.Handler
	if cfg.Text {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	log := slog.New(contextHandler{h})
	if cfg.Service != "" {
		log = log.With("service", cfg.Service)
	}
	return log
}

// contextHandler adds the trace, span and request ids found in a record's context.
type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}

// secretKeys are attribute keys whose values never reach a log.
var secretKeys = []string{"password", "passwd", "secret", "token", "authorization", "cookie", "api_key", "apikey", "private_key", "card_number"}

// redact replaces the value of any attribute whose key names a secret.
func redact(_ []string, a slog.Attr) slog.Attr {
	key := strings.ToLower(a.Key)
	for _, s := range secretKeys {
		if strings.Contains(key, s) {
			return slog.String(a.Key, "[redacted]")
		}
	}
	return a
}

// Discard is a logger that writes nothing, for tests and tools.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
