// Package gateway is the platform's single entry point: it routes public paths to
// services by prefix and version, authenticates end users against the issuer's JWKS,
// limits rates per principal and route, sheds load before latency collapses, and
// passes requests on through the same resilient client stack services use to call
// each other (package rpc: discovery → balancer → policies → tracing).
//
// A request goes through, in order:
//
//	load shedding (adaptive concurrency limit)          → 503 + Retry-After
//	security headers, CORS (preflights answered here)
//	header limits (Authorization, total size)           → 401 / 431
//	route match (longest prefix on whole segments, or a
//	handler route's more specific pattern)              → 404
//	authentication (none, optional, required, admin)    → 401 / 403
//	rate limit per principal and route                  → 429 + Retry-After, RateLimit-*
//	body limit                                          → 413
//	per-route deadline, canary choice, the upstream     → 502 / 503 / 504 problems
//
// Engine. Requests are served by net/http and proxied by httputil.ReverseProxy, which
// bring keep-alive, streamed bodies, trailers, flushing for streamed answers,
// WebSocket upgrades and a clean shutdown; the client side is [Wire], our own HTTP/1.1
// transport, 8–20 % faster than net/http's in our measurements. On two shared cores
// the gateway passes requests on at about a third of the rate of calling the backend
// directly, where nginx reaches about half (bench/RESULTS.md, "Gateway"): what
// remains is net/http's server side and system calls, not the proxying. fasthttp
// would narrow that gap but would be a second HTTP stack beside the one tracing, the
// rpc client and WebSocket pass-through share; we chose to keep one.
package gateway

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/cache"
	"github.com/switchyard/switchyard/gateway/transform"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/telemetry"
)

// Auth is what a route asks of the caller.
type Auth string

// The authentication requirements.
const (
	AuthNone     Auth = "none"     // no token is looked at
	AuthOptional Auth = "optional" // a token, if sent, must be valid
	AuthRequired Auth = "required" // a valid user token
	AuthAdmin    Auth = "admin"    // a valid user token with the admin role
)

// Identity headers the gateway sets from a verified token; copies sent by clients
// are always removed.
const (
	UserIDHeader    = "X-User-Id"
	UserRolesHeader = "X-User-Roles"
	// CorrelationHeader ties together every request of one user action; minted here
	// when the client sends none.
	CorrelationHeader = "X-Correlation-Id"
	// APIKeyHeader identifies a client for rate limiting when no user is signed in.
	APIKeyHeader = "X-Api-Key"
)

// Upstream is where a route's requests go.
type Upstream struct {
	// Name is the service (or the legacy system) it reaches, for logs and metrics.
	Name string
	// Host is the host requests are addressed to (an rpc.Client's BaseURL host, or
	// a fixed upstream's host:port).
	Host string
	// Transport carries them: normally an *rpc.Client.
	Transport http.RoundTripper
}

// Canary sends a share of a route's traffic to another upstream.
type Canary struct {
	// Upstream receives the share.
	Upstream Upstream
	// Percent of principals sent there, 0 to 100; each principal always lands on the
	// same side while the weight stays. 100 with the old upstream still configured is
	// a blue-green cut-over that can be undone by setting 0.
	Percent float64
}

// Route maps a public path prefix to an upstream, or to a handler of the gateway's own.
type Route struct {
	// Prefix of the public path, e.g. /api/v1/orders. It matches itself and
	// everything below it (/api/v1/orders/42), never /api/v1/ordersx.
	Prefix string
	// Pattern, instead of Prefix, is an http.ServeMux pattern for a Handler route
	// (e.g. "GET /api/v1/orders/{id}/summary"); such routes are matched first.
	Pattern string
	// Path replaces Prefix in the upstream request [Prefix without a leading /api].
	Path string
	// Auth is what the route asks of the caller [required].
	Auth Auth
	// Scopes the caller's token must carry, every one; a token without them is
	// refused with 403 and an insufficient_scope challenge (RFC 6750 section 3.1).
	Scopes []string
	// Roles of which the caller must hold at least one.
	Roles []string
	// Issuers, by iss, whose tokens the route accepts [every issuer the Verifier
	// trusts].
	Issuers []string
	// Timeout bounds the whole request through the gateway [30s].
	Timeout time.Duration
	// MaxBody is the largest request body accepted, in bytes [1 MiB].
	MaxBody int64
	// RateLimit per principal on this route; zero means none.
	RateLimit Limit
	// Upstream receives the route's requests (unless Handler is set).
	Upstream Upstream
	// Canary, when set, receives a share of them.
	Canary *Canary
	// Handler serves the route in the gateway itself (aggregation, admin, documents).
	Handler http.Handler
	// Cache keeps the route's answers to safe requests [none]; see Caching.
	Cache *Caching
	// Transform rewrites the route's requests and answers [nothing]; see package
	// transform.
	Transform *transform.Rules
	// Streaming marks long-lived requests (WebSocket, long polls), which the load
	// shedder does not count: their duration says nothing about overload.
	Streaming bool
}

