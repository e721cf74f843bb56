package main

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

	"connectrpc.com/connect"
	"github.com/goccy/go-yaml"
	"github.com/redis/go-redis/v9"

	"github.com/switchyard/switchyard/api/gen/switchyard/payments/v1/paymentsv1connect"
	"github.com/switchyard/switchyard/api/openapi"
	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/internal/shop/edge"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rpc"
	"github.com/switchyard/switchyard/telemetry"
	"github.com/switchyard/switchyard/web"
)

// buildGateway composes the gateway: a route per switchyard.yaml route, each to its
// service through the rpc client stack over the Wire transport (or to a fixed
// upstream URL), the shop's order summary, the administrators' dead-letter routes
// and the public API's OpenAPI document.
func buildGateway(ctx context.Context, p *process) (*component, error) {
	g := p.cfg.Gateway
	wire := &gateway.Wire{}
	clients := map[string]*rpc.Client{} // one per service, shared by its routes; canary halves are their own
	client := func(name string, opts clientOptions) (*rpc.Client, error) {
		if c, ok := clients[name]; ok && opts.keep == nil {
			return c, nil
		}
		opts.transport = wire
		c, err := p.clientWith(ctx, name, opts)
		if err == nil && opts.keep == nil {
			clients[name] = c
		}
		return c, err
	}
	users, err := client("users", clientOptions{})
	if err != nil {
		return nil, err
	}
	verifier, err := customerVerifier(users)
	if err != nil {
		return nil, err
	}
	pw := problem.Writer{Log: p.log, RequestID: telemetry.RequestID}

	var routes []gateway.Route
	for i, r := range g.Routes {
		route := gateway.Route{Prefix: r.Prefix, Path: r.Path, Auth: gateway.Auth(r.Auth), Timeout: r.Timeout.Std(),
			MaxBody: cmp.Or(r.MaxBodyBytes, g.MaxBodyBytes), Streaming: r.Streaming}
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
			stable, err := client(r.Service, clientOptions{keep: func(inst discovery.Instance) bool { return inst.Version != version }})
			if err != nil {
				return nil, err
			}
			canary, err := client(r.Service, clientOptions{keep: func(inst discovery.Instance) bool { return inst.Version == version }})
			if err != nil {
				return nil, err
			}
			route.Upstream = gateway.Upstream{Name: r.Service, Host: r.Service, Transport: stable}
			route.Canary = &gateway.Canary{Percent: r.Canary.Weight,
				Upstream: gateway.Upstream{Name: r.Service + "@" + version, Host: r.Service, Transport: canary}}
		default:
			c, err := client(r.Service, clientOptions{})
			if err != nil {
				return nil, err
			}
			route.Upstream = gateway.Upstream{Name: r.Service, Host: r.Service, Transport: c}
		}
		routes = append(routes, route)
	}

	// The order summary, where the platform has the services it gathers from.
	if _, ok := p.service.Dependencies["payments"]; ok {
		summary := &edge.Summary{Problems: pw}
		for name, target := range map[string]**http.Client{"orders": &summary.Orders, "catalog": &summary.Catalog, "notifications": &summary.Notifications} {
			c, err := client(name, clientOptions{})
			if err != nil {
				return nil, fmt.Errorf("order summary: %w", err)
			}
			*target = c.HTTPClient()
		}
		summary.OrdersURL, summary.CatalogURL, summary.NotificationsURL = "http://orders", "http://catalog", "http://notifications"
		payments, err := client("payments", clientOptions{})
		if err != nil {
			return nil, err
		}
		summary.Payments = paymentsv1connect.NewPaymentServiceClient(payments.HTTPClient(), payments.BaseURL(), connect.WithGRPC())
		routes = append(routes, summary.Route())
	}
	if b, err := p.bus(); err == nil {
		if dl, ok := b.(bus.DeadLetters); ok {
			routes = append(routes, gateway.DeadLetterRoutes("/api/v1/admin", dl, pw)...)
		}
	} else {
		p.log.Warn("no event bus: the dead-letter admin routes are off", "error", err)
	}
	doc, err := publicOpenAPI()
	if err != nil {
		return nil, err
	}
	routes = append(routes, gateway.Route{Pattern: "GET /api/openapi.json", Auth: gateway.AuthNone,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "public, max-age=300")
			_, _ = w.Write(doc)
		})})

	// The storefront and the dashboard, and the dashboard's data: the trace hub of
	// `switchyard up`, behind an administrators-only route.
	for pattern, h := range web.Routes() {
		routes = append(routes, gateway.Route{Pattern: pattern, Auth: gateway.AuthNone, Handler: h})
	}
	if hub := p.getenv(envTraceHub); hub != "" {
		u, err := url.Parse(hub)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envTraceHub, err)
		}
		routes = append(routes, gateway.Route{Prefix: "/ui/api", Path: "/api", Auth: gateway.AuthAdmin, Timeout: 30 * time.Second,
			// No rpc client, hence no client span: the dashboard's reads are not part
			// of the traffic it draws.
			Upstream: gateway.Upstream{Name: "hub", Host: u.Host, Transport: http.DefaultTransport}})
	}

	var limiter gateway.Limiter = gateway.NewLocal()
	if p.cfg.Redis.URL != "" {
		opts, err := redis.ParseURL(p.cfg.Redis.URL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		rdb := redis.NewClient(opts)
		p.closers = append(p.closers, func() { _ = rdb.Close() })
		limiter = gateway.NewShared(rdb)
		p.log.Info("rate limits are shared through Redis", "redis", redactURL(p.cfg.Redis.URL))
	}
	gw, err := gateway.New(gateway.Config{
		Routes:   routes,
		Verifier: verifier,
		Limiter:  limiter,
		Shedding: gateway.Shedding{MinLimit: g.Shedding.MinLimit, MaxLimit: g.Shedding.MaxLimit, InitialLimit: g.Shedding.InitialLimit},
		CORS:     gateway.CORS{AllowedOrigins: g.CORS.AllowedOrigins, MaxAge: g.CORS.MaxAge.Std()},
		Logger:   p.log,
		Metrics:  p.metrics.Registry,
	})
	if err != nil {
		return nil, err
	}
	// The pages, their files and the dashboard's reads are not traced: a trace is a
	// call of the API, and the dashboard must not draw itself.
	untraced := func(r *http.Request) bool {
		return !strings.HasPrefix(r.URL.Path, "/api/") && !strings.HasPrefix(r.URL.Path, "/.well-known/")
	}
	return &component{handler: gw, maxHeaderBytes: 256 << 10, untraced: untraced}, nil
}

