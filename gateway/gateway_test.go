package gateway_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/resilience"
	"github.com/switchyard/switchyard/rpc"
	"github.com/switchyard/switchyard/telemetry"
	"github.com/switchyard/switchyard/testkit/idp"
)

// lockedBuffer collects log output written from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// backend is a real HTTP server that counts requests and echoes what it received.
type backend struct {
	*httptest.Server
	hits atomic.Int64
	name string
}

func newBackend(t testing.TB, name string) *backend {
	b := &backend{name: name}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		h := map[string]string{}
		for _, k := range []string{"X-User-Id", "X-User-Roles", "X-Correlation-Id", "X-Request-Id", "Idempotency-Key", "X-Hop", "Connection", "X-Forwarded-For", "Authorization"} {
			h[k] = r.Header.Get(k)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"backend": b.name, "path": r.URL.Path, "query": r.URL.RawQuery, "headers": h, "body_bytes": len(body)})
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) addr() string { return strings.TrimPrefix(b.URL, "http://") }

// upstream is the rpc client stack over Wire toward the given instances.
func upstream(t testing.TB, name string, instances ...discovery.Instance) gateway.Upstream {
	t.Helper()
	for i := range instances {
		instances[i].Service = name
		if instances[i].ID == "" {
			instances[i].ID = fmt.Sprintf("i%d", i)
		}
	}
	c, err := rpc.NewClient(context.Background(), rpc.ClientConfig{
		Service: name, Resolver: discovery.NewStatic(instances...), Transport: &gateway.Wire{},
		Policy: resilience.Config{Timeout: 2 * time.Second, TryTimeout: time.Second, MaxConcurrent: 1024},
	})
	if err != nil {
		t.Fatal(err)
	}
	return gateway.Upstream{Name: name, Host: name, Transport: c}
}

// issuer signs tokens and serves its JWKS like the users service does.
type issuer struct {
	kid     string
	priv    ed25519.PrivateKey
	pub     ed25519.PublicKey
	fetches atomic.Int64
	jwks    *httptest.Server
}

func newIssuer(t testing.TB) *issuer {
	pub, priv, _ := ed25519.GenerateKey(nil)
	is := &issuer{kid: "key-2026-11", priv: priv, pub: pub}
	is.jwks = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		is.fetches.Add(1)
		_ = json.NewEncoder(w).Encode(authn.JWKSet{Keys: []authn.JWK{authn.PublicJWK(is.kid, is.pub)}})
	}))
	t.Cleanup(is.jwks.Close)
	return is
}

func (is *issuer) claims(sub string, roles ...string) authn.Claims {
	now := time.Now()
	return authn.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: "switchyard", Audience: jwt.ClaimStrings{"switchyard"},
		Subject: sub, ID: "jti-" + sub, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute))}, Roles: roles}
}

