// Package platform is the composition root of every Switchyard service: from the
// platform's declaration (switchyard.yaml, as a *config.Config) and a service's
// name it builds what the declaration implies, and runs it.
//
// A service is a [Service] value: its name and one Build function. Build receives
// a [Process] — the parts — and returns a [Component] — what the service serves:
//
//   - the logger, the tracer provider and the metrics registry, named for the
//     service;
//   - its own database (Process.Database), migrated;
//   - one rpc client per declared dependency, under that dependency's policy, its
//     instances found through discovery (Process.Client); calling anything else is
//     refused;
//   - the event bus, limited to the declared publications and subscriptions
//     (Process.Outbox, Process.Consume): a publication not declared is refused, a
//     handler for a type not subscribed is not started;
//   - the outbox on the service's own database with its relay, and inbox-backed
//     consumers (Process.Inbox);
//   - the service identity: tokens for its calls, and the verifier admitting only
//     its declared callers (Process.Callers);
//   - the HTTP server (HTTP/1.1 and h2c on one port, so REST and gRPC share it)
//     with /livez, /readyz and /metrics, registration in discovery, and an ordered
//     drain.
//
// [Serve] runs one service in the foreground (what `switchyard serve` and a
// container run); [Start] runs one in the background of a test. The switchyard
// binary, `switchyard up`, the end-to-end harness and a user's own binary all build
// their services through this package: one wiring, used everywhere.
//
// Lifecycle: when the context ends, the instance withdraws from discovery and
// /readyz turns to draining; requests in flight finish; the consumers stop (they
// finish what they hold); then the relays flush what requests and consumers wrote,
// and the background work stops. One part failing stops the process, with its
// error.
package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/saga"
	"github.com/switchyard/switchyard/server"
)

// Service is one service a binary can run.
type Service struct {
	// Name is the service's name in switchyard.yaml. Required.
	Name string
	// Build makes the service from the parts its declaration implies. Required.
	// It runs once per process, before the server listens; what it starts in the
	// background it hands to Process.Go.
	Build func(ctx context.Context, p *Process) (*Component, error)
	// Sagas describes the sagas the service runs, for the design document and the
	// alerts; it receives the service's declaration (its settings set the
	// deadlines). Nil when it runs none.
	Sagas func(declared *config.Service) ([]SagaInfo, error)
	// Uses names the shared infrastructure the service reaches beyond its database
	// and the broker, for the deployment manifests: "redis".
	Uses []string
}

// SagaInfo describes one kind of saga a service runs.
type SagaInfo struct {
	Name     string
	Deadline time.Duration
	Steps    []saga.StepInfo
}

// Component is what a service serves.
type Component struct {
	// Handler serves the service's API (REST, gRPC or both). Required.
	Handler http.Handler
	// Checks gate readiness, beside the platform's own (discovery).
	Checks map[string]server.Check
	// OnDrain runs when draining begins; may be nil.
	OnDrain func()
	// MaxHeaderBytes, when set, replaces the server's header limit [64 KiB].
	MaxHeaderBytes int
	// Untraced, when set, names requests served without a span (static files).
	Untraced func(*http.Request) bool
}

// Options say which service to run, and how.
type Options struct {
	// Config is the platform, loaded. Required.
	Config *config.Config
	// Service names the service to run; it must be declared in Config (or be the
	// gateway). Required.
	Service string
	// Events holds the event schemas, <type>.json each (the shop's are api/events).
	// Required when the service publishes or consumes.
	Events fs.FS
	// Listen replaces the declared listen address.
	Listen string
	// DrainDelay is how long /readyz reports draining before the listener closes.
	DrainDelay time.Duration
	// InstanceVersion is the version tag this instance announces (canary routing).
	InstanceVersion string
	// Weight is the share of traffic the instance asks for under weighted
	// balancing [100].
	Weight int
	// Getenv reads the process's environment: the identity's paths, the trace hub,
	// propagators, the profiler switch (see the Env constants) [none set].
	Getenv func(string) string
	// Logs receives the service's log lines [discarded]; LogText writes them for
	// people instead of as JSON.
	Logs    io.Writer
	LogText bool
	// OnListen, when set, is told the address the server listens on, before the
	// service registers in discovery.
	OnListen func(addr string)
}

