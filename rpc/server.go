package rpc

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/observe"
	"github.com/switchyard/switchyard/problem"
)

// MaxPropagatedTimeout caps the deadline a caller may impose through TimeoutHeader.
const MaxPropagatedTimeout = time.Minute

// Deadline applies a caller's propagated deadline (TimeoutHeader) to the request's
// context, so the handler's database calls and outgoing calls stop when it passes,
// and records the time left on the request's span — for gRPC too, whose
// grpc-timeout connect applies itself. A malformed header is refused with 400. A
// protocol upgrade (a WebSocket) opens a stream that outlives any call: no
// deadline applies to it.
func Deadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			next.ServeHTTP(w, r)
			return
		}
		v := r.Header.Get(TimeoutHeader)
		if v == "" {
			if d, ok := grpcTimeout(r.Header.Get("Grpc-Timeout")); ok {
				trace.SpanFromContext(r.Context()).SetAttributes(attribute.Int64(observe.DeadlineAttribute, d.Milliseconds()))
			}
			next.ServeHTTP(w, r)
			return
		}
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms <= 0 {
			problem.Writer{}.Write(w, r, problem.New(problem.Invalid, "%s must be a positive number of milliseconds", TimeoutHeader))
			return
		}
		d := min(time.Duration(ms)*time.Millisecond, MaxPropagatedTimeout)
		trace.SpanFromContext(r.Context()).SetAttributes(attribute.Int64(observe.DeadlineAttribute, d.Milliseconds()))
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		inner := r.WithContext(ctx)
		next.ServeHTTP(w, inner)
		// A ServeMux names the route on the request it was given; the middleware
		// outside (spans, metrics, the access log) reads it from the original.
		r.Pattern = inner.Pattern
	})
}

// grpcTimeout parses a grpc-timeout header: at most eight digits and a unit.
func grpcTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	unit := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second, 'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond}[v[len(v)-1]]
	if unit == 0 {
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// GRPCService is one connect service handler to mount.
type GRPCService struct {
	// Name is the fully qualified service name, e.g. switchyard.inventory.v1.InventoryService.
	Name string
	// Path is the handler's path prefix, as returned by the generated New...Handler.
	Path string
	// Handler serves it.
	Handler http.Handler
}

// MountGRPC puts services on mux with gRPC server reflection (v1 and v1alpha) and the
// standard health service. guard wraps the services and reflection (e.g. to require
// service tokens); health stays open, as probes expect. The returned checker reports
// NOT_SERVING once SetServing(false) is called, when the process starts to drain.
func MountGRPC(mux *http.ServeMux, guard func(http.Handler) http.Handler, services ...GRPCService) *Health {
	names := make([]string, 0, len(services))
	for _, s := range services {
		names = append(names, s.Name)
		mux.Handle(s.Path, guard(s.Handler))
	}
	reflector := grpcreflect.NewStaticReflector(append(slices.Clone(names),
		grpchealth.HealthV1ServiceName, grpcreflect.ReflectV1ServiceName, grpcreflect.ReflectV1AlphaServiceName)...)
	path, h := grpcreflect.NewHandlerV1(reflector)
	mux.Handle(path, guard(h))
	path, h = grpcreflect.NewHandlerV1Alpha(reflector)
	mux.Handle(path, guard(h))
	checker := grpchealth.NewStaticChecker(names...)
	path, h = grpchealth.NewHandler(checker)
	mux.Handle(path, h)
	return &Health{checker: checker, names: names}
}

// Health is the gRPC health status of mounted services.
type Health struct {
	checker *grpchealth.StaticChecker
	names   []string
}

// SetServing sets every mounted service (and the server as a whole) to SERVING or
// NOT_SERVING.
func (h *Health) SetServing(serving bool) {
	status := grpchealth.StatusServing
	if !serving {
		status = grpchealth.StatusNotServing
	}
	h.checker.SetStatus("", status)
	for _, n := range h.names {
		h.checker.SetStatus(n, status)
	}
}

var errorWriter = connect.NewErrorWriter()

// WriteError answers a failed request in its own protocol: a gRPC (or Connect)
// request gets a gRPC status, anything else an RFC 9457 problem document. Guards in
// front of gRPC handlers use it, so stock gRPC clients see UNAUTHENTICATED, not an
// HTTP 401 they cannot read.
func WriteError(problems problem.Writer) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		if errorWriter.IsSupported(r) {
			_ = errorWriter.Write(w, r, ConnectError(err))
			return
		}
		problems.Write(w, r, err)
	}
}

// HandlerOptions are the connect handler options every Switchyard gRPC service uses:
// a bounded message size and errors translated from problems.
func HandlerOptions() []connect.HandlerOption {
	return []connect.HandlerOption{
		connect.WithReadMaxBytes(1 << 20),
		// Compressing a 100-byte answer costs more CPU than the bytes it saves on any
		// network a service call crosses; only large ones are worth it.
		connect.WithCompressMinBytes(4 << 10),
		connect.WithInterceptors(problemInterceptor{}),
	}
}
