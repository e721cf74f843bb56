package authn_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"

	"github.com/switchyard/switchyard/authn"
)

// issuerUnderTest is one issuer of a verifier trusting three: Switchyard's own
// (EdDSA), a Keycloak-like one (RS256, typ JWT, roles in realm_access) and one
// signing with ES256.
type issuerUnderTest struct {
	name        string
	iss, aud    string
	good, other keypair
	types       []string
	rolesClaim  string
}

func (is issuerUnderTest) claims(mod func(*authn.Claims)) *authn.Claims {
	return claimsOf(is.iss, is.aud, mod)
}

func threeIssuers(t *testing.T) ([]issuerUnderTest, *authn.Verifier) {
	t.Helper()
	all := []issuerUnderTest{
		{name: "own EdDSA", iss: "switchyard", aud: "switchyard", good: newKeyFor(t, "e1", "EdDSA"), other: newKeyFor(t, "e2", "EdDSA")},
		{name: "RS256 provider", iss: "https://idp.example/realms/shop", aud: "shop-api", good: newKeyFor(t, "r1", "RS256"), other: newKeyFor(t, "r2", "RS256"),
			types: []string{"at+jwt", "JWT"}, rolesClaim: "realm_access.roles"},
		{name: "ES256 provider", iss: "https://login.example/tenant", aud: "api://switchyard", good: newKeyFor(t, "c1", "ES256"), other: newKeyFor(t, "c2", "ES256")},
	}
	var issuers []authn.Issuer
	for _, is := range all {
		issuers = append(issuers, authn.Issuer{Issuer: is.iss, Audience: is.aud, Keys: authn.StaticKeys{is.good.kid: is.good.pub},
			Algorithms: []string{is.good.alg}, Types: is.types, RolesClaim: is.rolesClaim})
	}
	v, err := authn.NewVerifier(authn.VerifierConfig{Issuers: issuers, Now: func() time.Time { return now }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return all, v
}

func TestEveryTrustedIssuerRefusesForgedTokens(t *testing.T) {
	t.Parallel()
	issuers, v := threeIssuers(t)
	for _, is := range issuers {
		t.Run(is.name, func(t *testing.T) {
			t.Parallel()
			if _, err := v.Verify(context.Background(), sign(t, is.good, is.claims(nil), nil)); err != nil {
				t.Fatalf("a valid token of %s refused: %v", is.iss, err)
			}
			forged := forgedTokens(t, is.good, is.other, is.claims)
			if slices.Contains(is.types, "JWT") {
				delete(forged, "an ID token (typ JWT)") // this issuer types its access tokens JWT
			}
			for name, tok := range forged {
				if p, err := v.Verify(context.Background(), tok); err == nil {
					t.Errorf("%s: accepted: %+v", name, p)
				}
			}
		})
	}
}

func TestAnIssuerLendsNothingToAnother(t *testing.T) {
	t.Parallel()
	issuers, v := threeIssuers(t)
	own, rsaIDP, ecIDP := issuers[0], issuers[1], issuers[2]
	// A key, a kid, a token type or an audience good for one issuer is no good for
	// another.
	cases := map[string]string{
		"own iss, the RS256 provider's key and kid": sign(t, rsaIDP.good, own.claims(nil), nil),
		"RS256 iss, the ES256 provider's key":       sign(t, ecIDP.good, rsaIDP.claims(nil), map[string]any{"kid": rsaIDP.good.kid}),
		"own iss, RS256 with own kid":               sign(t, rsaIDP.good, own.claims(nil), map[string]any{"kid": own.good.kid}),
		"own iss, typ JWT (allowed only elsewhere)": sign(t, own.good, own.claims(nil), map[string]any{"typ": "JWT"}),
		"RS256 iss, own audience":                   sign(t, rsaIDP.good, claimsOf(rsaIDP.iss, own.aud, nil), nil),
		"ES256 iss, signed by own key":              sign(t, own.good, ecIDP.claims(nil), map[string]any{"kid": ecIDP.good.kid}),
		"an issuer no one trusts":                   sign(t, own.good, claimsOf("https://evil.example", own.aud, nil), nil),
	}
	for name, tok := range cases {
		if p, err := v.Verify(context.Background(), tok); err == nil {
			t.Errorf("%s: accepted: %+v", name, p)
		}
	}
}

func TestProvidersClaimsBecomeThePrincipal(t *testing.T) {
	t.Parallel()
	issuers, v := threeIssuers(t)
	rsaIDP := issuers[1]
	// Keycloak's shape: typ JWT, roles under realm_access, scope space-separated, azp.
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": rsaIDP.iss, "aud": []string{rsaIDP.aud, "account"}, "sub": "kc-user-7", "exp": now.Add(5 * time.Minute).Unix(),
		"iat": now.Unix(), "azp": "storefront", "scope": "openid orders:read", "realm_access": map[string]any{"roles": []string{"customer", "vip"}},
	})
	tok.Header["kid"], tok.Header["typ"] = rsaIDP.good.kid, "JWT"
	s, err := tok.SignedString(rsaIDP.good.priv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.Verify(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != "kc-user-7" || p.Issuer != rsaIDP.iss || p.ClientID != "storefront" || !p.HasRole("vip") || !p.HasScope("orders:read") || p.HasScope("orders:write") {
		t.Errorf("principal = %+v", p)
	}
	// Entra ID's shape: scp as a string.
	ecIDP := issuers[2]
	tok = jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": ecIDP.iss, "aud": ecIDP.aud, "sub": "oid-1", "jti": "u1", "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "scp": "Orders.Read Orders.Write",
	})
	tok.Header["kid"], tok.Header["typ"] = ecIDP.good.kid, "at+jwt"
	s, _ = tok.SignedString(ecIDP.good.priv)
	if p, err = v.Verify(context.Background(), s); err != nil || !p.HasScope("Orders.Write") {
		t.Errorf("scp: %+v %v", p, err)
	}
}

