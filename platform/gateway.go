package platform

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/redis/go-redis/v9"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/cache"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/gateway/transform"
	"github.com/switchyard/switchyard/internal/web"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rpc"
	"github.com/switchyard/switchyard/telemetry"
)

// GatewayOptions adapt the gateway to an application.
type GatewayOptions struct {
	// Verifier builds the verifier of end users' access tokens, given the clients of
	// the gateway's dependencies [the issuers of security.issuers; with none
	// declared, every route needing a user refuses].
	Verifier func(ctx context.Context, clients Clients) (*authn.Verifier, error)
	// Routes adds the application's own routes (aggregations, pages), given the
	// gateway's process and the clients of its dependencies.
	Routes func(ctx context.Context, p *Process, clients Clients) ([]gateway.Route, error)
	// OpenAPI is the public API's OpenAPI document (YAML), served as JSON at
	// GET /api/openapi.json; empty serves none.
	OpenAPI []byte
}

// Clients returns the rpc client of one of the gateway's dependencies, shared by
// every route to it.
type Clients func(service string) (*rpc.Client, error)

// Gateway is the gateway as a service: a route per route of switchyard.yaml, each
// to its service through the rpc client stack over the gateway's Wire transport
// (or to a fixed upstream URL), with canary halves where declared; the
// application's own routes; the administrators' dead-letter routes; the dashboard
// at /ui/ with, under `switchyard up`, the trace hub behind an administrators-only
// route; and rate limits shared through Redis when REDIS_URL is set.
func Gateway(opt GatewayOptions) Service {
	return Service{Name: config.GatewayName, Uses: []string{"redis"}, Build: func(ctx context.Context, p *Process) (*Component, error) {
		return buildGateway(ctx, p, opt)
	}}
}