// fixedUpstream is the client of a route to a fixed URL: the same stack, over a
// one-instance static resolver.
func fixedUpstream(ctx context.Context, p *process, i int, raw string, wire *gateway.Wire) (gateway.Upstream, error) {
	u, err := url.Parse(raw) // validated with the configuration: http://host:port
	if err != nil {
		return gateway.Upstream{}, err
	}
	host := u.Host
	name := fmt.Sprintf("upstream-%d", i)
	c, err := rpc.NewClient(ctx, rpc.ClientConfig{
		Service:    name,
		Resolver:   discovery.NewStatic(discovery.Instance{Service: name, ID: "fixed", Addr: host}),
		Policy:     policyConfig(p.cfg.Gateway.Policy),
		Transport:  wire,
		Tracer:     p.tracing.Tracer("switchyard/rpc"),
		Propagator: p.tracing.Propagator,
		Logger:     p.log,
	})
	if err != nil {
		return gateway.Upstream{}, err
	}
	return gateway.Upstream{Name: host, Host: host, Transport: c}, nil
}

// publicOpenAPI is the public API's contract (api/openapi/gateway.yaml) as JSON.
func publicOpenAPI() ([]byte, error) {
	src, err := openapi.Files.ReadFile("gateway.yaml")
	if err != nil {
		return nil, err
	}
	var doc any
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("api/openapi/gateway.yaml: %w", err)
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, errors.New("api/openapi/gateway.yaml does not convert to JSON: " + err.Error())
	}
	return out, nil
}
