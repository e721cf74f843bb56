package platform

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/sync/errgroup"

	"github.com/switchyard/switchyard"
	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/balancer"
	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/discovery/dns"
	"github.com/switchyard/switchyard/discovery/natskv"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/resilience"
	"github.com/switchyard/switchyard/rpc"
	"github.com/switchyard/switchyard/server"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/telemetry"
)

// Process is the wiring of one service's process: what its declaration implies,
// made on first use. A Build function receives it; it is not safe for use by
// several goroutines at once while building (Build runs alone), and its clients,
// bus and stores are safe for concurrent use once made.
type Process struct {
	// Name is the service's name.
	Name string
	// Config is the whole platform; Declared is this service's part of it (for the
	// gateway: its routes' services as dependencies).
	Config   *config.Config
	Declared *config.Service
	// Log is the service's logger; Tracing its tracer provider and propagator;
	// Metrics its Prometheus registry, served at /metrics.
	Log     *slog.Logger
	Tracing *telemetry.Tracing
	Metrics *telemetry.Metrics

	opt        Options
	getenv     func(string) string
	nc         *nats.Conn
	registry   discovery.Registry
	resolver   discovery.Resolver
	tokens     *authn.ServiceTokens
	certs      *authn.Certificates // under mutual TLS, in place of tokens
	callers    *authn.ServiceVerifier
	users      *authn.Verifier
	resilience *resilience.Metrics
	events     *event.Registry
	eventBus   bus.Bus
	busMetrics *bus.Metrics
	handlers   map[string]bus.Handler // consumers registered, by event type

	// consumers stop once the HTTP server has drained; runs (relays, client watches,
	// housekeeping) once the consumers have stopped; closers at exit, in reverse.
	consumers []func(context.Context) error
	runs      []func(context.Context) error
	closers   []func()
}

func newProcess(ctx context.Context, opt Options) (*Process, error) {
	cfg := opt.Config
	declared := cfg.Process(opt.Service)
	if declared == nil {
		return nil, fmt.Errorf("no service %q in %s; it declares %s", opt.Service, cfg.Source, strings.Join(cfg.ServiceNames(), ", "))
	}
	getenv := opt.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	logs := opt.Logs
	if logs == nil {
		logs = io.Discard
	}
	level, _ := telemetry.ParseLevel(cfg.Telemetry.LogLevel)
	log := telemetry.NewLogger(logs, telemetry.LogConfig{Service: opt.Service, Level: level, Text: opt.LogText})
	ratio := 1.0
	if cfg.Telemetry.SampleRatio != nil {
		ratio = *cfg.Telemetry.SampleRatio
	}
	version, _ := switchyard.Version()
	// The standard variables: a traces endpoint is the whole URL, used as it is;
	// the generic one (or the file's) gets /v1/traces appended. The exporter also
	// reads the OTEL_EXPORTER_OTLP_* variables for headers, timeout and compression.
	collector := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	if collector == "" && cfg.Telemetry.OTLPEndpoint != "" {
		collector = strings.TrimSuffix(cfg.Telemetry.OTLPEndpoint, "/") + "/v1/traces"
	}
	hub := getenv(EnvTraceHub)
	if hub != "" {
		hub += "/v1/traces"
	}
	var exporters []sdktrace.SpanExporter
	for _, endpoint := range []string{collector, hub} {
		if endpoint == "" {
			continue
		}
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
		if err != nil {
			return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", endpoint, err)
		}
		exporters = append(exporters, exp)
	}
	disabled, _ := strconv.ParseBool(getenv("OTEL_SDK_DISABLED"))
	tracing, err := telemetry.NewTracing(ctx, telemetry.TraceConfig{
		Service: opt.Service, Version: version, Instance: cmp.Or(opt.Listen, declared.Listen),
		SampleRatio: ratio, Exporters: exporters,
		Sampler: getenv("OTEL_TRACES_SAMPLER"), SamplerArg: getenv("OTEL_TRACES_SAMPLER_ARG"),
		ResourceAttributes: getenv("OTEL_RESOURCE_ATTRIBUTES"),
		Disabled:           disabled,
		Propagators:        cmp.Or(getenv(strings.ToUpper(opt.Service)+"_OTEL_PROPAGATORS"), getenv("OTEL_PROPAGATORS")),
	})
	if err != nil {
		return nil, err
	}
	return &Process{Name: opt.Service, Config: cfg, Declared: declared, Log: log, Tracing: tracing,
		Metrics: telemetry.NewMetrics(), opt: opt, getenv: getenv, handlers: map[string]bus.Handler{}}, nil
}