func (is *issuer) token(t testing.TB, c authn.Claims) string {
	t.Helper()
	tok, err := authn.SignAccessToken(is.kid, is.priv, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (is *issuer) verifier(t testing.TB) *authn.Verifier {
	v, err := authn.NewVerifier(authn.VerifierConfig{Issuer: "switchyard", Audience: "switchyard", Leeway: 5 * time.Second},
		authn.NewRemoteKeys(authn.RemoteKeysConfig{URL: is.jwks.URL, MinRefetch: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// serve runs g behind the telemetry middleware on a real listener, logging to logs.
func serve(t *testing.T, g *gateway.Gateway, logs io.Writer) string {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	log := telemetry.NewLogger(logs, telemetry.LogConfig{Service: "gateway", Level: -4})
	srv := httptest.NewServer(telemetry.Middleware(telemetry.HTTPConfig{Logger: log})(g))
	t.Cleanup(srv.Close)
	return srv.URL
}

func newGateway(t testing.TB, cfg gateway.Config) *gateway.Gateway {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = telemetry.Discard()
	}
	g, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func get(t *testing.T, url string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// providerHS256 signs a token with the provider's iss as HS256 keyed by its RSA
// public key as published (the classic algorithm confusion).
func providerHS256(t *testing.T, p *idp.Provider) string {
	t.Helper()
	resp, err := http.Get(p.Issuer() + "/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	published, _ := io.ReadAll(resp.Body)
	now := time.Now().Unix()
	in := b64(map[string]any{"alg": "HS256", "typ": "JWT", "kid": "any"}) + "." +
		b64(map[string]any{"iss": p.Issuer(), "aud": "shop-api", "sub": "ann", "iat": now, "exp": now + 300})
	m := hmac.New(sha256.New, published)
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// tampered rewrites claims of a signed token, keeping its signature.
func tampered(token string, set map[string]any) string {
	parts := strings.Split(token, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	_ = json.Unmarshal(raw, &c)
	for k, v := range set {
		c[k] = v
	}
	return parts[0] + "." + b64(c) + "." + parts[2]
}

func b64(v any) string {
	var b []byte
	switch x := v.(type) {
	case string:
		b = []byte(x)
	default:
		b, _ = json.Marshal(x)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// twoIssuers trusts is (EdDSA, like the users service) and a provider of someone
// else's (RS256, Keycloak-shaped, audience shop-api).
func twoIssuers(t *testing.T, is *issuer, other *idp.Provider) *authn.Verifier {
	t.Helper()
	v, err := authn.NewVerifier(authn.VerifierConfig{Leeway: 5 * time.Second, Issuers: []authn.Issuer{
		{Issuer: "switchyard", Audience: "switchyard", Keys: authn.NewRemoteKeys(authn.RemoteKeysConfig{URL: is.jwks.URL, MinRefetch: 10 * time.Second})},
		{Issuer: other.Issuer(), Audience: "shop-api", Algorithms: []string{"RS256"}, Types: []string{"JWT"}, RolesClaim: "realm_access.roles",
			// Refetched at once on an unknown kid, so that the rotation below needs no wait.
			Keys: authn.NewRemoteKeys(authn.RemoteKeysConfig{Discovery: other.Discovery(), Issuer: other.Issuer(), MinRefetch: time.Nanosecond})},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestForgedTokensAreRefusedBeforeAnyService(t *testing.T) {
	is := newIssuer(t)
	other := idp.Start(t, "RS256")
	be := newBackend(t, "orders")
	logs := &lockedBuffer{}
	g := newGateway(t, gateway.Config{
		Routes:   []gateway.Route{{Prefix: "/api/v1/orders", Auth: gateway.AuthRequired, Upstream: upstream(t, "orders", discovery.Instance{Addr: be.addr()})}},
		Verifier: twoIssuers(t, is, other),
		Logger:   telemetry.NewLogger(logs, telemetry.LogConfig{Service: "gateway", Level: -4}),
	})
	url := serve(t, g, logs) + "/api/v1/orders"

	valid := is.token(t, is.claims("ann"))
	parts := strings.Split(valid, ".")
	stdHeader := map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": is.kid}
	claims := func(mod func(c map[string]any)) map[string]any {
		now := time.Now().Unix()
		c := map[string]any{"iss": "switchyard", "aud": []string{"switchyard"}, "sub": "ann", "jti": "j1", "iat": now, "exp": now + 300}
		if mod != nil {
			mod(c)
		}
		return c
	}
	signed := func(header, c map[string]any, key ed25519.PrivateKey) string {
		in := b64(header) + "." + b64(c)
		return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(in)))
	}
	_, otherKey, _ := ed25519.GenerateKey(nil)
	hmacWithPublicKey := func() string {
		in := b64(map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": is.kid}) + "." + b64(claims(nil))
		m := hmac.New(sha256.New, is.pub)
		m.Write([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	with := func(k string, v any) func(map[string]any) { return func(c map[string]any) { c[k] = v } }
	without := func(k string) func(map[string]any) { return func(c map[string]any) { delete(c, k) } }
	header := func(k string, v any) map[string]any {
		h := map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": is.kid}
		h[k] = v
		return h
	}
	now := time.Now().Unix()
	serviceToken, err := authn.MintServiceToken(authn.Identity{Service: "orders", Key: is.priv}, "orders", time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	forged := []struct{ name, authorization string }{
		{"alg none", "Bearer " + b64(map[string]any{"alg": "none", "typ": "at+jwt", "kid": is.kid}) + "." + b64(claims(nil)) + "."},
		{"HS256 signed with the public key", "Bearer " + hmacWithPublicKey()},
		{"RS256 claimed, EdDSA signature", "Bearer " + signed(header("alg", "RS256"), claims(nil), is.priv)},
		{"unknown kid", "Bearer " + signed(header("kid", "no-such-key"), claims(nil), is.priv)},
		{"malicious kid (path)", "Bearer " + signed(header("kid", "../../../../dev/null"), claims(nil), is.priv)},
		{"malicious kid (SQL)", "Bearer " + signed(header("kid", "' OR 1=1 --"), claims(nil), is.priv)},
		{"oversize kid", "Bearer " + signed(header("kid", strings.Repeat("k", 300)), claims(nil), is.priv)},
		{"expired", "Bearer " + signed(stdHeader, claims(with("exp", now-120)), is.priv)},
		{"nbf in the future", "Bearer " + signed(stdHeader, claims(with("nbf", now+3600)), is.priv)},
		{"iat in the future", "Bearer " + signed(stdHeader, claims(with("iat", now+3600)), is.priv)},
		{"no exp", "Bearer " + signed(stdHeader, claims(without("exp")), is.priv)},
		{"wrong iss", "Bearer " + signed(stdHeader, claims(with("iss", "https://evil.example")), is.priv)},
		{"wrong aud", "Bearer " + signed(stdHeader, claims(with("aud", []string{"another-api"})), is.priv)},
		{"no subject", "Bearer " + signed(stdHeader, claims(without("sub")), is.priv)},
		{"typ JWT instead of at+jwt", "Bearer " + signed(header("typ", "JWT"), claims(nil), is.priv)},
		{"service token as access token", "Bearer " + serviceToken},
		{"refresh token as access token", "Bearer rt_" + strings.Repeat("A", 43)},
		{"valid signature from another key", "Bearer " + signed(stdHeader, claims(nil), otherKey)},
		{"claims tampered after signing", "Bearer " + parts[0] + "." + b64(claims(with("roles", []string{"admin"}))) + "." + parts[2]},
		{"truncated", "Bearer " + valid[:len(valid)-10]},
		{"signature stripped", "Bearer " + parts[0] + "." + parts[1] + "."},
		{"garbage", "Bearer !!!.???.***"},
		{"Basic scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte("ann:secret"))},
		{"empty bearer", "Bearer "},
		{"Bearer followed by 100 KB of dots", "Bearer " + strings.Repeat(".", 100<<10)},
		{"16 KB header", "Bearer " + strings.Repeat("A", 16<<10)},
		// The second issuer's tokens, forged.
		{"provider: wrong aud", "Bearer " + other.Token(idp.Grant{Audience: []string{"switchyard"}})},
		{"provider: expired", "Bearer " + other.Token(idp.Grant{Audience: []string{"shop-api"}, TTL: -time.Minute})},
		{"provider: no subject", "Bearer " + other.Token(idp.Grant{Audience: []string{"shop-api"}, Claims: map[string]any{"sub": ""}})},
		{"provider: another provider's iss", "Bearer " + other.Token(idp.Grant{Audience: []string{"shop-api"}, Claims: map[string]any{"iss": "https://evil.example"}})},
		{"provider's iss, own issuer's key", "Bearer " + signed(stdHeader, claims(with("iss", other.Issuer())), is.priv)},
		{"provider's iss, HS256 with its RSA key", "Bearer " + providerHS256(t, other)},
		{"own iss, the provider's RS256 key", "Bearer " + other.Token(idp.Grant{Audience: []string{"switchyard"}, Claims: map[string]any{"iss": "switchyard"}})},
		{"provider: tampered to grant a role", "Bearer " + tampered(other.Token(idp.Grant{Audience: []string{"shop-api"}}), map[string]any{"realm_access": map[string]any{"roles": []string{"admin"}}})},
	}
	if len(forged) < 20 {
		t.Fatalf("the suite must hold at least 20 forged tokens, has %d", len(forged))
	}
	for _, f := range forged {
		t.Run(f.name, func(t *testing.T) {
			resp, body := get(t, url, map[string]string{"Authorization": f.authorization, "X-User-Id": "ann"})
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401: %s", resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q, want application/problem+json", ct)
			}
		})
	}
	if n := be.hits.Load(); n != 0 {
		t.Errorf("%d forged requests reached the service", n)
	}
	// The unknown kids asked for the key set again once (the issuer may have rotated),
	// not once per token.
	if n := is.fetches.Load(); n > 2 {
		t.Errorf("the JWKS was fetched %d times; unknown kids must not each trigger a fetch", n)
	}
	// The real token still works, and no log line holds any token's text.
	if resp, body := get(t, url, map[string]string{"Authorization": "Bearer " + valid}); resp.StatusCode != http.StatusOK {
		t.Fatalf("valid token: %d %s", resp.StatusCode, body)
	}
	out := logs.String()
	if !strings.Contains(out, `"status":401`) {
		t.Fatalf("no access-log lines were captured:\n%s", out)
	}
	for _, f := range forged {
		_, tok, _ := strings.Cut(f.authorization, " ")
		for _, piece := range strings.Split(tok, ".") {
			if len(piece) >= 16 && strings.Contains(out, piece) {
				t.Errorf("%s: the logs contain token text %q…", f.name, piece[:16])
			}
		}
	}
	for _, piece := range parts {
		if strings.Contains(out, piece) {
			t.Errorf("the logs contain the valid token's text")
		}
	}
}

func TestIdentityHeadersComeFromTheTokenOnly(t *testing.T) {
	is := newIssuer(t)
	be := newBackend(t, "users")
	up := upstream(t, "users", discovery.Instance{Addr: be.addr()})
	g := newGateway(t, gateway.Config{
		Routes: []gateway.Route{
			{Prefix: "/api/v1/users/me", Auth: gateway.AuthRequired, Upstream: up},
			{Prefix: "/api/v1/products", Auth: gateway.AuthNone, Upstream: up},
			{Prefix: "/api/v1/admin", Auth: gateway.AuthAdmin, Upstream: up},
		},
		Verifier: is.verifier(t),
	})
	url := serve(t, g, nil)
	var echo struct {
		Path    string            `json:"path"`
		Headers map[string]string `json:"headers"`
	}
	resp, body := get(t, url+"/api/v1/users/me", map[string]string{"Authorization": "Bearer " + is.token(t, is.claims("ann", "customer")),
		"X-User-Id": "mallory", "X-User-Roles": "admin", "Idempotency-Key": "k-1", "X-Correlation-Id": "checkout-42",
		"Connection": "X-Hop", "X-Hop": "secret"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	_ = json.Unmarshal(body, &echo)
	want := map[string]string{"X-User-Id": "ann", "X-User-Roles": "customer", "Idempotency-Key": "k-1", "X-Correlation-Id": "checkout-42", "X-Hop": "", "Connection": ""}
	for k, v := range want {
		if echo.Headers[k] != v {
			t.Errorf("upstream saw %s = %q, want %q", k, echo.Headers[k], v)
		}
	}
	if echo.Path != "/v1/users/me" {
		t.Errorf("upstream path %q, want /v1/users/me", echo.Path)
	}
	if echo.Headers["X-Request-Id"] == "" || resp.Header.Get("X-Request-Id") != echo.Headers["X-Request-Id"] {
		t.Errorf("request id: client saw %q, upstream %q", resp.Header.Get("X-Request-Id"), echo.Headers["X-Request-Id"])
	}
	for _, h := range []string{"X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("security header %s is missing", h)
		}
	}

	// On a route without authentication, forged identity headers are still removed,
	// and a correlation id is minted.
	_, body = get(t, url+"/api/v1/products/p1", map[string]string{"X-User-Id": "mallory", "X-User-Roles": "admin"})
	_ = json.Unmarshal(body, &echo)
	if echo.Headers["X-User-Id"] != "" || echo.Headers["X-User-Roles"] != "" {
		t.Errorf("client-sent identity headers reached the service: %v", echo.Headers)
	}
	if echo.Headers["X-Correlation-Id"] == "" {
		t.Error("no correlation id was minted")
	}

	// Admin routes need the role.
	if resp, _ := get(t, url+"/api/v1/admin/dead-letters", map[string]string{"Authorization": "Bearer " + is.token(t, is.claims("ann", "customer"))}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("customer on an admin route: %d, want 403", resp.StatusCode)
	}
	if resp, _ := get(t, url+"/api/v1/admin/dead-letters", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous on an admin route: %d, want 401", resp.StatusCode)
	}
	if resp, _ := get(t, url+"/api/v1/admin/dead-letters", map[string]string{"Authorization": "Bearer " + is.token(t, is.claims("root", "admin"))}); resp.StatusCode != http.StatusOK {
		t.Errorf("admin on an admin route: %d, want 200", resp.StatusCode)
	}
}

func TestRefusalsAreProblems(t *testing.T) {
	be := newBackend(t, "orders")
	// A port nothing listens on: a dead backend.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	g := newGateway(t, gateway.Config{Routes: []gateway.Route{
		{Prefix: "/api/v1/orders", Auth: gateway.AuthNone, MaxBody: 1024, Upstream: upstream(t, "orders", discovery.Instance{Addr: be.addr()})},
		{Prefix: "/api/v1/legacy", Auth: gateway.AuthNone, Upstream: upstream(t, "legacy", discovery.Instance{Addr: dead})},
		{Prefix: "/api/v1/empty", Auth: gateway.AuthNone, Upstream: upstream(t, "empty")},
	}})
	url := serve(t, g, nil)

	post := func(path string, body io.Reader, size int64) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, url+path, body)
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	cases := []struct {
		name   string
		resp   func() *http.Response
		status int
	}{
		{"oversize body with a length", func() *http.Response {
			return post("/api/v1/orders", strings.NewReader(strings.Repeat("x", 2048)), 2048)
		}, 413},
		{"oversize body, chunked", func() *http.Response {
			return post("/api/v1/orders", io.MultiReader(strings.NewReader(strings.Repeat("x", 4096))), -1)
		}, 413},
		{"unknown route", func() *http.Response { r, _ := get(t, url+"/api/v9/nothing", nil); return r }, 404},
		{"a prefix is not a word prefix", func() *http.Response { r, _ := get(t, url+"/api/v1/ordersx", nil); return r }, 404},
		{"dead backend", func() *http.Response { r, _ := get(t, url+"/api/v1/legacy/x", nil); return r }, 503},
		{"no instance at all", func() *http.Response { r, _ := get(t, url+"/api/v1/empty/x", nil); return r }, 503},
		{"headers too large", func() *http.Response {
			r, _ := get(t, url+"/api/v1/orders", map[string]string{"X-Junk": strings.Repeat("j", 40<<10)})
			return r
		}, 431},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			resp := c.resp()
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, c.status)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q, want application/problem+json", ct)
			}
			if c.status == 503 {
				if resp.Header.Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
				// Quickly: well within the route's 2 s policy deadline, not after it.
				if el := time.Since(start); el > time.Second {
					t.Errorf("took %s to say the backend is down", el)
				}
				t.Logf("%s answered in %s", c.name, time.Since(start).Round(time.Microsecond))
			}
		})
	}
	if n := be.hits.Load(); n != 0 {
		t.Errorf("%d refused requests reached the service", n)
	}
	// A body within the limit passes, streamed with its length or chunked.
	if resp := post("/api/v1/orders", strings.NewReader(`{"a":1}`), 7); resp.StatusCode != 200 {
		t.Errorf("small body: %d", resp.StatusCode)
	}
	if resp := post("/api/v1/orders", io.MultiReader(strings.NewReader(`{"a":1}`)), -1); resp.StatusCode != 200 {
		t.Errorf("small chunked body: %d", resp.StatusCode)
	}
}

func TestCORS(t *testing.T) {
	be := newBackend(t, "catalog")
	g := newGateway(t, gateway.Config{
		Routes: []gateway.Route{{Prefix: "/api/v1/products", Auth: gateway.AuthNone, Upstream: upstream(t, "catalog", discovery.Instance{Addr: be.addr()})}},
		CORS:   gateway.CORS{AllowedOrigins: []string{"https://shop.example"}},
	})
	url := serve(t, g, nil)
	preflight := func(origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodOptions, url+"/api/v1/products", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := preflight("https://shop.example"); resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://shop.example" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("allowed preflight: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := preflight("https://evil.example"); resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign preflight: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ := get(t, url+"/api/v1/products", map[string]string{"Origin": "https://shop.example"})
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://shop.example" || !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Errorf("simple request: %v", resp.Header)
	}
	if be.hits.Load() != 1 {
		t.Errorf("preflights must be answered by the gateway; backend saw %d requests", be.hits.Load())
	}
}

func newServer(h http.Handler) *httptest.Server { return httptest.NewServer(h) }

func TestRoutesOpenToTheIssuersScopesAndRolesTheyName(t *testing.T) {
	is := newIssuer(t)
	other := idp.Start(t, "RS256")
	be := newBackend(t, "orders")
	up := upstream(t, "orders", discovery.Instance{Addr: be.addr()})
	g := newGateway(t, gateway.Config{
		Routes: []gateway.Route{
			{Prefix: "/any", Auth: gateway.AuthRequired, Upstream: up},
			{Prefix: "/read", Auth: gateway.AuthRequired, Scopes: []string{"orders:read"}, Upstream: up},
			{Prefix: "/write", Auth: gateway.AuthRequired, Scopes: []string{"orders:read", "orders:write"}, Upstream: up},
			{Prefix: "/ops", Auth: gateway.AuthRequired, Roles: []string{"ops", "admin"}, Issuers: []string{other.Issuer()}, Upstream: up},
		},
		Verifier: twoIssuers(t, is, other),
	})
	base := serve(t, g, nil)
	own := is.token(t, is.claims("ann"))
	reader := other.Token(idp.Grant{Subject: "kc-1", Audience: []string{"shop-api"}, Scopes: []string{"openid", "orders:read"}})
	writer := other.Token(idp.Grant{Subject: "kc-2", Audience: []string{"shop-api", "account"}, Scopes: []string{"orders:read", "orders:write"}, Roles: []string{"ops"}})
	cases := []struct {
		path, token string
		want        int
	}{
		{"/any", own, 200}, {"/any", reader, 200}, {"/any", writer, 200},
		{"/read", own, 403}, {"/read", reader, 200}, {"/read", writer, 200},
		{"/write", reader, 403}, {"/write", writer, 200},
		{"/ops", own, 403}, {"/ops", reader, 403}, {"/ops", writer, 200},
	}
	for _, c := range cases {
		resp, body := get(t, base+c.path, map[string]string{"Authorization": "Bearer " + c.token})
		if resp.StatusCode != c.want {
			t.Errorf("%s with %s's token: %d, want %d: %s", c.path, map[string]string{own: "own", reader: "reader", writer: "writer"}[c.token], resp.StatusCode, c.want, body)
		}
	}
	// A missing scope is answered as RFC 6750 says, naming the scopes needed.
	resp, _ := get(t, base+"/write", map[string]string{"Authorization": "Bearer " + reader})
	if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer error="insufficient_scope", scope="orders:read orders:write"` {
		t.Errorf("WWW-Authenticate = %q", got)
	}
	// The provider rotates its key: the next token, signed with the new one, passes.
	other.Rotate()
	rotated := other.Token(idp.Grant{Audience: []string{"shop-api"}, Scopes: []string{"orders:read"}})
	if resp, body := get(t, base+"/read", map[string]string{"Authorization": "Bearer " + rotated}); resp.StatusCode != 200 {
		t.Errorf("a token of the provider's rotated key: %d %s", resp.StatusCode, body)
	}
}
