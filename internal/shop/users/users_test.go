package users_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/api/openapi"
	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/internal/shop/users"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/store/storetest"
	"github.com/switchyard/switchyard/telemetry"
	"github.com/switchyard/switchyard/testkit/contract"
)

// clock is a settable time source shared by the service under test.
type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.t.Load()) }
func (c *clock) advance(d time.Duration) { c.t.Add(int64(d)) }
func newClock() *clock                   { c := &clock{}; c.t.Store(time.Now().UnixNano()); return c }

type harness struct {
	t      *testing.T
	client *http.Client // checks every exchange against api/openapi/users.yaml
	url    string
	svc    *users.Service
	db     *store.DB
	clk    *clock
	base   string
}

func start(t *testing.T, dbURL string, clk *clock, mod func(*users.Config)) *harness {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, store.Config{URL: dbURL, Migrations: users.Migrations()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg := users.Config{Now: clk.now}
	if mod != nil {
		mod(&cfg)
	}
	svc, err := users.New(ctx, cfg, users.Deps{DB: db, Log: telemetry.Discard(),
		Callers: authn.NewServiceVerifier("users", authn.Bundle{"orders": ordersIdentity.Public()}, []string{"orders"}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(telemetry.Middleware(telemetry.HTTPConfig{})(svc.Handler()))
	t.Cleanup(srv.Close)
	client := contract.Client(t, openapi.Files, "users.yaml", false)
	return &harness{t: t, client: client, url: dbURL, svc: svc, db: db, clk: clk, base: srv.URL}
}

type response struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

func (h *harness) do(method, path, token string, body any) response {
	h.t.Helper()
	return h.doWith(method, path, token, body, nil)
}

func (h *harness) doWith(method, path, token string, body any, header http.Header) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, h.base+path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return response{resp.StatusCode, resp.Header, m, string(raw)}
}

func (h *harness) register(email, password, name string) response {
	h.t.Helper()
	return h.do("POST", "/v1/auth/register", "", map[string]string{"email": email, "password": password, "name": name})
}

func (h *harness) login(email, password string) response {
	h.t.Helper()
	return h.do("POST", "/v1/auth/login", "", map[string]string{"email": email, "password": password})
}

const goodPassword = "correct-horse-battery"

// ordersIdentity is the calling service the tests present for internal endpoints.
var ordersIdentity = func() authn.Identity {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	return authn.Identity{Service: "orders", Key: key}
}()

// asOrders is the Service-Authorization header orders would send.
func asOrders(t testing.TB) string {
	tok, err := authn.MintServiceToken(ordersIdentity, "users", time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return "Bearer " + tok
}

func (h *harness) signUp(email string) (id, access, refresh string) {
	h.t.Helper()
	r := h.register(email, goodPassword, "Ann")
	if r.code != 201 {
		h.t.Fatalf("register %s: %d %s", email, r.code, r.raw)
	}
	l := h.login(email, goodPassword)
	if l.code != 200 {
		h.t.Fatalf("login %s: %d %s", email, l.code, l.raw)
	}
	return r.body["id"].(string), l.body["access_token"].(string), l.body["refresh_token"].(string)
}

func TestRegisterLoginAndMe(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		h := start(t, url, newClock(), nil)
		r := h.register("  Ann@Example.COM ", goodPassword, " Ann Lee ")
		if r.code != 201 {
			t.Fatalf("register: %d %s", r.code, r.raw)
		}
		if r.body["email"] != "ann@example.com" || r.body["name"] != "Ann Lee" || r.header.Get("Location") != "/v1/users/"+r.body["id"].(string) {
			t.Errorf("register returned %v, Location %q", r.body, r.header.Get("Location"))
		}
		if strings.Contains(r.raw, "argon2") || strings.Contains(r.raw, "password") {
			t.Errorf("registration response reveals the password or its hash: %s", r.raw)
		}

		l := h.login("ann@example.com", goodPassword)
		if l.code != 200 || l.body["token_type"] != "Bearer" || l.body["expires_in"] != float64(900) || l.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("login: %d %s", l.code, l.raw)
		}
		me := h.do("GET", "/v1/users/me", l.body["access_token"].(string), nil)
		if me.code != 200 || me.body["id"] != r.body["id"] {
			t.Fatalf("me: %d %s", me.code, me.raw)
		}
		if h.do("GET", "/v1/users/me", "", nil).code != 401 {
			t.Error("/v1/users/me without a token was not 401")
		}
	})
}

func TestAccessTokensCarryTheRequiredClaims(t *testing.T) {
	t.Parallel()
	h := start(t, storetest.Targets(t)[0].URL, newClock(), nil)
	_, access, _ := h.signUp("claims@example.com")
	parts := strings.Split(access, ".")
	var header, claims map[string]any
	dec := func(s string, v any) {
		b, err := jsonB64(s)
		if err != nil {
			t.Fatal(err)
		}
		json.Unmarshal(b, v)
	}
	dec(parts[0], &header)
	dec(parts[1], &claims)
	if header["alg"] != "EdDSA" || header["typ"] != "at+jwt" || header["kid"] == "" {
		t.Errorf("header = %v", header)
	}
	for _, c := range []string{"iss", "aud", "sub", "exp", "iat", "jti"} {
		if _, ok := claims[c]; !ok {
			t.Errorf("claim %s missing: %v", c, claims)
		}
	}
	if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 900 {
		t.Errorf("lifetime %vs, want 15 minutes", exp-iat)
	}
	// The JWKS publishes the key that signed it, and a remote verifier accepts it.
	remote := authn.NewRemoteKeys(authn.RemoteKeysConfig{URL: h.base + "/.well-known/jwks.json"})
	v, _ := authn.NewVerifier(authn.VerifierConfig{Issuer: "switchyard", Audience: "switchyard"}, remote)
	if _, err := v.Verify(context.Background(), access); err != nil {
		t.Errorf("token does not verify against the published JWKS: %v", err)
	}
}

func TestDuplicateEmailsConflict(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		h := start(t, url, newClock(), nil)
		h.register("dup@example.com", goodPassword, "A")
		r := h.register("DUP@example.com", goodPassword+"x", "B")
		if r.code != 409 || r.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("duplicate: %d %s", r.code, r.raw)
		}
	})
}