// Go runs fn with the process's background work: it starts once the server
// listens and stops, with the relays, after the consumers have stopped.
func (p *Process) Go(fn func(context.Context) error) { p.runs = append(p.runs, fn) }

// OnClose runs fn when the process exits, after everything has stopped (closers
// run in reverse order of registration).
func (p *Process) OnClose(fn func()) { p.closers = append(p.closers, fn) }

// Hub is the base URL of the local stack's trace and log hub, when `switchyard up`
// runs this process ("" otherwise).
func (p *Process) Hub() string { return p.getenv(EnvTraceHub) }

// Settings decodes the service's own settings (services.<name>.settings) into v,
// strictly; see config.Settings.Decode.
func (p *Process) Settings(v any) error { return p.Declared.Settings.Decode(v) }

// Database opens the service's own database (its URL from the configuration:
// SQLite by default, PostgreSQL in production) and applies migrations, which may be
// nil. It is closed when the process exits.
func (p *Process) Database(ctx context.Context, migrations fs.FS) (*store.DB, error) {
	cfg := store.Config{URL: p.Config.DatabaseURL(p.Name), Migrations: migrations, Logger: p.Log}
	if on := p.Config.Telemetry.DatabaseSpans; on != nil && *on || on == nil && p.Hub() != "" {
		cfg.Tracing = p.Tracing.Provider
	}
	db, err := store.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	p.OnClose(func() { db.Close() })
	p.Log.Info("database ready", "database", db.String())
	return db, nil
}

