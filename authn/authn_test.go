package authn_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/problem"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// keypair is a signing key of one algorithm, under a key id.
type keypair struct {
	kid  string
	alg  string
	pub  crypto.PublicKey
	priv crypto.Signer
}

func newKey(t testing.TB, kid string) keypair { return newKeyFor(t, kid, "EdDSA") }

func newKeyFor(t testing.TB, kid, alg string) keypair {
	t.Helper()
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case "EdDSA":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("no key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return keypair{kid: kid, alg: alg, pub: priv.Public(), priv: priv}
}

func claims(mod func(*authn.Claims)) *authn.Claims {
	return claimsOf("switchyard", "switchyard", mod)
}

func claimsOf(iss, aud string, mod func(*authn.Claims)) *authn.Claims {
	c := &authn.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    iss,
			Audience:  jwt.ClaimStrings{aud},
			Subject:   "user-1",
			ID:        "jti-1",
			IssuedAt:  jwt.NewNumericDate(now.Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(now.Add(14 * time.Minute)),
		},
		Roles: []string{"customer"},
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func sign(t testing.TB, k keypair, c *authn.Claims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(k.alg), c)
	tok.Header["kid"] = k.kid
	tok.Header["typ"] = authn.AccessTokenType
	for h, v := range header {
		if v == nil {
			delete(tok.Header, h)
		} else {
			tok.Header[h] = v
		}
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

func verifier(t testing.TB, keys authn.KeySource) *authn.Verifier {
	t.Helper()
	v, err := authn.NewVerifier(authn.VerifierConfig{Issuer: "switchyard", Audience: "switchyard", Now: func() time.Time { return now }}, keys)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAValidTokenYieldsItsPrincipal(t *testing.T) {
	t.Parallel()
	k := newKey(t, "k1")
	v := verifier(t, authn.StaticKeys{"k1": k.pub})
	tok := sign(t, k, claims(nil), nil)
	p, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "user-1" || p.TokenID != "jti-1" || !p.HasRole("customer") || p.HasRole("admin") || p.Token != tok {
		t.Errorf("principal = %+v", p)
	}
}

// forgedTokens returns the forged and broken tokens every verifier must refuse, for
// an issuer whose claims base makes and whose key is good (other is a key it does
// not trust).
func forgedTokens(t *testing.T, good, other keypair, base func(func(*authn.Claims)) *authn.Claims) map[string]string {
	hs256WithPublicKey := func() string {
		der, err := x509.MarshalPKIXPublicKey(good.pub)
		if err != nil {
			t.Fatal(err)
		}
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, base(nil))
		tok.Header["kid"] = good.kid
		tok.Header["typ"] = authn.AccessTokenType
		s, err := tok.SignedString(der)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	otherAlg := "RS256"
	if good.alg == "RS256" {
		otherAlg = "EdDSA"
	}
	valid := sign(t, good, base(nil), nil)
	parts := strings.Split(valid, ".")
	return map[string]string{
		"alg none":                          b64(map[string]any{"alg": "none", "typ": "at+jwt", "kid": good.kid}) + "." + b64(base(nil)) + ".",
		"alg none with a signature":         b64(map[string]any{"alg": "none", "typ": "at+jwt", "kid": good.kid}) + "." + b64(base(nil)) + "." + parts[2],
		"HS256 signed with the public key":  hs256WithPublicKey(),
		"another algorithm's header":        b64(map[string]any{"alg": otherAlg, "typ": "at+jwt", "kid": good.kid}) + "." + parts[1] + "." + parts[2],
		"unknown kid":                       sign(t, good, base(nil), map[string]any{"kid": "nope"}),
		"path traversal kid":                sign(t, good, base(nil), map[string]any{"kid": "../../../../etc/passwd"}),
		"overlong kid":                      sign(t, good, base(nil), map[string]any{"kid": strings.Repeat("k", 500)}),
		"no kid":                            sign(t, good, base(nil), map[string]any{"kid": nil}),
		"expired":                           sign(t, good, base(func(c *authn.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour)) }), nil),
		"nbf in the future":                 sign(t, good, base(func(c *authn.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) }), nil),
		"iat in the future":                 sign(t, good, base(func(c *authn.Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour)) }), nil),
		"no exp":                            sign(t, good, base(func(c *authn.Claims) { c.ExpiresAt = nil }), nil),
		"wrong iss":                         sign(t, good, base(func(c *authn.Claims) { c.Issuer = "evil" }), nil),
		"no iss":                            sign(t, good, base(func(c *authn.Claims) { c.Issuer = "" }), nil),
		"wrong aud":                         sign(t, good, base(func(c *authn.Claims) { c.Audience = jwt.ClaimStrings{"other-api"} }), nil),
		"no sub":                            sign(t, good, base(func(c *authn.Claims) { c.Subject = "" }), nil),
		"no jti on an at+jwt":               sign(t, good, base(func(c *authn.Claims) { c.ID = "" }), nil),
		"an ID token (typ JWT)":             sign(t, good, base(nil), map[string]any{"typ": "JWT"}),
		"no typ":                            sign(t, good, base(nil), map[string]any{"typ": nil}),
		"valid signature from another key":  sign(t, other, base(nil), map[string]any{"kid": good.kid}),
		"payload tampered to grant admin":   parts[0] + "." + b64(base(func(c *authn.Claims) { c.Roles = []string{"admin"} })) + "." + parts[2],
		"payload tampered to add a scope":   parts[0] + "." + b64(base(func(c *authn.Claims) { c.Scope = "orders:write admin" })) + "." + parts[2],
		"truncated":                         valid[:len(valid)-10],
		"signature stripped":                parts[0] + "." + parts[1] + ".",
		"two segments":                      parts[0] + "." + parts[1],
		"100 KB of dots":                    strings.Repeat(".", 100<<10),
		"opaque refresh token":              "rt_" + strings.Repeat("A", 43),
		"garbage base64":                    "!!!.???.***",
		"JSON that is not an object header": b64([]int{1}) + "." + parts[1] + "." + parts[2],
	}
}