func buildGateway(ctx context.Context, p *Process, opt GatewayOptions) (*Component, error) {
	g := p.Config.Gateway
	if g == nil {
		return nil, errors.New("the platform declares no gateway")
	}
	wire := &gateway.Wire{}
	shared := map[string]*rpc.Client{} // one per service, shared by its routes; canary halves are their own
	clients := func(name string) (*rpc.Client, error) {
		if c, ok := shared[name]; ok {
			return c, nil
		}
		c, err := p.Client(ctx, name, Transport(wire))
		if err == nil {
			shared[name] = c
		}
		return c, err
	}
	pw := problem.Writer{Log: p.Log, RequestID: telemetry.RequestID}
	var verifier *authn.Verifier
	if opt.Verifier != nil {
		v, err := opt.Verifier(ctx, clients)
		if err != nil {
			return nil, err
		}
		verifier = v
	} else if len(p.Config.Security.Issuers) > 0 {
		v, err := p.userVerifier(clients)
		if err != nil {
			return nil, err
		}
		verifier = v
	}

	var routes []gateway.Route
	for i, r := range g.Routes {
		route := gateway.Route{Prefix: r.Prefix, Path: r.Path, Auth: gateway.Auth(r.Auth), Timeout: r.Timeout.Std(),
			Scopes: r.Scopes, Roles: r.Roles, Issuers: p.issuersNamed(r.Issuers),
			MaxBody: cmp.Or(r.MaxBodyBytes, g.MaxBodyBytes), Streaming: r.Streaming}
		if r.Transform != nil {
			rules, err := transform.Compile(*r.Transform, r.Prefix)
			if err != nil { // validated with the configuration
				return nil, fmt.Errorf("gateway.routes.%d: %w", i, err)
			}
			route.Transform = rules
		}
		if rc := r.Cache; rc != nil {
			route.Cache = &gateway.Caching{MaxAge: rc.MaxAge.Std(), Override: rc.Override, StaleIfError: rc.StaleIfError.Std(),
				Vary: rc.Vary, MaxEntryBytes: rc.MaxEntryBytes}
		}
		if rl := r.RateLimit; rl != nil {
			route.RateLimit = gateway.Limit{Rate: rl.Requests, Per: rl.Per.Std(), Burst: rl.Burst, FailOpen: rl.OnRedisError != "closed"}
		}
		switch {
		case r.Upstream != "":
			up, err := fixedUpstream(ctx, p, i, r.Upstream, wire)
			if err != nil {
				return nil, err
			}
			route.Upstream = up
		case r.Canary != nil:
			version := r.Canary.Version
			stable, err := p.Client(ctx, r.Service, Transport(wire), Keep(func(inst discovery.Instance) bool { return inst.Version != version }))
			if err != nil {
				return nil, err
			}
			canary, err := p.Client(ctx, r.Service, Transport(wire), Keep(func(inst discovery.Instance) bool { return inst.Version == version }))
			if err != nil {
				return nil, err
			}
			route.Upstream = gateway.Upstream{Name: r.Service, Host: r.Service, Transport: stable}
			route.Canary = &gateway.Canary{Percent: r.Canary.Weight,
				Upstream: gateway.Upstream{Name: r.Service + "@" + version, Host: r.Service, Transport: canary}}
		default:
			c, err := clients(r.Service)
			if err != nil {
				return nil, err
			}
			route.Upstream = gateway.Upstream{Name: r.Service, Host: r.Service, Transport: c}
		}
		routes = append(routes, route)
	}
	if opt.Routes != nil {
		own, err := opt.Routes(ctx, p, clients)
		if err != nil {
			return nil, err
		}
		routes = append(routes, own...)
	}
	if b, err := p.Bus(); err == nil {
		if dl, ok := b.(bus.DeadLetters); ok {
			routes = append(routes, gateway.DeadLetterRoutes("/api/v1/admin", dl, pw)...)
		}
	} else {
		p.Log.Warn("no event bus: the dead-letter admin routes are off", "error", err)
	}
	if len(opt.OpenAPI) > 0 {
		doc, err := openAPIJSON(opt.OpenAPI)
		if err != nil {
			return nil, err
		}
		routes = append(routes, gateway.Route{Pattern: "GET /api/openapi.json", Auth: gateway.AuthNone,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Cache-Control", "public, max-age=300")
				_, _ = w.Write(doc)
			})})
	}

	// The dashboard, and its data: the trace hub of `switchyard up`, behind an
	// administrators-only route.
	for pattern, h := range web.Dashboard() {
		routes = append(routes, gateway.Route{Pattern: pattern, Auth: gateway.AuthNone, Handler: h})
	}
	if hub := p.Hub(); hub != "" {
		u, err := url.Parse(hub)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvTraceHub, err)
		}
		routes = append(routes, gateway.Route{Prefix: "/ui/api", Path: "/api", Auth: gateway.AuthAdmin, Timeout: 30 * time.Second,
			// No rpc client, hence no client span: the dashboard's reads are not part
			// of the traffic it draws.
			Upstream: gateway.Upstream{Name: "hub", Host: u.Host, Transport: http.DefaultTransport}})
	}

	var limiter gateway.Limiter = gateway.NewLocal()
	var answers cache.Cache = cache.NewMemory(10_000).WithMaxBytes(64 << 20)
	if p.Config.Redis.URL != "" {
		shared, err := cache.NewRedis(ctx, p.Config.Redis.URL, "switchyard:gateway:")
		if err != nil {
			return nil, err
		}
		p.OnClose(func() { _ = shared.Close() })
		answers = shared
	}
	if p.Config.Redis.URL != "" {
		opts, err := redis.ParseURL(p.Config.Redis.URL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		rdb := redis.NewClient(opts)
		p.OnClose(func() { _ = rdb.Close() })
		shared := gateway.NewShared(rdb)
		if err := shared.Register(p.Metrics.Registry); err != nil {
			return nil, err
		}
		limiter = shared
		p.Log.Info("rate limits are shared through Redis", "redis", RedactURL(p.Config.Redis.URL))
	}
	gw, err := gateway.New(gateway.Config{
		Routes:   routes,
		Verifier: verifier,
		Limiter:  limiter,
		Shedding: gateway.Shedding{MinLimit: g.Shedding.MinLimit, MaxLimit: g.Shedding.MaxLimit, InitialLimit: g.Shedding.InitialLimit},
		CORS:     gateway.CORS{AllowedOrigins: g.CORS.AllowedOrigins, MaxAge: g.CORS.MaxAge.Std()},
		Logger:   p.Log,
		Metrics:  p.Metrics.Registry,
		Cache:    answers,
	})
	if err != nil {
		return nil, err
	}
	if err := invalidateOnEvents(p, gw, g.Routes); err != nil {
		return nil, err
	}
	// The pages, their files and the dashboard's reads are not traced: a trace is a
	// call of the API, and the dashboard must not draw itself.
	untraced := func(r *http.Request) bool {
		return !strings.HasPrefix(r.URL.Path, "/api/") && !strings.HasPrefix(r.URL.Path, "/.well-known/")
	}
	return &Component{Handler: gw, MaxHeaderBytes: 256 << 10, Untraced: untraced}, nil
}

