package gateway_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/cache"
	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/gateway/transform"
)

// products is a service whose every answer is numbered, so a cached one shows:
// it answers with the caller it saw and the Cache-Control it is told to.
type products struct {
	*httptest.Server
	served       atomic.Int64
	cacheControl atomic.Value // string
	vary         atomic.Value // string
}

func newProducts(t *testing.T, cacheControl string) *products {
	p := &products{}
	p.cacheControl.Store(cacheControl)
	p.vary.Store("")
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := p.served.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", p.cacheControl.Load().(string))
		if v := p.vary.Load().(string); v != "" {
			w.Header().Set("Vary", v)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"n": n, "path": r.URL.Path, "query": r.URL.RawQuery,
			"user": r.Header.Get("X-User-Id"), "lang": r.Header.Get("Accept-Language")})
	}))
	t.Cleanup(p.Close)
	return p
}

// clock is a settable time for freshness.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type cached struct {
	url   string
	gw    *gateway.Gateway
	reg   *prometheus.Registry
	clock *clock
}

func cachedGateway(t *testing.T, p *products, auth gateway.Auth, c gateway.Caching, store cache.Cache, is *issuer) cached {
	t.Helper()
	clk := &clock{now: time.Now()}
	reg := prometheus.NewRegistry()
	cfg := gateway.Config{Routes: []gateway.Route{{Prefix: "/api/v1/catalog", Path: "/v1", Auth: auth, Cache: &c,
		Upstream: upstream(t, "catalog", discovery.Instance{Addr: strings.TrimPrefix(p.URL, "http://")})}},
		Cache: store, Now: clk.Now, Metrics: reg}
	if is != nil {
		cfg.Verifier = is.verifier(t)
	}
	g := newGateway(t, cfg)
	return cached{url: serve(t, g, nil), gw: g, reg: reg, clock: clk}
}

// answer is what the products service said, as the client saw it.
type answer struct {
	status      int
	n           float64
	user, lang  string
	etag, cache string
}

func fetch(t *testing.T, url string, header map[string]string) answer {
	t.Helper()
	resp, body := get(t, url, header)
	a := answer{status: resp.StatusCode, etag: resp.Header.Get("ETag"), cache: resp.Header.Get("Cache-Status")}
	if resp.StatusCode == http.StatusOK {
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		a.n, _ = v["n"].(float64)
		a.user, _ = v["user"].(string)
		a.lang, _ = v["lang"].(string)
	}
	return a
}

func (c cached) results(t *testing.T, result string) float64 {
	t.Helper()
	return counter(t, c.reg, "gateway_cache_requests_total", "result", result)
}

func TestACachedAnswerIsNeverServedToAnotherPrincipal(t *testing.T) {
	t.Parallel()
	is := newIssuer(t)
	p := newProducts(t, "private, max-age=60")
	gw := cachedGateway(t, p, gateway.AuthRequired, gateway.Caching{}, nil, is)
	ada := map[string]string{"Authorization": "Bearer " + is.token(t, is.claims("ada"))}
	bob := map[string]string{"Authorization": "Bearer " + is.token(t, is.claims("bob"))}

	first := fetch(t, gw.url+"/api/v1/catalog/wishlist", ada)
	again := fetch(t, gw.url+"/api/v1/catalog/wishlist", ada)
	if first.user != "ada" || again.n != first.n || !strings.Contains(again.cache, "hit") {
		t.Fatalf("ada's second read %+v after %+v: want her first answer from the cache", again, first)
	}
	for range 3 {
		if b := fetch(t, gw.url+"/api/v1/catalog/wishlist", bob); b.user != "bob" || b.n == first.n {
			t.Fatalf("bob was served %+v", b)
		}
	}
	if got := p.served.Load(); got != 2 {
		t.Errorf("the service answered %d times for two callers", got)
	}
	// Any principal's cached answer, under every one of these, goes to nobody else.
	for i := range 10 {
		who := fmt.Sprintf("user-%d", i)
		h := map[string]string{"Authorization": "Bearer " + is.token(t, is.claims(who))}
		for range 2 {
			if a := fetch(t, gw.url+"/api/v1/catalog/wishlist", h); a.user != who {
				t.Fatalf("%s was served %s's answer", who, a.user)
			}
		}
	}
	if hits := gw.results(t, "hit"); hits != 1+2+10 {
		t.Errorf("%v hits, want 13", hits)
	}
}

