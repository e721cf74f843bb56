// Package idp is an identity provider for tests of a team's own services: an
// OpenID Connect discovery document and a JWKS on a real loopback listener, signing
// keys of its own (RS256 or ES256), and access tokens minted with whatever claims a
// test asks for, shaped as a Keycloak realm's are (typ JWT, roles under
// realm_access, space-separated scope, azp).
//
// It is the "someone else's provider" of a test: point a switchyard.yaml issuer at
// [Provider.Discovery] and check which routes its tokens open. It signs what it is
// told to and authenticates no one; it is no provider to run.
package idp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// T is what the provider needs of a test.
type T interface {
	Helper()
	Fatal(args ...any)
	Cleanup(func())
}

// Provider is a running test identity provider.
type Provider struct {
	t   T
	srv *httptest.Server
	alg string

	mu   sync.Mutex
	keys []signingKey // newest first; all are published
}

type signingKey struct {
	kid  string
	priv crypto.Signer
}

// Start runs a provider signing with alg (RS256 or ES256) until the test ends.
func Start(t T, alg string) *Provider {
	t.Helper()
	p := &Provider{t: t, alg: alg}
	mux := http.NewServeMux()
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": p.Issuer(), "jwks_uri": p.srv.URL + "/keys",
			"id_token_signing_alg_values_supported": []string{alg},
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, _ *http.Request) {
		p.mu.Lock()
		set := jose.JSONWebKeySet{}
		for _, k := range p.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: alg, Use: "sig"})
		}
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	})
	p.Rotate()
	return p
}

// Issuer is the iss of its tokens: its own URL.
func (p *Provider) Issuer() string { return p.srv.URL }

// Discovery is the URL of its discovery document.
func (p *Provider) Discovery() string { return p.srv.URL + "/.well-known/openid-configuration" }

// Rotate makes a new signing key, published beside the old ones; new tokens are
// signed with it.
func (p *Provider) Rotate() {
	p.t.Helper()
	var (
		priv crypto.Signer
		err  error
	)
	switch p.alg {
	case "RS256":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		p.t.Fatal("idp: sign with RS256 or ES256, not " + p.alg)
	}
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	kid := "kid-" + strings.ToLower(rand.Text()[:10])
	p.keys = append([]signingKey{{kid: kid, priv: priv}}, p.keys...)
}

// Grant is what a token says about its bearer.
type Grant struct {
	// Subject [user-1].
	Subject string
	// Audience [account].
	Audience []string
	// Scopes, written space-separated in scope.
	Scopes []string
	// Roles, written under realm_access.roles.
	Roles []string
	// Client is the azp [test-client].
	Client string
	// TTL before the token expires [5m].
	TTL time.Duration
	// Claims are set last, overriding any of the above.
	Claims map[string]any
}

// Token mints an access token for g with the newest key.
func (p *Provider) Token(g Grant) string {
	p.t.Helper()
	if g.Subject == "" {
		g.Subject = "user-1"
	}
	if len(g.Audience) == 0 {
		g.Audience = []string{"account"}
	}
	if g.Client == "" {
		g.Client = "test-client"
	}
	if g.TTL == 0 {
		g.TTL = 5 * time.Minute
	}
	now := time.Now()
	claims := jwt.MapClaims{
		"iss": p.Issuer(), "sub": g.Subject, "aud": g.Audience, "azp": g.Client,
		"iat": now.Unix(), "exp": now.Add(g.TTL).Unix(), "jti": rand.Text(),
		"scope": strings.Join(g.Scopes, " "), "realm_access": map[string]any{"roles": g.Roles},
	}
	for k, v := range g.Claims {
		claims[k] = v
	}
	p.mu.Lock()
	key := p.keys[0]
	p.mu.Unlock()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(p.alg), claims)
	tok.Header["kid"], tok.Header["typ"] = key.kid, "JWT"
	s, err := tok.SignedString(key.priv)
	if err != nil {
		p.t.Fatal(err)
	}
	return s
}