// Config configures a Gateway.
type Config struct {
	// Routes to serve. Required.
	Routes []Route
	// Verifier checks user tokens; without one, routes other than AuthNone refuse.
	Verifier *authn.Verifier
	// Limiter applies rate limits [a Local limiter].
	Limiter Limiter
	// Shedding configures the adaptive concurrency limit; zero disables it.
	Shedding Shedding
	// CORS, when AllowedOrigins is set, answers preflights and marks responses.
	CORS CORS
	// MaxHeaderBytes bounds the request's headers, in total [32 KiB].
	MaxHeaderBytes int
	// Logger receives upstream failures [discard].
	Logger *slog.Logger
	// Metrics registers the gateway's counters [none].
	Metrics prometheus.Registerer
	// Cache stores the answers of routes with Caching [in process, 10,000 entries];
	// a cache.Redis shares them between replicas.
	Cache cache.Cache
	// Now is the clock of cache freshness [time.Now].
	Now func() time.Time
}

// Gateway is an http.Handler; put it behind telemetry.Middleware.
type Gateway struct {
	cfg Config
	// mux matches every route: a prefix route as its exact path and its subtree, a
	// handler route as its pattern, which is more specific and so wins.
	mux     *http.ServeMux
	shed    *shedder
	pw      problem.Writer
	metrics *metrics
}

type route struct {
	Route
	stable *httputil.ReverseProxy
	canary *httputil.ReverseProxy
	cached cacheCounters
}