func TestUnverifiedCredentialsAndUndeclaredVariantsAreNotCached(t *testing.T) {
	t.Parallel()
	p := newProducts(t, "public, max-age=60")
	gw := cachedGateway(t, p, gateway.AuthNone, gateway.Caching{Vary: []string{"Accept-Language"}}, nil, nil)

	// On a route that verifies nobody, a request with credentials is passed on every
	// time: what the service makes of them is its own business.
	for range 2 {
		if a := fetch(t, gw.url+"/api/v1/catalog/products", map[string]string{"Authorization": "Bearer whatever"}); !strings.Contains(a.cache, "bypass") {
			t.Errorf("a request with credentials: %q", a.cache)
		}
	}
	if p.served.Load() != 2 {
		t.Errorf("%d answers for two requests with credentials", p.served.Load())
	}
	// The headers the route names in Vary select variants.
	en := fetch(t, gw.url+"/api/v1/catalog/products", map[string]string{"Accept-Language": "en"})
	fr := fetch(t, gw.url+"/api/v1/catalog/products", map[string]string{"Accept-Language": "fr"})
	en2 := fetch(t, gw.url+"/api/v1/catalog/products", map[string]string{"Accept-Language": "en"})
	if en.lang != "en" || fr.lang != "fr" || en2.n != en.n {
		t.Errorf("variants: en %+v, fr %+v, en again %+v", en, fr, en2)
	}
	// The query is part of the key.
	if a, b := fetch(t, gw.url+"/api/v1/catalog/products?page=2", nil), fetch(t, gw.url+"/api/v1/catalog/products?page=3", nil); a.n == b.n {
		t.Error("two queries shared an entry")
	}
	// A Vary naming a header the route does not: never stored.
	p.vary.Store("X-Tenant")
	before := p.served.Load()
	fetch(t, gw.url+"/api/v1/catalog/tenanted", nil)
	fetch(t, gw.url+"/api/v1/catalog/tenanted", nil)
	if p.served.Load()-before != 2 {
		t.Error("an answer varying on an undeclared header was served from the cache")
	}
	// no-store keeps an answer out; a client's no-store passes its request on.
	p.vary.Store("")
	p.cacheControl.Store("no-store")
	before = p.served.Load()
	fetch(t, gw.url+"/api/v1/catalog/secret", nil)
	fetch(t, gw.url+"/api/v1/catalog/secret", nil)
	if p.served.Load()-before != 2 {
		t.Error("a no-store answer was kept")
	}
	p.cacheControl.Store("public, max-age=60")
	fetch(t, gw.url+"/api/v1/catalog/fresh", nil)
	before = p.served.Load()
	if a := fetch(t, gw.url+"/api/v1/catalog/fresh", map[string]string{"Cache-Control": "no-store"}); p.served.Load() == before || !strings.Contains(a.cache, "fwd=request") {
		t.Errorf("a client's no-store was answered from the cache: %+v", a)
	}
}

func TestETagsAnswerWith304(t *testing.T) {
	t.Parallel()
	p := newProducts(t, "public, max-age=60")
	gw := cachedGateway(t, p, gateway.AuthNone, gateway.Caching{}, nil, nil)
	first := fetch(t, gw.url+"/api/v1/catalog/products/p-1", nil)
	if first.etag == "" || !strings.Contains(first.cache, "stored") {
		t.Fatalf("first answer %+v: want an ETag, stored", first)
	}
	for _, inm := range []string{first.etag, "W/" + first.etag, `"other", ` + first.etag, "*"} {
		if a := fetch(t, gw.url+"/api/v1/catalog/products/p-1", map[string]string{"If-None-Match": inm}); a.status != http.StatusNotModified || a.etag != first.etag {
			t.Errorf("If-None-Match %s: %+v, want 304 with the ETag", inm, a)
		}
	}
	if a := fetch(t, gw.url+"/api/v1/catalog/products/p-1", map[string]string{"If-None-Match": `"stale"`}); a.status != http.StatusOK || a.n != first.n {
		t.Errorf("another ETag: %+v, want the cached 200", a)
	}
	// After an invalidation the old ETag no longer matches: the new answer is sent.
	fetch(t, gw.url+"/api/v1/catalog/products/p-2", nil)
	tag := fetch(t, gw.url+"/api/v1/catalog/products/p-2", nil).etag
	if err := gw.gw.Invalidate(context.Background(), "/api/v1/catalog/products/p-2"); err != nil {
		t.Fatal(err)
	}
	before := p.served.Load()
	a := fetch(t, gw.url+"/api/v1/catalog/products/p-2", map[string]string{"If-None-Match": tag})
	if p.served.Load() != before+1 || a.status != http.StatusOK {
		t.Errorf("after invalidation: %+v, want the service asked again (its answer differs, so 200)", a)
	}
	if p.served.Load() != 3 { // p-1 once, p-2 twice
		t.Errorf("the service answered %d times", p.served.Load())
	}
}