// nats returns the process's NATS connection, connecting on first use.
func (p *Process) nats() (*nats.Conn, error) {
	if p.nc != nil {
		return p.nc, nil
	}
	if p.Config.Broker.URL == "" {
		return nil, errors.New("no NATS server: set NATS_URL (switchyard up sets it), or choose another discovery kind")
	}
	nc, err := nats.Connect(p.Config.Broker.URL,
		nats.Name("switchyard-"+p.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				p.Log.Warn("disconnected from NATS", "error", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { p.Log.Info("reconnected to NATS") }),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s: %w", RedactURL(p.Config.Broker.URL), err)
	}
	p.nc = nc
	p.OnClose(nc.Close)
	return nc, nil
}

// Discovery returns the registry (nil for kinds whose platform registers
// instances itself) and the resolver of the configured kind.
func (p *Process) Discovery(ctx context.Context) (discovery.Registry, discovery.Resolver, error) {
	if p.resolver != nil {
		return p.registry, p.resolver, nil
	}
	d := p.Config.Discovery
	switch d.Kind {
	case "nats":
		nc, err := p.nats()
		if err != nil {
			return nil, nil, fmt.Errorf("discovery: %w", err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			return nil, nil, err
		}
		metrics, err := discovery.NewMetrics(p.Metrics.Registry)
		if err != nil {
			return nil, nil, err
		}
		kv, err := natskv.New(ctx, js, natskv.Config{Heartbeat: d.Heartbeat.Std(), Replicas: p.Config.Broker.Replicas, Logger: p.Log, Metrics: metrics})
		if err != nil {
			return nil, nil, err
		}
		p.registry, p.resolver = kv, kv
	case "static":
		var list []discovery.Instance
		for _, s := range p.Config.Processes() {
			list = append(list, discovery.Instance{Service: s.Name, ID: s.Name, Addr: s.Listen})
		}
		p.resolver = discovery.NewStatic(list...)
	case "dns":
		records, err := dns.New(dns.Config{Name: d.DNS.Name, SRV: d.DNS.SRV, Port: d.DNS.Port})
		if err != nil {
			return nil, nil, err
		}
		p.resolver = records
	}
	return p.registry, p.resolver, nil
}

// register announces this instance until ctx ends (a no-op where the platform
// registers instances itself).
func (p *Process) register(ctx context.Context, addr string) (func(context.Context) error, error) {
	reg, _, err := p.Discovery(ctx)
	if err != nil || reg == nil {
		return nil, err
	}
	if adv := p.getenv(EnvAdvertise); adv != "" {
		addr = adv
	}
	host, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return nil, fmt.Errorf("listening on %s, which is no address to be called at: set %s to host:port", addr, EnvAdvertise)
	}
	inst := discovery.Instance{Service: p.Name, ID: discovery.NewID(), Addr: addr, Version: p.opt.InstanceVersion, Weight: p.opt.Weight}
	if err := inst.Validate(); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error { return reg.Register(ctx, inst) }, nil
}

// identity loads the service's key and the trust bundle — or, under mutual TLS, its
// certificate and the CA bundle: from the paths the environment names, else from
// <data dir>/identity (which `switchyard up` fills).
func (p *Process) identity() error {
	if p.callers != nil {
		return nil
	}
	if p.Config.Security.TLS.Mutual() {
		return p.certificates()
	}
	keyPath, bundlePath := p.getenv(EnvServiceKey), p.getenv(EnvTrustBundle)
	dir := filepath.Join(p.Config.DataDir, "identity")
	if keyPath == "" {
		keyPath = filepath.Join(dir, p.Name+".key")
	}
	if bundlePath == "" {
		bundlePath = filepath.Join(dir, "bundle.json")
	}
	id, err := authn.LoadIdentity(p.Name, keyPath)
	if err != nil {
		return fmt.Errorf("%w (switchyard up creates identities; otherwise set %s and %s)", err, EnvServiceKey, EnvTrustBundle)
	}
	bundle, err := authn.LoadBundle(bundlePath)
	if err != nil {
		return err
	}
	p.tokens = authn.NewServiceTokens(id, nil)
	p.callers = authn.NewServiceVerifier(p.Name, bundle, p.Config.Callers(p.Name), nil)
	return nil
}

// certificates loads the service's certificate under mutual TLS: the certificate,
// its key and the CA bundle from the files the environment names, else
// <data dir>/identity/<service>.pem (certificate and key) and ca.crt. They are read
// again when they change.
func (p *Process) certificates() error {
	dir := filepath.Join(p.Config.DataDir, "identity")
	cert := cmp.Or(p.getenv(EnvServiceCert), filepath.Join(dir, authn.CertFile(p.Name)))
	key := cmp.Or(p.getenv(EnvServiceCertKey), cert)
	ca := cmp.Or(p.getenv(EnvServiceCA), filepath.Join(dir, authn.CACertFile))
	certs, err := authn.LoadCertificates(authn.CertConfig{Service: p.Name, TrustDomain: p.Config.Security.TLS.Domain(),
		Cert: cert, Key: key, CA: ca, Logger: p.Log})
	if err != nil {
		return fmt.Errorf("%w (security.service_tls is mutual: switchyard up issues the certificates; otherwise set %s, %s and %s)",
			err, EnvServiceCert, EnvServiceCertKey, EnvServiceCA)
	}
	p.certs = certs
	p.callers = authn.NewPeerVerifier(p.Name, certs.TrustDomain(), p.Config.Callers(p.Name))
	return nil
}

// Certificates is the service's certificate under mutual TLS
// (security.service_tls: mutual), nil otherwise.
func (p *Process) Certificates() (*authn.Certificates, error) {
	if err := p.identity(); err != nil {
		return nil, err
	}
	return p.certs, nil
}

// Tokens is the service's source of service tokens, for its calls; nil under mutual
// TLS, where the certificate proves the caller instead.
func (p *Process) Tokens() (*authn.ServiceTokens, error) {
	if err := p.identity(); err != nil {
		return nil, err
	}
	return p.tokens, nil
}

// Callers verifies the service token (under mutual TLS: the certificate) of each
// call to this service, admitting exactly its declared callers: the services that declare it as a dependency, and
// the gateway when a route leads to it.
func (p *Process) Callers() (*authn.ServiceVerifier, error) {
	if err := p.identity(); err != nil {
		return nil, err
	}
	return p.callers, nil
}

// ClientOption adjusts a dependency's client.
type ClientOption func(*clientOptions)

type clientOptions struct {
	keep      func(discovery.Instance) bool
	transport http.RoundTripper
}

// Keep narrows the instances the client sees (the gateway's canary halves).
func Keep(keep func(discovery.Instance) bool) ClientOption {
	return func(o *clientOptions) { o.keep = keep }
}

// Transport sends the client's REST attempts [rpc's tuned net/http transport].
func Transport(t http.RoundTripper) ClientOption {
	return func(o *clientOptions) { o.transport = t }
}

// Client builds the rpc client of a declared dependency, under its declared policy,
// with the service's tokens and telemetry; its watch runs with the process's
// background work. A dependency switchyard.yaml does not declare is refused.
func (p *Process) Client(ctx context.Context, dependency string, opts ...ClientOption) (*rpc.Client, error) {
	var o clientOptions
	for _, opt := range opts {
		opt(&o)
	}
	dep, ok := p.Declared.Dependencies[dependency]
	if !ok {
		return nil, fmt.Errorf("%s calls %s, which switchyard.yaml does not declare as its dependency", p.Name, dependency)
	}
	var (
		resolver discovery.Resolver
		err      error
	)
	if dep.Address != "" {
		// A fixed address stands for the dependency: one instance, always there.
		resolver = discovery.NewStatic(discovery.Instance{Service: dependency, ID: "address", Addr: dep.Address})
	} else if _, resolver, err = p.Discovery(ctx); err != nil {
		return nil, err
	}
	if o.keep != nil {
		resolver = discovery.Filter(resolver, o.keep)
	}
	var transport http.RoundTripper
	if dep.Protocol == "rest" {
		transport = o.transport
	}
	tokens, err := p.Tokens()
	if err != nil {
		return nil, err
	}
	var clientTLS *tls.Config
	if p.certs != nil {
		// Over mutual TLS, through rpc's TLS transport: a plain one (the gateway's
		// Wire) cannot carry it.
		clientTLS, transport = p.certs.ClientTLS(dependency), nil
	}
	if p.resilience == nil {
		if p.resilience, err = resilience.NewMetrics(p.Metrics.Registry); err != nil {
			return nil, err
		}
	}
	policy := PolicyConfig(dep.Policy)
	policy.Metrics = p.resilience
	ejected := p.resilience.Ejected(dependency)
	c, err := rpc.NewClient(ctx, rpc.ClientConfig{
		Service:  dependency,
		Protocol: rpc.Protocol(dep.Protocol),
		Resolver: resolver,
		Balancer: balancer.Config{OnEject: func(inst discovery.Instance, until time.Time) {
			ejected()
			p.Log.Warn("instance ejected", "dependency", dependency, "instance", inst.ID, "addr", inst.Addr, "until", until)
		}},
		Policy:     policy,
		Tokens:     tokens,
		TLS:        clientTLS,
		Transport:  transport,
		Tracer:     p.Tracing.Tracer("switchyard/rpc"),
		Propagator: p.Tracing.Propagator,
		Logger:     p.Log,
	})
	if err != nil {
		return nil, err
	}
	p.Go(c.Run)
	return c, nil
}

// PolicyConfig maps a dependency's declared policy onto the resilience stack.
func PolicyConfig(p config.Policy) resilience.Config {
	return resilience.Config{
		Timeout:             p.Timeout.Std(),
		TryTimeout:          p.TryTimeout.Std(),
		MaxAttempts:         p.Retry.MaxAttempts,
		Backoff:             p.Retry.Backoff.Std(),
		MaxBackoff:          p.Retry.MaxBackoff.Std(),
		BudgetRatio:         p.Retry.BudgetRatio,
		BudgetPerSecond:     p.Retry.BudgetPerSecond,
		FailureRatio:        p.Breaker.FailureRatio,
		MinCalls:            p.Breaker.MinCalls,
		Window:              p.Breaker.Window.Std(),
		ConsecutiveFailures: p.Breaker.ConsecutiveFailures,
		OpenFor:             p.Breaker.OpenFor.Std(),
		HalfOpenProbes:      p.Breaker.HalfOpenProbes,
		NoBreaker:           p.Breaker.Disabled,
		MaxConcurrent:       p.Bulkhead.MaxConcurrent,
		MaxWait:             p.Bulkhead.MaxWait.Std(),
		HedgeDelay:          p.Hedge.Delay.Std(),
		MaxHedges:           p.Hedge.Max,
	}
}

// GRPC is the component of a gRPC service: the connect handlers (with reflection
// and the standard health service) on the service's own port, open only to its
// declared callers; readiness follows db, and health turns to NOT_SERVING when
// draining begins.
func (p *Process) GRPC(db *store.DB, services ...rpc.GRPCService) (*Component, error) {
	callers, err := p.Callers()
	if err != nil {
		return nil, err
	}
	fail := rpc.WriteError(problem.Writer{Log: p.Log, RequestID: telemetry.RequestID})
	mux := http.NewServeMux()
	health := rpc.MountGRPC(mux, func(h http.Handler) http.Handler { return callers.RequireService(fail, h) }, services...)
	return &Component{
		Handler: mux,
		Checks:  map[string]server.Check{"database": db.PingContext},
		OnDrain: func() { health.SetServing(false) },
	}, nil
}

// server makes the HTTP server of the component, listening.
//
// Under mutual TLS a service that others call takes TLS on its port, and its whole
// application only from its declared callers: a certificate of any other fails the
// handshake, and a request without one (plain HTTP, or TLS with no certificate) is
// refused before any handler — only /livez, /readyz and /metrics answer it, for
// probes and scrapers. A process nobody calls (the gateway, an entry point) is an
// edge and keeps plain HTTP; its own calls go over mutual TLS.
func (p *Process) server(comp *Component, opt Options) (*server.Server, error) {
	app := comp.Handler
	var serverTLS *tls.Config
	if callers := p.Config.Callers(p.Name); p.Config.Security.TLS.Mutual() && len(callers) > 0 {
		verifier, err := p.Callers()
		if err != nil {
			return nil, err
		}
		serverTLS = p.certs.ServerTLS(callers)
		problems := problem.Writer{Log: p.Log, RequestID: telemetry.RequestID}
		grpcFail := rpc.WriteError(problems)
		fail := func(w http.ResponseWriter, r *http.Request, err error) {
			if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
				grpcFail(w, r, err) // a gRPC client reads a status, not a document
				return
			}
			problems.Write(w, r, err)
		}
		app = verifier.RequireService(fail, app)
	}
	handler := telemetry.Middleware(telemetry.HTTPConfig{
		Logger: p.Log, Tracer: p.Tracing.Tracer("switchyard/" + p.Name), Propagator: p.Tracing.Propagator,
		Metrics: p.Metrics, Untraced: comp.Untraced,
	})(rpc.Deadline(app))
	addr := cmp.Or(opt.Listen, p.Declared.Listen)
	srv := server.New(server.Config{Addr: addr, DrainDelay: opt.DrainDelay, MaxHeaderBytes: comp.MaxHeaderBytes,
		Profiling: p.getenv(EnvProfiling) == "1", TLS: serverTLS}, handler, p.Metrics.Handler(), p.Log)
	for check, fn := range comp.Checks {
		srv.AddCheck(check, fn)
	}
	if kv, ok := p.resolver.(*natskv.KV); ok {
		srv.AddCheck("discovery", func(context.Context) error {
			if since, stale := kv.Stale(); stale {
				return server.Degraded(fmt.Sprintf("the registry has not answered for %s; calls go to the instances last known", time.Since(since).Round(time.Second)))
			}
			return nil
		})
	}
	if comp.OnDrain != nil {
		srv.OnDrain(comp.OnDrain)
	}
	if err := srv.Listen(); err != nil {
		return nil, err
	}
	return srv, nil
}

