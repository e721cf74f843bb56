package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard"
	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/discovery/natskv"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/resilience"
	"github.com/switchyard/switchyard/server"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/supervisor"
	"github.com/switchyard/switchyard/telemetry"
)

// component is what a service's composition root gives serve to run.
type component struct {
	// handler serves the service's API.
	handler http.Handler
	// run does the service's background work until its context ends; may be nil.
	run func(context.Context) error
	// checks gate readiness.
	checks map[string]server.Check
	// onDrain runs when draining begins; may be nil.
	onDrain func()
	// maxHeaderBytes, when set, replaces the server's header limit (the gateway reads
	// oversize headers itself, to answer a 100 KB Authorization with 401).
	maxHeaderBytes int
	// untraced, when set, names requests served without a span.
	untraced func(*http.Request) bool
}

// process holds what every service process shares: its slice of the configuration,
// logger, tracer provider, metrics registry, its connections and identity (made on
// first use, see wiring.go), the background work of its clients, and the resources
// to close at exit.
type process struct {
	name    string
	version string // instance version tag, for canary routing
	weight  int
	getenv  func(string) string
	cfg     *config.Config
	service *config.Service
	log     *slog.Logger
	tracing *telemetry.Tracing
	metrics *telemetry.Metrics

	nc         *nats.Conn
	registry   discovery.Registry
	resolver   discovery.Resolver
	tokens     *authn.ServiceTokens
	services   *authn.ServiceVerifier
	resilience *resilience.Metrics
	events     *event.Registry
	eventBus   bus.Bus
	busMetrics *bus.Metrics

	// consumers stop once the HTTP server has drained; runs (relays, client watches,
	// housekeeping) once the consumers have stopped.
	consumers []func(context.Context) error
	runs      []func(context.Context) error
	closers   []func()
}

// openStore opens the service's own database and migrates it.
func (p *process) openStore(ctx context.Context, migrations fs.FS) (*store.DB, error) {
	cfg := store.Config{URL: p.cfg.DatabaseURL(p.name), Migrations: migrations, Logger: p.log}
	if on := p.cfg.Telemetry.DatabaseSpans; on != nil && *on || on == nil && p.getenv(envTraceHub) != "" {
		cfg.Tracing = p.tracing.Provider
	}
	db, err := store.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	p.closers = append(p.closers, func() { db.Close() })
	p.log.Info("database ready", "database", db.String())
	return db, nil
}

// builders are the composition roots, one per service this binary implements.
var builders = map[string]func(context.Context, *process) (*component, error){
	"users":         buildUsers,
	"catalog":       buildCatalog,
	"inventory":     buildInventory,
	"orders":        buildOrders,
	"payments":      buildPayments,
	"notifications": buildNotifications,
	"gateway":       buildGateway,
}

func cmdServe(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "serve")
	configPath := configFlag(fs)
	listen := fs.String("listen", "", "`host:port` to serve on (default: the service's listen address in the platform file)")
	drainDelay := fs.Duration("drain-delay", 0, "how long /readyz reports draining before the listener closes (e.g. 5s behind a Kubernetes Service)")
	instanceVersion := fs.String("instance-version", "", "version `tag` this instance announces (e.g. v2), for canary routing")
	weight := fs.Int("weight", 0, "relative share of traffic this instance asks for under weighted balancing (default 100)")
	name := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:] // serve <service> [flags]
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0) // serve [flags] <service>
	} else if fs.NArg() > 0 || name == "" {
		return usageErrorf("serve needs exactly one service name (see switchyard serve --help)")
	}
	cfg, _, err := loadConfig(e, *configPath)
	if err != nil {
		return err
	}
	svc := cfg.Service(name)
	if name == "gateway" {
		svc = gatewayService(cfg)
	}
	if svc == nil {
		return usageErrorf("no service %q in %s; it declares %s", name, cfg.Source, strings.Join(cfg.ServiceNames(), ", "))
	}
	build, ok := builders[name]
	if !ok {
		return fmt.Errorf("service %q is declared in %s but this binary does not implement it", name, cfg.Source)
	}
	addr := svc.Listen
	if *listen != "" {
		addr = *listen
	}

	level, _ := telemetry.ParseLevel(cfg.Telemetry.LogLevel)
	log := telemetry.NewLogger(e.stdout, telemetry.LogConfig{Service: name, Level: level, Text: isTerminal(e.stdout)})
	ratio := 1.0
	if cfg.Telemetry.SampleRatio != nil {
		ratio = *cfg.Telemetry.SampleRatio
	}
	version, _ := switchyard.Version()
	hub := e.getenv(envTraceHub)
	tracing, err := telemetry.NewTracing(ctx, telemetry.TraceConfig{
		Service: name, Version: version, Instance: addr, Endpoint: cfg.Telemetry.OTLPEndpoint, Hub: hub, SampleRatio: ratio,
		Propagators: cmp.Or(e.getenv(strings.ToUpper(name)+"_OTEL_PROPAGATORS"), e.getenv("OTEL_PROPAGATORS")),
	})
	if err != nil {
		return err
	}
	p := &process{name: name, version: *instanceVersion, weight: *weight, getenv: e.getenv,
		cfg: cfg, service: svc, log: log, tracing: tracing, metrics: telemetry.NewMetrics()}
	defer func() {
		for _, c := range slices.Backward(p.closers) {
			c()
		}
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		defer cancel()
		if err := tracing.Shutdown(shutdownCtx); err != nil {
			log.Warn("flush traces", "error", err)
		}
	}()

	comp, err := build(ctx, p)
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	handler := telemetry.Middleware(telemetry.HTTPConfig{
		Logger: log, Tracer: tracing.Tracer("switchyard/" + name), Propagator: tracing.Propagator, Metrics: p.metrics, Untraced: comp.untraced,
	})(comp.handler)
	srv := server.New(server.Config{Addr: addr, DrainDelay: *drainDelay, MaxHeaderBytes: comp.maxHeaderBytes, Profiling: e.getenv("SWITCHYARD_PPROF") == "1"}, handler, p.metrics.Handler(), log)
	for check, fn := range comp.checks {
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
	if comp.onDrain != nil {
		srv.OnDrain(comp.onDrain)
	}

	if err := srv.Listen(); err != nil {
		return err
	}
	if err := supervisor.Announce(e.getenv, srv.Addr().String()); err != nil {
		log.Warn("could not announce the address to the supervisor", "error", err)
	}
	register, err := p.register(ctx, srv.Addr().String())
	if err != nil {
		return err
	}

	if comp.run != nil {
		p.runs = append(p.runs, comp.run)
	}
	return p.lifecycle(ctx, srv, register)
}

// lifecycle runs the process and stops it in order when ctx ends (or a part fails):
// withdraw from discovery and stop accepting requests; let requests in flight finish;
// stop the consumers (they finish what they hold); then stop the relays (they flush
// what requests and consumers wrote) and the rest.
func (p *process) lifecycle(ctx context.Context, srv *server.Server, register func(context.Context) error) error {
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

// isTerminal reports whether w is a character device (a human's terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
