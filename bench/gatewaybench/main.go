// Command gatewaybench runs the pieces bench/gateway.sh measures: a small JSON
// backend, and the gateway in front of it — passing requests on as they are, or with
// every feature a production route has (token verification, a rate limit, tracing,
// load shedding). The gateway is the real one (package gateway over the rpc client
// stack and the Wire transport); only its upstream is a fixed address instead of a
// discovered service, so that Caddy and nginx can be pointed at the same backend.
package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/resilience"
	"github.com/switchyard/switchyard/rpc"
	"github.com/switchyard/switchyard/telemetry"
)

func main() {
	if err := run(); err != nil {
		slog.Error("gatewaybench", "error", err)
		os.Exit(1) //nolint:forbidigo // this is main
	}
}

func run() error {
	mode := flag.String("mode", "backend", "backend, passthrough, passthrough-std (net/http's transport instead of Wire), cached (passthrough with the route's response cache) or full")
	listen := flag.String("listen", "127.0.0.1:9001", "address to serve on")
	upstream := flag.String("upstream", "127.0.0.1:9001", "the backend's address")
	tokenFile := flag.String("token-file", "", "full mode: where to write an access token to send")
	without := flag.String("without", "", "full mode: leave one feature out (shedding, tracing, ratelimit, auth), to see what each costs")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to `file`")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var h http.Handler
	switch *mode {
	case "backend":
		body := []byte(`{"id":"p-0001","name":"Espresso cup","price_minor":1250,"currency":"EUR","available":42}`)
		h = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			_, _ = w.Write(body)
		})
	case "passthrough", "passthrough-std", "cached", "full":
		var err error
		if h, err = gatewayHandler(ctx, *mode, *upstream, *tokenFile, *without); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown mode %q", *mode)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func gatewayHandler(ctx context.Context, mode, upstream, tokenFile, without string) (http.Handler, error) {
	var transport http.RoundTripper = &gateway.Wire{}
	if mode == "passthrough-std" {
		transport = rpc.NewTransport(rpc.REST)
	}
	client, err := rpc.NewClient(ctx, rpc.ClientConfig{
		Service:   "backend",
		Resolver:  discovery.NewStatic(discovery.Instance{Service: "backend", ID: "b1", Addr: upstream}),
		Transport: transport,
		Policy:    resilience.Config{Timeout: 10 * time.Second, TryTimeout: 5 * time.Second, MaxConcurrent: 4096},
	})
	if err != nil {
		return nil, err
	}
	route := gateway.Route{Prefix: "/api/v1/products", Path: "/v1/products", Auth: gateway.AuthNone,
		Upstream: gateway.Upstream{Name: "backend", Host: "backend", Transport: client}}
	cfg := gateway.Config{}
	if mode == "cached" {
		// The backend says nothing of caching, so the route's max age applies.
		route.Cache = &gateway.Caching{MaxAge: time.Minute}
	}
	if mode != "full" {
		cfg.Routes = []gateway.Route{route}
		return gateway.New(cfg)
	}
	// Full: a signed-in user's token verified on every request (past the first, from
	// the verified-token cache, as in production), a per-user limit far above what
	// the benchmark sends (so every request pays for the limiter and none is refused),
	// load shedding and a server span per request.
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	token, err := authn.SignAccessToken("k1", priv, authn.Claims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer: "switchyard-bench", Audience: jwt.ClaimStrings{"switchyard"}, Subject: "user-1", ID: "bench-1",
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}})
	if err != nil {
		return nil, err
	}
	if tokenFile != "" {
		if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
			return nil, err
		}
	}
	verifier, err := authn.NewVerifier(authn.VerifierConfig{Issuer: "switchyard-bench", Audience: "switchyard"}, authn.StaticKeys{"k1": pub})
	if err != nil {
		return nil, err
	}
	if without != "auth" {
		route.Auth = gateway.AuthRequired
	}
	if without != "ratelimit" {
		route.RateLimit = gateway.Limit{Rate: 10_000_000, Per: time.Second}
	}
	cfg.Routes, cfg.Verifier = []gateway.Route{route}, verifier
	if without != "shedding" {
		cfg.Shedding = gateway.Shedding{MaxLimit: 4096, InitialLimit: 1024}
	}
	g, err := gateway.New(cfg)
	if err != nil {
		return nil, err
	}
	if without == "tracing" {
		return g, nil
	}
	tracing, err := telemetry.NewTracing(ctx, telemetry.TraceConfig{Service: "gateway", SampleRatio: 1})
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(os.Stderr, "gateway: full features on")
	return telemetry.Middleware(telemetry.HTTPConfig{Tracer: tracing.Tracer("gateway"), Metrics: telemetry.NewMetrics()})(g), nil
}