// lifecycle runs the process and stops it in order when ctx ends (or a part fails):
// withdraw from discovery and stop accepting requests; let requests in flight finish;
// stop the consumers (they finish what they hold); then stop the relays (they flush
// what requests and consumers wrote) and the rest.
func (p *Process) lifecycle(ctx context.Context, srv *server.Server, register func(context.Context) error) error {
	run, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	phase := func(parts []func(context.Context) error) (stop func()) {
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		g := &errgroup.Group{}
		for _, part := range parts {
			g.Go(func() error {
				err := part(pctx)
				if err != nil && !errors.Is(err, context.Canceled) {
					fail(err) // one part failing stops the process
				}
				return err
			})
		}
		return func() { cancel(); _ = g.Wait() }
	}
	stopRuns := phase(p.runs)
	stopConsumers := phase(p.consumers)
	if register != nil {
		regCtx, withdraw := context.WithCancel(context.WithoutCancel(ctx))
		srv.OnDrain(withdraw)
		stopRegister := phase([]func(context.Context) error{func(context.Context) error { return register(regCtx) }})
		defer stopRegister()
	}
	err := srv.Run(run)
	stopConsumers()
	stopRuns()
	if cause := context.Cause(run); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// close releases what the process opened, last first, and flushes its traces.
func (p *Process) close(ctx context.Context) {
	for _, c := range slices.Backward(p.closers) {
		c()
	}
	p.closers = nil
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if err := p.Tracing.Shutdown(shutdownCtx); err != nil {
		p.Log.Warn("flush traces", "error", err)
	}
}

// RedactURL hides the credentials of a URL (or of each URL in a comma-separated
// list) for display.
func RedactURL(raw string) string {
	parts := strings.Split(raw, ",")
	for i, part := range parts {
		if u, err := url.Parse(strings.TrimSpace(part)); err == nil && u.User != nil {
			u.User = url.User("xxxxx")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}