func TestStaleIfErrorWhileTheServiceIsDown(t *testing.T) {
	t.Parallel()
	p := newProducts(t, "public, max-age=10, stale-if-error=60")
	gw := cachedGateway(t, p, gateway.AuthNone, gateway.Caching{}, nil, nil)
	first := fetch(t, gw.url+"/api/v1/catalog/products/p-1", nil)

	gw.clock.advance(20 * time.Second) // stale now, within stale-if-error
	p.Close()                          // and the service is gone
	a := fetch(t, gw.url+"/api/v1/catalog/products/p-1", nil)
	if a.status != http.StatusOK || a.n != first.n || !strings.Contains(a.cache, "stale-if-error") {
		t.Fatalf("with the service down: %+v, want the stale entry", a)
	}
	if gw.results(t, "stale") != 1 {
		t.Errorf("stale answers counted %v", gw.results(t, "stale"))
	}
	// A path never cached has nothing to stand in: the failure shows.
	if a := fetch(t, gw.url+"/api/v1/catalog/products/p-9", nil); a.status != http.StatusServiceUnavailable {
		t.Errorf("an uncached path with the service down: %d", a.status)
	}
	gw.clock.advance(time.Minute) // past the stale window too
	if a := fetch(t, gw.url+"/api/v1/catalog/products/p-1", nil); a.status != http.StatusServiceUnavailable {
		t.Errorf("past stale-if-error: %d, want the failure", a.status)
	}
}

func TestFreshnessFollowsTheServiceUnlessTheRouteOverrides(t *testing.T) {
	t.Parallel()
	p := newProducts(t, "public, max-age=5")
	gw := cachedGateway(t, p, gateway.AuthNone, gateway.Caching{}, nil, nil)
	first := fetch(t, gw.url+"/api/v1/catalog/a", nil)
	gw.clock.advance(4 * time.Second)
	if a := fetch(t, gw.url+"/api/v1/catalog/a", nil); a.n != first.n {
		t.Error("fresh for 5s, but not at 4s")
	}
	gw.clock.advance(2 * time.Second)
	if a := fetch(t, gw.url+"/api/v1/catalog/a", nil); a.n == first.n {
		t.Error("still served at 6s")
	}
	// The route's MaxAge applies when the service says nothing, and over it with Override.
	p.cacheControl.Store("")
	q := cachedGateway(t, p, gateway.AuthNone, gateway.Caching{MaxAge: time.Minute}, nil, nil)
	one := fetch(t, q.url+"/api/v1/catalog/b", nil)
	if two := fetch(t, q.url+"/api/v1/catalog/b", nil); two.n != one.n {
		t.Error("a silent answer was not kept for the route's max age")
	}
	p.cacheControl.Store("no-store")
	o := cachedGateway(t, p, gateway.AuthNone, gateway.Caching{MaxAge: time.Minute, Override: true}, nil, nil)
	one = fetch(t, o.url+"/api/v1/catalog/c", nil)
	if two := fetch(t, o.url+"/api/v1/catalog/c", nil); two.n != one.n {
		t.Error("the route's override did not hold")
	}
}

func TestInvalidationDropsEveryVariantOfAPath(t *testing.T) {
	t.Parallel()
	p := newProducts(t, "public, max-age=60")
	gw := cachedGateway(t, p, gateway.AuthNone, gateway.Caching{Vary: []string{"Accept-Language"}}, nil, nil)
	urls := []string{"/api/v1/catalog/products/p-1", "/api/v1/catalog/products/p-1?fields=name"}
	for _, u := range urls {
		for _, lang := range []string{"en", "fr"} {
			fetch(t, gw.url+u, map[string]string{"Accept-Language": lang})
		}
	}
	other := fetch(t, gw.url+"/api/v1/catalog/products/p-2", nil)
	before := p.served.Load()
	if err := gw.gw.Invalidate(context.Background(), "/api/v1/catalog/products/p-1"); err != nil {
		t.Fatal(err)
	}
	for _, u := range urls {
		for _, lang := range []string{"en", "fr"} {
			fetch(t, gw.url+u, map[string]string{"Accept-Language": lang})
		}
	}
	if got := p.served.Load() - before; got != 4 {
		t.Errorf("%d of four variants asked again after invalidation", got)
	}
	if a := fetch(t, gw.url+"/api/v1/catalog/products/p-2", nil); a.n != other.n {
		t.Error("another path's entry was dropped")
	}
}