// Environment variables through which a process receives what is not in the
// platform's declaration.
const (
	EnvServiceKey  = "SWITCHYARD_SERVICE_KEY"  // path of the service's PEM Ed25519 key
	EnvTrustBundle = "SWITCHYARD_TRUST_BUNDLE" // path of the bundle of every service's public key
	// Under mutual TLS (security.service_tls: mutual), in place of the two above:
	EnvServiceCert    = "SWITCHYARD_SERVICE_CERT"     // path of the service's PEM certificate (a Secret's tls.crt)
	EnvServiceCertKey = "SWITCHYARD_SERVICE_CERT_KEY" // path of its PEM private key (tls.key) [the certificate's file]
	EnvServiceCA      = "SWITCHYARD_SERVICE_CA"       // path of the PEM bundle of trusted CAs (ca.crt)
	EnvAdvertise      = "SWITCHYARD_ADVERTISE_ADDR"   // the address to register under, when listening on 0.0.0.0
	EnvTraceHub       = "SWITCHYARD_TRACE_HUB"        // base URL of `switchyard up`'s trace and log hub
	EnvProfiling      = "SWITCHYARD_PPROF"            // 1 mounts Go's profiler at /debug/pprof/
)

// Serve builds svc and runs it until ctx ends, then drains it.
func Serve(ctx context.Context, svc Service, opt Options) error {
	r, err := Start(ctx, svc, opt)
	if err != nil {
		return err
	}
	return r.Wait()
}

// Running is a service started by Start.
type Running struct {
	// Addr is where it listens.
	Addr string
	// Process holds its parts (for a test harness that feeds a consumer by hand).
	Process *Process
	done    chan struct{}
	err     error
}

// Wait blocks until the service has stopped (its context ended and it drained, or
// a part failed) and returns why.
func (r *Running) Wait() error {
	<-r.done
	return r.err
}

// Start builds svc, makes it listen and register, and runs it in the background
// until ctx ends. It returns once the service is serving.
func Start(ctx context.Context, svc Service, opt Options) (*Running, error) {
	if svc.Name == "" || svc.Build == nil {
		return nil, errors.New("platform: a service needs a Name and a Build function")
	}
	if opt.Config == nil {
		return nil, errors.New("platform: Options.Config is required")
	}
	if opt.Service == "" {
		opt.Service = svc.Name
	}
	if opt.Service != svc.Name {
		return nil, fmt.Errorf("platform: asked to run %s with the builder of %s", opt.Service, svc.Name)
	}
	p, err := newProcess(ctx, opt)
	if err != nil {
		return nil, err
	}
	comp, err := svc.Build(ctx, p)
	if err != nil {
		p.close(ctx)
		return nil, fmt.Errorf("start %s: %w", svc.Name, err)
	}
	if comp == nil || comp.Handler == nil {
		p.close(ctx)
		return nil, fmt.Errorf("start %s: its Build returned no handler", svc.Name)
	}
	if _, _, err := p.Discovery(ctx); err != nil {
		p.close(ctx)
		return nil, err
	}
	srv, err := p.server(comp, opt)
	if err != nil {
		p.close(ctx)
		return nil, err
	}
	if opt.OnListen != nil {
		opt.OnListen(srv.Addr().String())
	}
	register, err := p.register(ctx, srv.Addr().String())
	if err != nil {
		p.close(ctx)
		return nil, err
	}
	r := &Running{Addr: srv.Addr().String(), Process: p, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = p.lifecycle(ctx, srv, register)
		p.close(ctx)
	}()
	return r, nil
}