func TestBadRegistrationsAreRefusedNamingTheField(t *testing.T) {
	t.Parallel()
	h := start(t, storetest.Targets(t)[0].URL, newClock(), nil)
	cases := []struct {
		name  string
		body  any
		code  int
		field string
	}{
		{"malformed JSON", `{"email": "a@b.io", "password": `, 400, ""},
		{"unknown field", `{"email":"a@b.io","password":"` + goodPassword + `","name":"A","roles":["admin"]}`, 400, "roles"},
		{"wrong type", `{"email": 42}`, 400, "email"},
		{"body over 1 MiB", `{"name":"` + strings.Repeat("a", 1<<20) + `"}`, 413, ""},
		{"not JSON", "email=a@b.io", 400, ""},
		{"no email", map[string]string{"password": goodPassword, "name": "A"}, 400, "email"},
		{"email without domain", map[string]string{"email": "ann@", "password": goodPassword, "name": "A"}, 400, "email"},
		{"email without dot in domain", map[string]string{"email": "ann@localhost", "password": goodPassword, "name": "A"}, 400, "email"},
		{"email with display name", map[string]string{"email": "Ann <ann@example.com>", "password": goodPassword, "name": "A"}, 400, "email"},
		{"email with two ats", map[string]string{"email": "a@b@example.com", "password": goodPassword, "name": "A"}, 400, "email"},
		{"email with a newline", map[string]string{"email": "ann@example.com\nBcc: x@y.z", "password": goodPassword, "name": "A"}, 400, "email"},
		{"overlong email", map[string]string{"email": strings.Repeat("a", 250) + "@x.io", "password": goodPassword, "name": "A"}, 400, "email"},
		{"short password", map[string]string{"email": "a@b.io", "password": "Tr0ub4dor&3", "name": "A"}, 400, "password"},
		{"common password", map[string]string{"email": "a@b.io", "password": "password1234", "name": "A"}, 400, "password"},
		{"password is the email", map[string]string{"email": "annabel@b.io", "password": "annabel@b.io-2024", "name": "A"}, 400, "password"},
		{"one repeated character", map[string]string{"email": "a@b.io", "password": strings.Repeat("z", 20), "name": "A"}, 400, "password"},
		{"overlong password", map[string]string{"email": "a@b.io", "password": strings.Repeat("ab", 100), "name": "A"}, 400, "password"},
		{"no name", map[string]string{"email": "a@b.io", "password": goodPassword, "name": "  "}, 400, "name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do("POST", "/v1/auth/register", "", tc.body)
			if r.code != tc.code {
				t.Fatalf("status %d, want %d: %s", r.code, tc.code, r.raw)
			}
			if r.header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("content type %q", r.header.Get("Content-Type"))
			}
			if tc.field != "" && !strings.Contains(fmt.Sprint(r.body["errors"]), tc.field) {
				t.Errorf("problem does not name field %q: %s", tc.field, r.raw)
			}
		})
	}
	var n int
	if err := h.db.QueryRow("SELECT count(*) FROM users").Scan(&n); err != nil || n != 0 {
		t.Errorf("refused registrations stored %d users (%v)", n, err)
	}
}

