package telemetry

import (
	"bufio"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/problem"
)

// RequestIDHeader carries the request id between hops and back to the client.
const RequestIDHeader = "X-Request-Id"

type requestIDKey struct{}

// RequestID returns the id of the request being served in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// WithRequestID returns ctx carrying id, so outgoing calls and logs carry it on.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// HTTPConfig configures Middleware.
type HTTPConfig struct {
	// Logger receives the access log (info) and panics (error).
	Logger *slog.Logger
	// Tracer starts the server span of each request.
	Tracer trace.Tracer
	// Propagator extracts the caller's trace context; default W3C + baggage.
	Propagator propagation.TextMapPropagator
	// Metrics records RED metrics per route.
	Metrics *Metrics
	// Untraced, when set, names requests served without a span (still logged and
	// counted): a dashboard's own polling, static files.
	Untraced func(*http.Request) bool
}

// Middleware wraps next — normally an *http.ServeMux, whose matched pattern names
// the route in spans and metrics — with, outermost first:
//
//   - recovery: a panic becomes a 500 problem document; the stack goes to the log only;
//   - a request id, taken from X-Request-Id when well-formed, minted otherwise, and
//     echoed on the response;
//   - a server span continuing the caller's W3C trace context;
//   - RED metrics per method, route pattern and status code;
//   - one access-log line per request (path without the query, which may hold secrets).
func Middleware(cfg HTTPConfig) func(http.Handler) http.Handler {
	if cfg.Propagator == nil {
		cfg.Propagator = Propagator()
	}
	if cfg.Logger == nil {
		cfg.Logger = Discard()
	}
	pw := problem.Writer{Log: cfg.Logger, RequestID: RequestID}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			id := r.Header.Get(RequestIDHeader)
			if !validRequestID(id) {
				id = rand.Text()
			}
			w.Header().Set(RequestIDHeader, id)

			ctx := cfg.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			ctx = WithRequestID(ctx, id)
			var span trace.Span
			if cfg.Tracer != nil && (cfg.Untraced == nil || !cfg.Untraced(r)) {
				scheme := "http"
				if r.TLS != nil {
					scheme = "https"
				}
				ctx, span = cfg.Tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
					trace.WithAttributes(
						semconv.HTTPRequestMethodKey.String(r.Method),
						semconv.URLPath(r.URL.Path),
						semconv.URLScheme(scheme),
						attribute.String(KeyRequestID, id),
					))
			}
			rec := &recorder{ResponseWriter: w}
			r = r.WithContext(ctx)
			if cfg.Metrics != nil {
				cfg.Metrics.inFlight.Inc()
			}

			defer func() {
				panicked := recover()
				if panicked != nil {
					if panicked == http.ErrAbortHandler { //nolint:errorlint // net/http compares this sentinel by identity
						panic(panicked) //nolint:forbidigo // re-raising ErrAbortHandler is net/http's documented way to abort a response
					}
					cfg.Logger.ErrorContext(ctx, "panic serving request", "panic", fmt.Sprint(panicked), "stack", string(debug.Stack()))
					if !rec.wroteHeader {
						pw.Write(rec, r, errors.New("panic"))
					}
				}
				route := routeOf(r.Pattern)
				elapsed := time.Since(start)
				if cfg.Metrics != nil {
					cfg.Metrics.inFlight.Dec()
					m := methodLabel(r.Method)
					code := strconv.Itoa(rec.status())
					cfg.Metrics.requests.WithLabelValues(m, route, code).Inc()
					cfg.Metrics.duration.WithLabelValues(m, route, code).Observe(elapsed.Seconds())
				}
				if span != nil {
					served(span, r, rec, route)
					span.End()
				}
				cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "request",
					slog.String("method", r.Method),
					slog.String("route", route),
					slog.String("path", r.URL.Path),
					slog.Int("status", rec.status()),
					slog.Int64("bytes", rec.bytes),
					slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
					slog.String("remote", remoteHost(r.RemoteAddr)),
				)
			}()
			next.ServeHTTP(rec, r)
		})
	}
}

// served names and completes a request's server span: an HTTP request's by its
// method and route; a gRPC one's (gRPC, or Connect's own protocol) by its
// package.Service/Method, with the status its trailers or headers carry.
func served(span trace.Span, r *http.Request, rec *recorder, route string) {
	status := rec.status()
	span.SetAttributes(semconv.HTTPRoute(route), semconv.HTTPResponseStatusCode(status))
	if system, ok := rpcSystem(r); ok {
		method := strings.TrimPrefix(r.URL.Path, "/")
		span.SetName(method)
		span.SetAttributes(system, semconv.RPCMethod(method))
		code := ""
		for _, k := range []string{"Grpc-Status", http.TrailerPrefix + "Grpc-Status"} {
			code = cmp.Or(code, rec.Header().Get(k))
		}
		if code != "" {
			name := GRPCCodeName(code)
			span.SetAttributes(semconv.RPCResponseStatusCode(name))
			if serverFault[name] {
				span.SetAttributes(semconv.ErrorTypeKey.String(name))
				span.SetStatus(codes.Error, name)
			}
			return
		}
	} else {
		span.SetName(r.Method + " " + route)
	}
	if status >= 500 {
		span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(status)))
		span.SetStatus(codes.Error, http.StatusText(status))
	}
}

// serverFault are the gRPC codes that mark a server span failed, as the
// conventions list them: the server's faults, not the caller's.
var serverFault = map[string]bool{"UNKNOWN": true, "DEADLINE_EXCEEDED": true, "UNIMPLEMENTED": true,
	"INTERNAL": true, "UNAVAILABLE": true, "DATA_LOSS": true}

// rpcSystem says whether r is a call of an RPC protocol, and which: gRPC (and
// gRPC-Web) by its content type, Connect's protocol by its version header or its
// streaming content type.
func rpcSystem(r *http.Request) (attribute.KeyValue, bool) {
	ct := r.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "application/grpc"):
		return semconv.RPCSystemNameGRPC, true
	case r.Header.Get("Connect-Protocol-Version") != "" || strings.HasPrefix(ct, "application/connect+"):
		return semconv.RPCSystemNameConnectrpc, true
	}
	return attribute.KeyValue{}, false
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !idChar(c) {
			return false
		}
	}
	return true
}

func idChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
}

// routeOf turns a ServeMux pattern ("GET /v1/users/{id}") into a route label
// ("/v1/users/{id}"), bounding label cardinality: unmatched requests share one label.
func routeOf(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	if _, path, ok := strings.Cut(pattern, " "); ok {
		return path
	}
	return pattern
}

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

func remoteHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// recorder notes the status and size of a response. It passes Flush and Hijack
// through (WebSocket upgrades and streaming need them) and unwraps for
// http.ResponseController.
type recorder struct {
	http.ResponseWriter
	code        int
	bytes       int64
	wroteHeader bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader && code >= 200 {
		r.code, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wroteHeader {
		r.code, r.wroteHeader = http.StatusOK, true
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) Flush() { _ = http.NewResponseController(r.ResponseWriter).Flush() }

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil {
		r.code, r.wroteHeader = http.StatusSwitchingProtocols, true
	}
	return conn, rw, err
}