func TestAnIssuerIsRefusedWhatItCannotBeTrustedWith(t *testing.T) {
	t.Parallel()
	k := authn.StaticKeys{}
	for name, is := range map[string]authn.Issuer{
		"HS256":       {Issuer: "a", Audience: "b", Keys: k, Algorithms: []string{"HS256"}},
		"none":        {Issuer: "a", Audience: "b", Keys: k, Algorithms: []string{"none"}},
		"no audience": {Issuer: "a", Keys: k},
		"no keys":     {Issuer: "a", Audience: "b"},
	} {
		if _, err := authn.NewVerifier(authn.VerifierConfig{Issuers: []authn.Issuer{is}}, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := authn.NewVerifier(authn.VerifierConfig{}, nil); err == nil {
		t.Error("a verifier trusting no one was made")
	}
	twice := []authn.Issuer{{Issuer: "a", Audience: "b", Keys: k}, {Issuer: "a", Audience: "c", Keys: k}}
	if _, err := authn.NewVerifier(authn.VerifierConfig{Issuers: twice}, nil); err == nil {
		t.Error("one issuer trusted twice")
	}
}

// provider serves a discovery document and a JWKS, as an OpenID Connect provider
// does.
func provider(t *testing.T, issuer func(base string) string, keys ...jose.JSONWebKey) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"issuer": issuer(srv.URL), "jwks_uri": srv.URL + "/keys"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: keys})
	})
	return srv
}

func TestKeysAreFoundThroughDiscoveryAndOnlyUsableOnesKept(t *testing.T) {
	t.Parallel()
	rsaKey, ecKey, edKey := newKeyFor(t, "r1", "RS256"), newKeyFor(t, "c1", "ES256"), newKeyFor(t, "e1", "EdDSA")
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	srv := provider(t, func(base string) string { return base },
		jose.JSONWebKey{Key: rsaKey.pub, KeyID: "r1", Algorithm: "RS256", Use: "sig"},
		jose.JSONWebKey{Key: ecKey.pub, KeyID: "c1", Use: "sig"},
		jose.JSONWebKey{Key: edKey.pub, KeyID: "e1", Algorithm: "EdDSA"},
		jose.JSONWebKey{Key: weak.Public(), KeyID: "weak", Algorithm: "RS256"},
		jose.JSONWebKey{Key: p384.Public(), KeyID: "p384"},
		jose.JSONWebKey{Key: rsaKey.pub, KeyID: "enc", Use: "enc"},
		jose.JSONWebKey{Key: rsaKey.pub, KeyID: "mislabelled", Algorithm: "ES256"},
		jose.JSONWebKey{Key: edPriv, KeyID: "private"},
	)
	keys := authn.NewRemoteKeys(authn.RemoteKeysConfig{Discovery: srv.URL + "/.well-known/openid-configuration", Issuer: srv.URL})
	for _, kid := range []string{"r1", "c1", "e1"} {
		if _, err := keys.PublicKey(context.Background(), kid); err != nil {
			t.Errorf("%s: %v", kid, err)
		}
	}
	for _, kid := range []string{"weak", "p384", "enc", "mislabelled", "private"} {
		if k, err := keys.PublicKey(context.Background(), kid); err == nil {
			t.Errorf("%s: kept %T", kid, k)
		}
	}
}

func TestADiscoveryDocumentNamingAnotherIssuerLendsNoKeys(t *testing.T) {
	t.Parallel()
	k := newKeyFor(t, "r1", "RS256")
	srv := provider(t, func(string) string { return "https://someone-else.example" }, jose.JSONWebKey{Key: k.pub, KeyID: "r1"})
	keys := authn.NewRemoteKeys(authn.RemoteKeysConfig{Discovery: srv.URL + "/.well-known/openid-configuration", Issuer: srv.URL})
	_, err := keys.PublicKey(context.Background(), "r1")
	if err == nil || !strings.Contains(err.Error(), "someone-else") {
		t.Errorf("err = %v, want the mismatched issuer named", err)
	}
}