func TestLoginFailuresLookTheSame(t *testing.T) {
	t.Parallel()
	h := start(t, storetest.Targets(t)[0].URL, newClock(), nil)
	h.register("known@example.com", goodPassword, "K")
	wrongPassword := h.login("known@example.com", "not-the-password-at-all")
	unknownEmail := h.login("nobody@example.com", goodPassword)
	invalidEmail := h.login("not an email", goodPassword)
	for _, r := range []response{wrongPassword, unknownEmail, invalidEmail} {
		if r.code != 401 || r.body["detail"] != "wrong email or password" {
			t.Errorf("login failure: %d %s", r.code, r.raw)
		}
	}
}

func TestRefreshTokensRotateAndAReplayRevokesTheFamily(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		h := start(t, url, newClock(), nil)
		_, _, refresh1 := h.signUp("rot@example.com")

		r2 := h.do("POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh1})
		if r2.code != 200 || r2.body["refresh_token"] == refresh1 {
			t.Fatalf("refresh: %d %s", r2.code, r2.raw)
		}
		refresh2 := r2.body["refresh_token"].(string)
		if h.do("GET", "/v1/users/me", r2.body["access_token"].(string), nil).code != 200 {
			t.Error("refreshed access token does not work")
		}
		// The old token is replayed: refused, and the family (refresh2) dies with it.
		if r := h.do("POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh1}); r.code != 401 {
			t.Errorf("replayed refresh token: %d", r.code)
		}
		if r := h.do("POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh2}); r.code != 401 {
			t.Errorf("family member after a replay: %d", r.code)
		}
		for _, bad := range []string{"", "rt_nope", "eyJ.eyJ.sig", strings.Repeat("x", 5000)} {
			if r := h.do("POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": bad}); r.code != 401 {
				t.Errorf("refresh with %.10q: %d", bad, r.code)
			}
		}
	})
}

func TestLogoutEndsTheSession(t *testing.T) {
	t.Parallel()
	h := start(t, storetest.Targets(t)[0].URL, newClock(), nil)
	_, _, refresh := h.signUp("bye@example.com")
	if r := h.do("POST", "/v1/auth/logout", "", map[string]string{"refresh_token": refresh}); r.code != 204 {
		t.Fatalf("logout: %d", r.code)
	}
	if r := h.do("POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh}); r.code != 401 {
		t.Errorf("refresh after logout: %d", r.code)
	}
}

func TestUsersSeeOnlyThemselvesUnlessAdmin(t *testing.T) {
	t.Parallel()
	h := start(t, storetest.Targets(t)[0].URL, newClock(), nil)
	annID, annToken, _ := h.signUp("ann@example.com")
	bobID, bobToken, _ := h.signUp("bob@example.com")
	svc := http.Header{"Service-Authorization": {asOrders(t)}}
	if r := h.doWith("GET", "/v1/users/"+annID, annToken, nil, svc); r.code != 200 {
		t.Errorf("own record, through orders: %d", r.code)
	}
	if r := h.do("GET", "/v1/users/"+annID, annToken, nil); r.code != 401 {
		t.Errorf("the internal endpoint without a service token: %d, want 401", r.code)
	}
	if r := h.doWith("GET", "/v1/users/"+annID, bobToken, nil, svc); r.code != 404 {
		t.Errorf("someone else's record: %d, want 404", r.code)
	}
	if err := users.GrantRole(context.Background(), h.db, "bob@example.com", "admin"); err != nil {
		t.Fatal(err)
	}
	l := h.login("bob@example.com", goodPassword)
	adminToken := l.body["access_token"].(string)
	if r := h.doWith("GET", "/v1/users/"+annID, adminToken, nil, svc); r.code != 200 {
		t.Errorf("admin reading a record: %d", r.code)
	}
	if r := h.doWith("GET", "/v1/users/"+bobID, adminToken, nil, svc); r.code != 200 || !strings.Contains(r.raw, "admin") {
		t.Errorf("admin's own record lacks the role: %s", r.raw)
	}
}