func TestCachedAnswersAreSharedAcrossReplicasThroughRedis(t *testing.T) {
	t.Parallel()
	redisClient(t) // skips without SWITCHYARD_TEST_REDIS, fails when it names no server
	url, prefix := os.Getenv("SWITCHYARD_TEST_REDIS"), "switchyard:test:"+rand.Text()+":"
	replica := func() *cache.Redis {
		c, err := cache.NewRedis(context.Background(), url, prefix)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	one, two := replica(), replica()
	p := newProducts(t, "public, max-age=60")
	a := cachedGateway(t, p, gateway.AuthNone, gateway.Caching{}, one, nil)
	b := cachedGateway(t, p, gateway.AuthNone, gateway.Caching{}, two, nil)

	first := fetch(t, a.url+"/api/v1/catalog/products/p-1", nil)
	shared := fetch(t, b.url+"/api/v1/catalog/products/p-1", nil)
	if shared.n != first.n || !strings.Contains(shared.cache, "hit") || b.results(t, "hit") != 1 {
		t.Fatalf("replica two: %+v, want replica one's answer as a hit", shared)
	}
	// An invalidation in one replica holds in the other.
	if err := a.gw.Invalidate(context.Background(), "/api/v1/catalog/products/p-1"); err != nil {
		t.Fatal(err)
	}
	if again := fetch(t, b.url+"/api/v1/catalog/products/p-1", nil); again.n == first.n {
		t.Error("replica two served what replica one invalidated")
	}
	if p.served.Load() != 2 {
		t.Errorf("the service answered %d times", p.served.Load())
	}
}

func TestHeadAndOriginsAreTheirOwnVariants(t *testing.T) {
	t.Parallel()
	p := newProducts(t, "public, max-age=60")
	reg := prometheus.NewRegistry()
	g := newGateway(t, gateway.Config{Routes: []gateway.Route{{Prefix: "/api/v1/catalog", Path: "/v1", Auth: gateway.AuthNone,
		Cache:    &gateway.Caching{},
		Upstream: upstream(t, "catalog", discovery.Instance{Addr: strings.TrimPrefix(p.URL, "http://")})}},
		CORS: gateway.CORS{AllowedOrigins: []string{"https://a.example", "https://b.example"}}, Metrics: reg})
	url := serve(t, g, nil)

	// A HEAD is answered, never stored: the GET after it gets the whole body.
	req, _ := http.NewRequest(http.MethodHead, url+"/api/v1/catalog/p-1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD: %d", resp.StatusCode)
	}
	if a := fetch(t, url+"/api/v1/catalog/p-1", nil); a.n == 0 || !strings.Contains(a.cache, "stored") {
		t.Errorf("the GET after a HEAD: %+v", a)
	}
	// A HEAD of a stored entry is a hit, without the body.
	req, _ = http.NewRequest(http.MethodHead, url+"/api/v1/catalog/p-1", nil)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Errorf("HEAD of a stored entry: %q", resp.Header.Get("Cache-Status"))
	}

	// Each origin gets the CORS headers of its own.
	for _, origin := range []string{"https://a.example", "https://b.example", "https://a.example"} {
		resp, _ := get(t, url+"/api/v1/catalog/p-2", map[string]string{"Origin": origin})
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
			t.Errorf("origin %s was answered for %q", origin, got)
		}
	}
	if p.served.Load() != 4 { // HEAD, p-1, p-2 for a, p-2 for b
		t.Errorf("the service answered %d times", p.served.Load())
	}
}

func TestTheCacheKeepsTheTransformedAnswer(t *testing.T) {
	t.Parallel()
	p := newProducts(t, "public, max-age=60")
	rules, err := transform.Compile(transform.Spec{Response: transform.Response{Body: transform.Body{Deny: []string{"path"}}}}, "/api/v1/catalog")
	if err != nil {
		t.Fatal(err)
	}
	g := newGateway(t, gateway.Config{Routes: []gateway.Route{{Prefix: "/api/v1/catalog", Path: "/v1", Auth: gateway.AuthNone,
		Cache: &gateway.Caching{}, Transform: rules,
		Upstream: upstream(t, "catalog", discovery.Instance{Addr: strings.TrimPrefix(p.URL, "http://")})}}})
	url := serve(t, g, nil)
	for i := range 2 {
		resp, body := get(t, url+"/api/v1/catalog/p-1", nil)
		if strings.Contains(string(body), `"path"`) || resp.Header.Get("ETag") == "" {
			t.Errorf("read %d: %s (ETag %q)", i, body, resp.Header.Get("ETag"))
		}
	}
	if p.served.Load() != 1 {
		t.Errorf("the service answered %d times", p.served.Load())
	}
}