func TestForgedAndBrokenTokensAreRefused(t *testing.T) {
	t.Parallel()
	good, other := newKey(t, "k1"), newKey(t, "k2")
	v := verifier(t, authn.StaticKeys{"k1": good.pub})
	for name, tok := range forgedTokens(t, good, other, claims) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, err := v.Verify(context.Background(), tok)
			if err == nil {
				t.Fatalf("accepted: %+v", p)
			}
			if problem.KindOf(err) != problem.Unauthenticated {
				t.Errorf("kind %v, want Unauthenticated: %v", problem.KindOf(err), err)
			}
			d := problem.From(err)
			if len(tok) > 20 && strings.Contains(d.Detail, tok[:20]) {
				t.Errorf("detail echoes the token: %q", d.Detail)
			}
		})
	}
}

func TestTheClockLeewayIsSmall(t *testing.T) {
	t.Parallel()
	k := newKey(t, "k1")
	v := verifier(t, authn.StaticKeys{"k1": k.pub})
	justExpired := sign(t, k, claims(func(c *authn.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-10 * time.Second)) }), nil)
	if _, err := v.Verify(context.Background(), justExpired); err != nil {
		t.Errorf("a token 10s past exp is within leeway: %v", err)
	}
	longExpired := sign(t, k, claims(func(c *authn.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-2 * time.Minute)) }), nil)
	if _, err := v.Verify(context.Background(), longExpired); err == nil {
		t.Error("a token 2 minutes past exp was accepted")
	}
}

func TestBearerHeaderParsing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		header string
		token  string
		ok     bool
	}{
		{"", "", true},
		{"Bearer abc.def.ghi", "abc.def.ghi", true},
		{"bearer abc.def.ghi", "abc.def.ghi", true},
		{"Basic dXNlcjpwYXNz", "", false},
		{"Bearer", "", false},
		{"Bearer    ", "", false},
		{"Bearer a b", "", false},
		{"Bearer abc\x00", "", false},
		{"Bearer abc==", "abc==", true},
		{"Bearer ==", "", false},
		{"Bearer " + strings.Repeat("a", 16<<10), "", false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		got, err := authn.BearerToken(r)
		if (err == nil) != tc.ok || got != tc.token {
			t.Errorf("%.30q: got %q, %v", tc.header, got, err)
		}
	}
}

func TestRequireGuardsAHandler(t *testing.T) {
	t.Parallel()
	k := newKey(t, "k1")
	v := verifier(t, authn.StaticKeys{"k1": k.pub})
	var reached atomic.Int32
	h := v.Require(problem.Writer{}.Write, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := authn.PrincipalFrom(r.Context())
		reached.Add(1)
		w.Write([]byte(p.Subject))
	}))
	for _, tc := range []struct {
		auth string
		code int
	}{
		{"", 401},
		{"Bearer not.a.token", 401},
		{"Bearer " + sign(t, k, claims(nil), nil), 200},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-User-ID", "admin") // a forged identity header changes nothing
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != tc.code {
			t.Errorf("%.20q: status %d, want %d", tc.auth, rec.Code, tc.code)
		}
		if tc.code == 401 && rec.Header().Get("WWW-Authenticate") == "" {
			t.Error("401 without a WWW-Authenticate challenge")
		}
		if tc.code == 200 && rec.Body.String() != "user-1" {
			t.Errorf("principal = %q", rec.Body.String())
		}
	}
	if reached.Load() != 1 {
		t.Errorf("handler reached %d times, want 1", reached.Load())
	}
}