func TestForgedIdentityHeadersAreIgnored(t *testing.T) {
	t.Parallel()
	h := start(t, storetest.Targets(t)[0].URL, newClock(), nil)
	annID, _, _ := h.signUp("ann@example.com")
	req, _ := http.NewRequest("GET", h.base+"/v1/users/"+annID, nil)
	req.Header.Set("X-User-ID", annID)
	req.Header.Set("X-User-Roles", "admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("identity headers without a token: %d, want 401", resp.StatusCode)
	}
}

// Keys rotate; a token signed by the retired key stays valid until it expires, and
// the JWKS keeps the old key exactly as long as needed.
func TestSigningKeysRotateWithoutBreakingTokens(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		clk := newClock()
		h := start(t, url, clk, func(c *users.Config) { c.KeyRotation = time.Hour })
		_, oldToken, _ := h.signUp("rot@example.com")
		oldKid := kidOf(t, oldToken)

		clk.advance(61 * time.Minute) // the first key retires
		h2 := start(t, url, clk, func(c *users.Config) { c.KeyRotation = time.Hour })
		newToken := h2.login("rot@example.com", goodPassword).body["access_token"].(string)
		if kidOf(t, newToken) == oldKid {
			t.Fatal("no new key after the rotation period")
		}
		jwks := h2.do("GET", "/.well-known/jwks.json", "", nil).raw
		if !strings.Contains(jwks, oldKid) {
			t.Error("the retired key left the JWKS while its tokens may still be valid")
		}
		if h2.do("GET", "/v1/users/me", newToken, nil).code != 200 {
			t.Error("new token refused")
		}
		// Well past the old key's last token's expiry, it is gone.
		clk.advance(30 * time.Minute)
		h3 := start(t, url, clk, func(c *users.Config) { c.KeyRotation = time.Hour })
		if strings.Contains(h3.do("GET", "/.well-known/jwks.json", "", nil).raw, oldKid) {
			t.Error("the retired key is still published after its tokens expired")
		}
	})
}

func kidOf(t *testing.T, token string) string {
	t.Helper()
	b, err := jsonB64(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	json.Unmarshal(b, &h)
	return h["kid"].(string)
}

// Accounts and keys survive a restart: a token issued before is still accepted.
func TestDataSurvivesARestart(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		clk := newClock()
		h := start(t, url, clk, nil)
		_, access, _ := h.signUp("stay@example.com")
		h.db.Close()
		h2 := start(t, url, clk, nil)
		if r := h2.do("GET", "/v1/users/me", access, nil); r.code != 200 {
			t.Errorf("token from before the restart: %d", r.code)
		}
		if r := h2.login("stay@example.com", goodPassword); r.code != 200 {
			t.Errorf("login after restart: %d", r.code)
		}
	})
}

// A burst of hashes beyond the cap is told to come back, not queued without bound.
func TestPasswordHashingIsCapped(t *testing.T) {
	t.Parallel()
	h := start(t, storetest.Targets(t)[0].URL, newClock(), func(c *users.Config) {
		c.HashConcurrency = 1
		c.HashWait = time.Millisecond
	})
	const n = 8
	var wg sync.WaitGroup
	codes := make(chan response, n)
	gate := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			codes <- h.register(fmt.Sprintf("burst%d@example.com", i), goodPassword, "B")
		}()
	}
	close(gate)
	wg.Wait()
	close(codes)
	var created, busy int
	for r := range codes {
		switch r.code {
		case 201:
			created++
		case 503:
			busy++
			if r.header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		default:
			t.Errorf("unexpected %d %s", r.code, r.raw)
		}
	}
	if created == 0 || busy == 0 {
		t.Errorf("created %d, busy %d: want some of each under a cap of 1", created, busy)
	}
}

func jsonB64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// Every operation the contract declares is served, and every exchange conforms.
func TestEveryDeclaredOperationIsServedAsDeclared(t *testing.T) {
	t.Parallel()
	h := start(t, storetest.Targets(t)[0].URL, newClock(), nil)
	h.client = contract.Client(t, openapi.Files, "users.yaml", true)
	id, access, refresh := h.signUp("walk@example.com")
	h.do("GET", "/v1/users/me", access, nil)
	h.doWith("GET", "/v1/users/"+id, access, nil, http.Header{"Service-Authorization": {asOrders(t)}})
	h.do("GET", "/.well-known/jwks.json", "", nil)
	r := h.do("POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": refresh})
	h.do("POST", "/v1/auth/logout", "", map[string]string{"refresh_token": r.body["refresh_token"].(string)})
}