// New builds a gateway.
func New(cfg Config) (*Gateway, error) {
	if len(cfg.Routes) == 0 {
		return nil, errors.New("gateway: no routes")
	}
	if cfg.Logger == nil {
		cfg.Logger = telemetry.Discard()
	}
	if cfg.Limiter == nil {
		cfg.Limiter = NewLocal()
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = 32 << 10
	}
	if cfg.Cache == nil {
		cfg.Cache = cache.NewMemory(10_000)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	g := &Gateway{cfg: cfg, mux: http.NewServeMux(),
		pw:      problem.Writer{Log: cfg.Logger, RequestID: telemetry.RequestID},
		metrics: newMetrics(cfg.Metrics)}
	patterns := map[string]bool{}
	handle := func(pattern string, h http.Handler) error {
		if patterns[pattern] {
			return errors.New("gateway: two routes for " + pattern)
		}
		patterns[pattern] = true
		g.mux.Handle(pattern, h)
		return nil
	}
	for i := range cfg.Routes {
		rt := &route{Route: cfg.Routes[i]}
		if err := g.prepare(rt); err != nil {
			return nil, err
		}
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { g.serveRoute(w, r, rt) })
		var err error
		switch {
		case rt.Pattern != "":
			err = handle(rt.Pattern, h)
		case rt.Prefix == "":
			err = handle("/", h)
		default:
			if err = handle(rt.Prefix, h); err == nil {
				err = handle(rt.Prefix+"/", h)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if !patterns["/"] {
		g.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			g.reject(w, r, "no_route", problem.New(problem.NotFound, "no route for %s", r.URL.Path), 0)
		})
	}
	if cfg.Shedding.MaxLimit > 0 {
		g.shed = newShedder(cfg.Shedding, g.metrics)
	}
	return g, nil
}

func (g *Gateway) prepare(rt *route) error {
	name := rt.Prefix + rt.Pattern
	switch {
	case rt.Pattern == "" && (!strings.HasPrefix(rt.Prefix, "/") || strings.ContainsAny(rt.Prefix, "{} \t")):
		return errors.New("gateway: route prefix " + strconv.Quote(rt.Prefix) + " is not a path (it starts with /, without braces or spaces)")
	case rt.Pattern != "" && rt.Handler == nil:
		return errors.New("gateway: route " + name + " has a pattern but no handler")
	case rt.Handler == nil && rt.Upstream.Transport == nil:
		return errors.New("gateway: route " + name + " has neither an upstream nor a handler")
	}
	rt.Prefix = strings.TrimSuffix(rt.Prefix, "/")
	if rt.Path == "" {
		rt.Path = strings.TrimPrefix(rt.Prefix, "/api")
	}
	rt.Path = strings.TrimSuffix(rt.Path, "/")
	if rt.Auth == "" {
		rt.Auth = AuthRequired
	}
	if rt.Timeout <= 0 {
		rt.Timeout = 30 * time.Second
	}
	if rt.MaxBody <= 0 {
		rt.MaxBody = 1 << 20
	}
	if rt.Cache != nil {
		rt.cached = g.metrics.cacheCounters(rt.name())
	}
	if rt.Handler == nil {
		rt.stable = g.proxy(rt, rt.Upstream, "stable")
		if rt.Canary != nil {
			rt.canary = g.proxy(rt, rt.Canary.Upstream, "canary")
		}
	}
	return nil
}

// name is the route's name in metrics.
func (rt *route) name() string { return rt.Prefix + rt.Pattern }

func (g *Gateway) now() time.Time { return g.cfg.Now() }

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	secure(w.Header())
	if g.cfg.CORS.enabled() && g.cfg.CORS.handle(w, r) {
		return
	}
	if len(r.Header.Get("Authorization")) > maxAuthorization {
		g.reject(w, r, "unauthenticated", problem.New(problem.Unauthenticated, "the Authorization header is too large"), 0)
		return
	}
	if n := headerBytes(r.Header); n > g.cfg.MaxHeaderBytes {
		g.reject(w, r, "headers", &problem.Error{Kind: problem.TooLarge, Detail: "the request headers are too large"}, http.StatusRequestHeaderFieldsTooLarge)
		return
	}
	g.mux.ServeHTTP(w, r)
}

// sameOrigin reports whether origin (scheme://host[:port]) names host.
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, host)
}

// serveRoute serves a request the mux matched to rt.
func (g *Gateway) serveRoute(w http.ResponseWriter, r *http.Request, rt *route) {
	if rt.Pattern == "" {
		r.Pattern = rt.Prefix // one name per route in spans and metrics, not two
	}
	if g.shed != nil && !rt.Streaming && !isLongPoll(r) {
		permit, ok := g.shed.acquire()
		if !ok {
			g.reject(w, r, "shed", &problem.Error{Kind: problem.Unavailable, Detail: "the gateway is at capacity; try again shortly", RetryAfter: time.Second}, 0)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		w = sw
		defer g.shed.release(permit, sw)
	}

	// A WebSocket handshake from a browser page of another site rides on the
	// user's token (cross-site WebSocket hijacking): only the gateway's own pages
	// and the CORS origins may open one. The services behind see no Origin, since
	// the Host they see is not the one the browser named.
	if origin := r.Header.Get("Origin"); origin != "" && r.Header.Get("Upgrade") != "" {
		if !sameOrigin(origin, r.Host) && !g.cfg.CORS.allows(origin) {
			g.reject(w, r, "forbidden", problem.New(problem.Forbidden, "a WebSocket from %s is not allowed", origin), 0)
			return
		}
		r.Header.Del("Origin")
	}

	// Identity headers come from the gateway only.
	r.Header.Del(UserIDHeader)
	r.Header.Del(UserRolesHeader)
	principal, err := g.authenticate(r, rt)
	if err != nil {
		reason := "unauthenticated"
		if problem.KindOf(err) == problem.Forbidden {
			reason = "forbidden"
		}
		if c := challenge(err); c != "" {
			w.Header().Set("WWW-Authenticate", c)
		}
		g.reject(w, r, reason, err, 0)
		return
	}
	key := g.principalKey(r, principal)
	if rt.RateLimit.Rate > 0 && !g.limit(w, r, rt, key) {
		return
	}
	if r.ContentLength > rt.MaxBody {
		g.reject(w, r, "body", problem.New(problem.TooLarge, "the request body is over %d bytes", rt.MaxBody), 0)
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, rt.MaxBody)
	}
	if principal != nil {
		r.Header[UserIDHeader] = []string{principal.Subject}
		if len(principal.Roles) > 0 {
			r.Header[UserRolesHeader] = []string{strings.Join(principal.Roles, ",")}
		}
		r = r.WithContext(authn.WithPrincipal(r.Context(), principal))
	}
	if len(r.Header[CorrelationHeader]) == 0 || !validID(r.Header[CorrelationHeader][0]) {
		id := telemetry.RequestID(r.Context())
		if id == "" {
			id = rand.Text()
		}
		r.Header[CorrelationHeader] = []string{id}
	}

	ctx, cancel := context.WithTimeout(r.Context(), rt.Timeout)
	defer cancel()
	r = r.WithContext(ctx)
	if rt.Cache != nil {
		cw, answered := (*cacheWriter)(nil), false
		if w, cw, answered = g.serveCached(w, r, rt, principal); answered {
			return
		}
		if cw != nil {
			defer cw.finish()
		}
	}
	if rt.Transform != nil {
		var ok bool
		if r, ok = g.transformRequest(w, r, rt); !ok {
			return
		}
		if rt.Transform.Transforms() {
			tw := &transformWriter{ResponseWriter: w, g: g, r: r, rules: rt.Transform}
			defer tw.finish(cmp.Or(rt.Upstream.Name, "the route"))
			w = tw
		}
	}
	if rt.Handler != nil {
		rt.Handler.ServeHTTP(w, r)
		return
	}
	proxy := rt.stable
	if rt.canary != nil && g.inCanary(rt, key) {
		proxy = rt.canary
	}
	proxy.ServeHTTP(w, r)
}