func TestRemoteKeysFollowRotationButRateLimitRefetches(t *testing.T) {
	t.Parallel()
	k1, k2 := newKey(t, "k1"), newKey(t, "k2")
	var published atomic.Value
	published.Store(authn.JWKSet{Keys: []authn.JWK{authn.PublicJWK("k1", k1.pub.(ed25519.PublicKey))}})
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		json.NewEncoder(w).Encode(published.Load())
	}))
	defer srv.Close()

	clock := now
	remote := authn.NewRemoteKeys(authn.RemoteKeysConfig{URL: srv.URL, MinRefetch: 10 * time.Second, Now: func() time.Time { return clock }})
	v := verifier(t, remote)
	ctx := context.Background()

	if _, err := v.Verify(ctx, sign(t, k1, claims(nil), nil)); err != nil {
		t.Fatal(err)
	}
	// Random kids do not turn into a flood of fetches.
	for range 50 {
		v.Verify(ctx, sign(t, k1, claims(nil), map[string]any{"kid": "random"}))
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches after unknown kids within MinRefetch, want 1", n)
	}
	// The issuer rotates: after MinRefetch, the new kid is fetched and accepted.
	published.Store(authn.JWKSet{Keys: []authn.JWK{authn.PublicJWK("k1", k1.pub.(ed25519.PublicKey)), authn.PublicJWK("k2", k2.pub.(ed25519.PublicKey))}})
	clock = clock.Add(11 * time.Second)
	if _, err := v.Verify(ctx, sign(t, k2, claims(nil), nil)); err != nil {
		t.Errorf("rotated key refused: %v", err)
	}
	if n := fetches.Load(); n != 2 {
		t.Errorf("%d fetches, want 2", n)
	}
}

func TestJWKRefusesKeysItCannotUse(t *testing.T) {
	t.Parallel()
	for _, k := range []authn.JWK{
		{Kty: "RSA", Kid: "r", X: "AQAB"},
		{Kty: "OKP", Crv: "X25519", Kid: "x", X: base64.RawURLEncoding.EncodeToString(make([]byte, 32))},
		{Kty: "OKP", Crv: "Ed25519", Kid: "s", X: "c2hvcnQ"},
		{Kty: "OKP", Crv: "Ed25519", Kid: "e", Use: "enc", X: base64.RawURLEncoding.EncodeToString(make([]byte, 32))},
	} {
		if _, err := k.PublicKey(); err == nil {
			t.Errorf("accepted %+v", k)
		}
	}
}

// countingKeys counts the key lookups a verification makes: a cached token makes
// none.
type countingKeys struct {
	keys    authn.StaticKeys
	lookups atomic.Int32
}

func (c *countingKeys) PublicKey(ctx context.Context, kid string) (crypto.PublicKey, error) {
	c.lookups.Add(1)
	return c.keys.PublicKey(ctx, kid)
}

func TestAVerifiedTokenIsRememberedUntilItExpiresOrAMinutePasses(t *testing.T) {
	t.Parallel()
	k := newKey(t, "k1")
	keys := &countingKeys{keys: authn.StaticKeys{"k1": k.pub}}
	clock := now
	v, _ := authn.NewVerifier(authn.VerifierConfig{Issuer: "switchyard", Audience: "switchyard", Now: func() time.Time { return clock }}, keys)
	tok := sign(t, k, claims(func(c *authn.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(90 * time.Second)) }), nil)
	for range 3 {
		if p, err := v.Verify(context.Background(), tok); err != nil || p.Subject != "user-1" {
			t.Fatalf("%v %v", p, err)
		}
	}
	if n := keys.lookups.Load(); n != 1 {
		t.Errorf("three verifications of one token looked the key up %d times, want once", n)
	}
	// After a minute the token is checked again: a key withdrawn meanwhile stops it.
	clock = now.Add(61 * time.Second)
	delete(keys.keys, "k1")
	if _, err := v.Verify(context.Background(), tok); err == nil {
		t.Error("a token signed by a withdrawn key was still honoured after a minute")
	}
	// And a remembered token never outlives its expiry.
	keys.keys["k1"] = k.pub
	v.Verify(context.Background(), tok)
	clock = now.Add(90*time.Second + 31*time.Second) // past exp and the leeway
	if _, err := v.Verify(context.Background(), tok); err == nil {
		t.Error("an expired token was honoured from memory")
	}
}