// tailer is a bus that delivers every new event to whoever listens, without a
// consumer group (natsbus and kafkabus both are).
type tailer interface {
	Tail(ctx context.Context, domain, pattern string, fn func(subject string, e event.Event, raw []byte)) error
}

// invalidateOnEvents drops the cached paths the routes' invalidations name when
// their events arrive. Every replica listens for itself, without a consumer group,
// since each may hold answers in process; with the cache in Redis the second drop
// costs nothing. An event missed while the gateway was away is bounded by the
// entries' freshness, as any cache's is.
func invalidateOnEvents(p *Process, gw *gateway.Gateway, routes []config.Route) error {
	byType := map[string][]config.Invalidation{}
	for _, r := range routes {
		if r.Cache != nil {
			for _, inv := range r.Cache.Invalidate {
				byType[inv.Event] = append(byType[inv.Event], inv)
			}
		}
	}
	if len(byType) == 0 {
		return nil
	}
	b, err := p.Bus()
	if err != nil {
		return fmt.Errorf("cached routes invalidate on events, which needs the event bus: %w", err)
	}
	tail, ok := b.(tailer)
	if !ok {
		return fmt.Errorf("cached routes invalidate on events, and the %T bus cannot deliver them to every replica", b)
	}
	for typ, invs := range byType {
		t, _ := event.ParseType(typ) // validated with the configuration
		pattern := t.Subject()
		if p.Config.Broker.Kind == "kafka" {
			pattern = t.Domain + "." + t.Entity + "." + t.Verb + "." // a type prefix
		}
		p.Go(func(ctx context.Context) error {
			return tail.Tail(ctx, t.Domain, pattern, func(_ string, e event.Event, _ []byte) {
				if e.Type != typ {
					return
				}
				for _, inv := range invs {
					paths := make([]string, len(inv.Paths))
					for i, path := range inv.Paths {
						paths[i] = strings.ReplaceAll(path, "{subject}", url.PathEscape(e.Subject))
					}
					drop := func() {
						if err := gw.Invalidate(context.WithoutCancel(ctx), paths...); err != nil {
							p.Log.Warn("cached answers could not be invalidated", "event", e.Type, "subject", e.Subject, "error", err.Error())
						}
					}
					drop()
					if inv.Settle != nil && inv.Settle.Std() > 0 {
						time.AfterFunc(inv.Settle.Std(), drop)
					}
				}
			})
		})
	}
	return nil
}

// fixedUpstream is the client of a route to a fixed URL: the same stack, over a
// one-instance static resolver.
func fixedUpstream(ctx context.Context, p *Process, i int, raw string, wire *gateway.Wire) (gateway.Upstream, error) {
	u, err := url.Parse(raw) // validated with the configuration: http://host:port
	if err != nil {
		return gateway.Upstream{}, err
	}
	host := u.Host
	name := fmt.Sprintf("upstream-%d", i)
	c, err := rpc.NewClient(ctx, rpc.ClientConfig{
		Service:    name,
		Resolver:   discovery.NewStatic(discovery.Instance{Service: name, ID: "fixed", Addr: host}),
		Policy:     PolicyConfig(p.Config.Gateway.Policy),
		Transport:  wire,
		Tracer:     p.Tracing.Tracer("switchyard/rpc"),
		Propagator: p.Tracing.Propagator,
		Logger:     p.Log,
	})
	if err != nil {
		return gateway.Upstream{}, err
	}
	return gateway.Upstream{Name: host, Host: host, Transport: c}, nil
}

// openAPIJSON converts an OpenAPI document from YAML to JSON.
func openAPIJSON(src []byte) ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("the public OpenAPI document: %w", err)
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, errors.New("the public OpenAPI document does not convert to JSON: " + err.Error())
	}
	return out, nil
}