// isLongPoll reports a request that asks the upstream to hold it (RFC 7240 wait).
func isLongPoll(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Prefer"), "wait=") || r.Header.Get("Upgrade") != ""
}

// inCanary decides, stably for key, whether the request goes to the canary.
func (g *Gateway) inCanary(rt *route, key string) bool {
	p := rt.Canary.Percent
	switch {
	case p <= 0:
		return false
	case p >= 100:
		return true
	}
	// The same hash in every replica and every run, so a principal stays on its side
	// whichever replica it reaches.
	h := fnv.New64a()
	_, _ = h.Write([]byte(rt.Prefix))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(key))
	return float64(mix(h.Sum64())%10000) < p*100
}

// principalKey names who is calling, for rate limits and canary stickiness: the
// user, else a hashed API key, else the client's address.
func (g *Gateway) principalKey(r *http.Request, p *authn.Principal) string {
	if p != nil {
		return "user:" + p.Subject
	}
	if k := r.Header.Get(APIKeyHeader); k != "" && len(k) <= 256 {
		// Hashed, so keys are not kept in the clear in Redis; the same in every replica,
		// so the replicas share the key's limit.
		sum := sha256.Sum256([]byte(k))
		return "key:" + hex.EncodeToString(sum[:12])
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "ip:" + host
}

// reject answers with a problem document and counts the refusal. status, when not
// zero, overrides the problem kind's status.
func (g *Gateway) reject(w http.ResponseWriter, r *http.Request, reason string, err error, status int) {
	g.metrics.rejected.WithLabelValues(reason).Inc()
	if status != 0 {
		d := problem.From(err)
		d.Status, d.Instance, d.RequestID = status, r.URL.Path, telemetry.RequestID(r.Context())
		problem.WriteDetails(w, d)
		return
	}
	g.pw.Write(w, r, err)
}

// secure sets the headers every answer carries.
func secure(h http.Header) {
	h["X-Content-Type-Options"] = []string{"nosniff"}
	h["X-Frame-Options"] = []string{"DENY"}
	h["Referrer-Policy"] = []string{"no-referrer"}
}

func headerBytes(h http.Header) int {
	n := 0
	for k, vs := range h {
		if k == "Authorization" {
			continue // capped on its own, and answered with 401
		}
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

func validID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// mix spreads FNV's output over all bits (the splitmix64 finaliser), so that keys
// differing in their last bytes do not cluster modulo 10000.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
