package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/balancer"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/discovery/dns"
	"github.com/switchyard/switchyard/discovery/natskv"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/resilience"
	"github.com/switchyard/switchyard/rpc"
	"github.com/switchyard/switchyard/server"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/telemetry"
)

// Environment variables through which a service process receives its identity.
const (
	envServiceKey  = "SWITCHYARD_SERVICE_KEY"  // path of the service's PEM Ed25519 key
	envTrustBundle = "SWITCHYARD_TRUST_BUNDLE" // path of the bundle of every service's public key
	envAdvertise   = "SWITCHYARD_ADVERTISE_ADDR"
	envTraceHub    = "SWITCHYARD_TRACE_HUB" // base URL of up's trace and log hub
)

// nats returns the process's NATS connection, connecting on first use.
func (p *process) nats() (*nats.Conn, error) {
	if p.nc != nil {
		return p.nc, nil
	}
	if p.cfg.Broker.URL == "" {
		return nil, errors.New("no NATS server: set NATS_URL (switchyard up sets it), or choose another discovery kind")
	}
	nc, err := nats.Connect(p.cfg.Broker.URL,
		nats.Name("switchyard-"+p.name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				p.log.Warn("disconnected from NATS", "error", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { p.log.Info("reconnected to NATS") }),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s: %w", redactURL(p.cfg.Broker.URL), err)
	}
	p.nc = nc
	p.closers = append(p.closers, nc.Close)
	return nc, nil
}

// discovery returns the registry (nil for kinds whose platform registers) and
// resolver of the configured kind.
func (p *process) discovery(ctx context.Context) (discovery.Registry, discovery.Resolver, error) {
	if p.resolver != nil {
		return p.registry, p.resolver, nil
	}
	d := p.cfg.Discovery
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
		metrics, err := discovery.NewMetrics(p.metrics.Registry)
		if err != nil {
			return nil, nil, err
		}
		kv, err := natskv.New(ctx, js, natskv.Config{Heartbeat: d.Heartbeat.Std(), Replicas: p.cfg.Broker.Replicas, Logger: p.log, Metrics: metrics})
		if err != nil {
			return nil, nil, err
		}
		p.registry, p.resolver = kv, kv
	case "static":
		var list []discovery.Instance
		for _, name := range p.cfg.ServiceNames() {
			list = append(list, discovery.Instance{Service: name, ID: name, Addr: p.cfg.Service(name).Listen})
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
func (p *process) register(ctx context.Context, addr string) (func(context.Context) error, error) {
	reg, _, err := p.discovery(ctx)
	if err != nil || reg == nil {
		return nil, err
	}
	if adv := p.getenv(envAdvertise); adv != "" {
		addr = adv
	}
	host, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return nil, fmt.Errorf("listening on %s, which is no address to be called at: set %s to host:port", addr, envAdvertise)
	}
	inst := discovery.Instance{Service: p.name, ID: discovery.NewID(), Addr: addr, Version: p.version, Weight: p.weight}
	if err := inst.Validate(); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error { return reg.Register(ctx, inst) }, nil
}

// identity loads the service's key and the trust bundle, and returns the service's
// token source and the verifier of its callers: the services that declare it as a
// dependency in switchyard.yaml, and the gateway when a route leads to it.
func (p *process) identity() (*authn.ServiceTokens, *authn.ServiceVerifier, error) {
	if p.tokens != nil {
		return p.tokens, p.services, nil
	}
	keyPath, bundlePath := p.getenv(envServiceKey), p.getenv(envTrustBundle)
	if keyPath == "" || bundlePath == "" {
		dir := filepath.Join(p.cfg.DataDir, "identity")
		if keyPath == "" {
			keyPath = filepath.Join(dir, p.name+".key")
		}
		if bundlePath == "" {
			bundlePath = filepath.Join(dir, "bundle.json")
		}
	}
	id, err := authn.LoadIdentity(p.name, keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (switchyard up creates identities; otherwise set %s and %s)", err, envServiceKey, envTrustBundle)
	}
	bundle, err := authn.LoadBundle(bundlePath)
	if err != nil {
		return nil, nil, err
	}
	p.tokens = authn.NewServiceTokens(id, nil)
	p.services = authn.NewServiceVerifier(p.name, bundle, callers(p.cfg, p.name), nil)
	return p.tokens, p.services, nil
}

// callers lists who may call service: services declaring it as a dependency, and the
// gateway when a route leads to it.
func callers(cfg *config.Config, service string) []string {
	var out []string
	for _, name := range cfg.ServiceNames() {
		if _, ok := cfg.Service(name).Dependencies[service]; ok {
			out = append(out, name)
		}
	}
	if g := gatewayService(cfg); g != nil {
		if _, ok := g.Dependencies[service]; ok {
			out = append(out, "gateway")
		}
	}
	return out
}

// customerVerifier verifies customers' access tokens against the users service's
// JWKS, fetched through its client (so through discovery and the call policies).
func customerVerifier(users *rpc.Client) (*authn.Verifier, error) {
	return authn.NewVerifier(authn.VerifierConfig{Issuer: "switchyard", Audience: "switchyard"},
		authn.NewRemoteKeys(authn.RemoteKeysConfig{URL: users.BaseURL() + "/.well-known/jwks.json", Client: users.HTTPClient()}))
}

// gatewayService describes the gateway as a service: its address, and as its
// dependencies the services its routes lead to (under the gateway's policy) and
// those it declares itself.
func gatewayService(cfg *config.Config) *config.Service {
	g := cfg.Gateway
	if g == nil {
		return nil
	}
	svc := &config.Service{Name: "gateway", Owner: g.Owner, Listen: g.Listen, Dependencies: map[string]*config.Dependency{},
		Description: "The single entry point: routes, authenticates, limits and sheds, and answers what needs several services."}
	for _, r := range g.Routes {
		if r.Service != "" {
			svc.Dependencies[r.Service] = &config.Dependency{Protocol: "rest", Policy: g.Policy}
		}
	}
	maps.Copy(svc.Dependencies, g.Dependencies)
	return svc
}

// client builds the rpc client of a declared dependency; its watch runs with the
// process's background work.
func (p *process) client(ctx context.Context, dependency string) (*rpc.Client, error) {
	return p.clientWith(ctx, dependency, clientOptions{})
}

// clientOptions adjust a dependency's client.
type clientOptions struct {
	// keep, when set, narrows the instances the client sees (canary splits).
	keep func(discovery.Instance) bool
	// transport carries REST calls [rpc's tuned net/http transport].
	transport http.RoundTripper
}

func (p *process) clientWith(ctx context.Context, dependency string, opts clientOptions) (*rpc.Client, error) {
	dep, ok := p.service.Dependencies[dependency]
	if !ok {
		return nil, fmt.Errorf("%s calls %s, which switchyard.yaml does not declare as its dependency", p.name, dependency)
	}
	_, resolver, err := p.discovery(ctx)
	if err != nil {
		return nil, err
	}
	if opts.keep != nil {
		resolver = discovery.Filter(resolver, opts.keep)
	}
	var transport http.RoundTripper
	if dep.Protocol == "rest" {
		transport = opts.transport
	}
	tokens, _, err := p.identity()
	if err != nil {
		return nil, err
	}
	if p.resilience == nil {
		if p.resilience, err = resilience.NewMetrics(p.metrics.Registry); err != nil {
			return nil, err
		}
	}
	policy := policyConfig(dep.Policy)
	policy.Metrics = p.resilience
	ejected := p.resilience.Ejected(dependency)
	c, err := rpc.NewClient(ctx, rpc.ClientConfig{
		Service:  dependency,
		Protocol: rpc.Protocol(dep.Protocol),
		Resolver: resolver,
		Balancer: balancer.Config{OnEject: func(inst discovery.Instance, until time.Time) {
			ejected()
			p.log.Warn("instance ejected", "dependency", dependency, "instance", inst.ID, "addr", inst.Addr, "until", until)
		}},
		Policy:     policy,
		Tokens:     tokens,
		Transport:  transport,
		Tracer:     p.tracing.Tracer("switchyard/rpc"),
		Propagator: p.tracing.Propagator,
		Logger:     p.log,
	})
	if err != nil {
		return nil, err
	}
	p.runs = append(p.runs, c.Run)
	return c, nil
}

// policyConfig maps a dependency's declared policy onto the resilience stack.
func policyConfig(p config.Policy) resilience.Config {
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
		MaxConcurrent:       p.Bulkhead.MaxConcurrent,
		MaxWait:             p.Bulkhead.MaxWait.Std(),
		HedgeDelay:          p.Hedge.Delay.Std(),
		MaxHedges:           p.Hedge.Max,
	}
}

// grpcComponent serves a gRPC service (with reflection and health) on the process's
// own port, open only to the callers verified by services; readiness follows its
// database, and health turns to NOT_SERVING when draining begins.
func (p *process) grpcComponent(services *authn.ServiceVerifier, db *store.DB, svc rpc.GRPCService) *component {
	fail := rpc.WriteError(problem.Writer{Log: p.log, RequestID: telemetry.RequestID})
	mux := http.NewServeMux()
	health := rpc.MountGRPC(mux, func(h http.Handler) http.Handler { return services.RequireService(fail, h) }, svc)
	return &component{
		handler: mux,
		checks:  map[string]server.Check{"database": db.PingContext},
		onDrain: func() { health.SetServing(false) },
	}
}
