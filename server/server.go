// Package server runs a service's HTTP server with the endpoints every Switchyard
// process exposes — /livez, /readyz and /metrics — and a bounded, graceful drain. It
// speaks HTTP/1.1 and HTTP/2 without TLS on one port, so REST and gRPC share it;
// given a TLS configuration (Config.TLS) it also takes TLS, HTTP/2 or HTTP/1.1, on
// the same port, so that probes without certificates still reach it.
//
// Lifecycle: [Server.Listen] binds the address (so the caller can announce the real
// port), [Server.Run] serves until its context ends, then drains:
//
//  1. /readyz turns 503 ("draining"), so load balancers and clients stop sending;
//  2. after DrainDelay, the listener closes and in-flight requests finish
//     (http.Server.Shutdown), for at most ShutdownTimeout;
//  3. the shutdown hooks run (WebSocket hubs, consumers) and Run returns.
//
// Readiness is the conjunction of named checks (database reachable, broker
// connected, ...), each bounded by a timeout; liveness only says the process serves.
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Server. Zero fields take the default in brackets.
type Config struct {
	// Addr is the listen address, host:port; port 0 picks a free one.
	Addr string
	// DrainDelay is how long /readyz reports draining before the listener closes, so
	// that endpoints lists catch up [0; use ~5s behind a Kubernetes Service].
	DrainDelay time.Duration
	// ShutdownTimeout bounds the wait for in-flight requests [5s].
	ShutdownTimeout time.Duration
	// ReadHeaderTimeout bounds reading request headers [5s].
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections [120s].
	IdleTimeout time.Duration
	// MaxHeaderBytes caps request headers [64 KiB].
	MaxHeaderBytes int
	// CheckTimeout bounds each readiness check [2s].
	CheckTimeout time.Duration
	// TLS, when set, serves TLS connections (HTTP/2 and HTTP/1.1, as ALPN says) beside
	// plain ones on the same port, told apart by their first byte; requests over TLS
	// have their http.Request.TLS set [plain HTTP only].
	TLS *tls.Config
	// Profiling mounts Go's profiler at /debug/pprof/ [off: it shows the process's
	// internals to whoever reaches the port; turn it on to measure, then off].
	Profiling bool
}

func (c *Config) defaults() {
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 5 * time.Second
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = 5 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 120 * time.Second
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = 2 * time.Second
	}
}

// Check reports whether one dependency of readiness is fine. An error made by
// [Degraded] leaves the instance ready and reports the part degraded.
type Check func(ctx context.Context) error

// DegradedError is a check's finding that a part works in a reduced way (serving
// what it last knew, say) that should not take the instance out of rotation.
type DegradedError struct {
	// Reason is served in /readyz: it must name nothing internal.
	Reason string
}

func (e *DegradedError) Error() string { return e.Reason }

// Degraded returns a check's degraded finding; reason is shown on /readyz.
func Degraded(reason string) error { return &DegradedError{Reason: reason} }

// Server is one service's HTTP server.
type Server struct {
	cfg      Config
	log      *slog.Logger
	http     *http.Server
	ln       net.Listener
	draining atomic.Bool

	mu     sync.Mutex
	checks []namedCheck
	hooks  []func(context.Context)
	drain  []func()
}

type namedCheck struct {
	name string
	fn   Check
}

// New returns a server for app, with /livez, /readyz and (when metrics is not nil)
// /metrics mounted beside it, outside app's middleware.
func New(cfg Config, app http.Handler, metrics http.Handler, log *slog.Logger) *Server {
	cfg.defaults()
	s := &Server{cfg: cfg, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", s.live)
	mux.HandleFunc("GET /readyz", s.ready)
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	if cfg.Profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	}
	mux.Handle("/", app)
	// HTTP/1.1 for REST and HTTP/2 without TLS ("h2c", prior knowledge) for gRPC, on
	// the same port.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	protocols.SetHTTP2(cfg.TLS != nil)
	s.http = &http.Server{
		Protocols:         &protocols,
		Handler:           mux,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s
}

// AddCheck adds a readiness check. Safe to call while serving.
func (s *Server) AddCheck(name string, fn Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, namedCheck{name, fn})
}

// OnShutdown registers fn to run once in-flight requests have drained (or the drain
// timed out): close hijacked connections, stop consumers. fn gets a context bounded
// by ShutdownTimeout.
func (s *Server) OnShutdown(fn func(context.Context)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, fn)
}

// OnDrain registers fn to run as soon as draining begins (before the drain delay):
// withdraw from discovery, report NOT_SERVING to gRPC health checks.
func (s *Server) OnDrain(fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drain = append(s.drain, fn)
}

// Listen binds the configured address. Run calls it when the caller has not.
func (s *Server) Listen() error {
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	if s.cfg.TLS != nil {
		ln = newSniffing(ln, s.cfg.TLS, s.cfg.ReadHeaderTimeout)
	}
	s.ln = ln
	return nil
}

// Addr is the bound address; nil before Listen.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Draining reports whether the server has begun to drain.
func (s *Server) Draining() bool { return s.draining.Load() }

// Run serves until ctx ends, then drains as the package documentation describes.
// It returns nil after a clean drain.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.http.Serve(s.ln) }()
	s.log.Info("serving", "addr", s.ln.Addr().String())

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	s.draining.Store(true)
	s.log.Info("draining", "delay", s.cfg.DrainDelay, "timeout", s.cfg.ShutdownTimeout)
	s.mu.Lock()
	onDrain := slices.Clone(s.drain)
	s.mu.Unlock()
	for _, fn := range onDrain {
		fn()
	}
	if s.cfg.DrainDelay > 0 {
		time.Sleep(s.cfg.DrainDelay)
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.http.Shutdown(shutdownCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		s.log.Warn("drain timed out; closing remaining connections")
		_ = s.http.Close()
		err = nil
	}
	s.mu.Lock()
	hooks := slices.Clone(s.hooks)
	s.mu.Unlock()
	for _, h := range hooks {
		h(shutdownCtx)
	}
	if e := <-serveErr; e != nil && !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	s.log.Info("stopped")
	return err
}

func (s *Server) live(w http.ResponseWriter, _ *http.Request) {
	writeStatus(w, http.StatusOK, map[string]any{"status": "ok"})
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeStatus(w, http.StatusServiceUnavailable, map[string]any{"status": "draining"})
		return
	}
	s.mu.Lock()
	checks := slices.Clone(s.checks)
	s.mu.Unlock()

	results := make(map[string]string, len(checks))
	degraded := map[string]string{}
	ok := true
	for _, c := range checks {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CheckTimeout)
		err := c.fn(ctx)
		cancel()
		var d *DegradedError
		switch {
		case err == nil:
			results[c.name] = "ok"
		case errors.As(err, &d):
			results[c.name] = "degraded"
			degraded[c.name] = d.Reason
		default:
			ok = false
			results[c.name] = "failing" // the reason may name internal hosts: log it, do not serve it
			s.log.Warn("readiness check failed", "check", c.name, "error", err.Error())
		}
	}
	status, code := "ok", http.StatusOK
	switch {
	case !ok:
		status, code = "unavailable", http.StatusServiceUnavailable
	case len(degraded) > 0:
		status = "degraded"
	}
	body := map[string]any{"status": status, "checks": results}
	if len(degraded) > 0 {
		body["degraded"] = degraded
	}
	writeStatus(w, code, body)
}

func writeStatus(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}
