package users

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/store"
)

// The OpenID Connect provider is zitadel/oidc's OP (OpenID certified) over the
// users database; this package supplies its storage, its sign-in and consent
// pages, and the access tokens it hands out.
//
// Access tokens: the library's own JWT access tokens are typed "JWT", like its ID
// tokens, so a service could not tell one from the other. The provider is
// therefore given opaque-token clients and a Crypto (tokenCrypto) that makes the
// "opaque" token an RFC 9068 access token (typ at+jwt, jti, scope, client_id,
// roles), signed with the same rotating Ed25519 keys as the JSON login's: one
// kind of access token, verified offline by every service. ID tokens carry only
// the client as audience, never the API's.

// standardScopes are the scopes every client may ask for.
var standardScopes = []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, oidc.ScopeOfflineAccess}

// provider is the mounted OpenID Connect provider.
type provider struct {
	op    *op.Provider
	st    *storage
	mount string // the issuer URL's path, e.g. /oidc
}

func (s *Service) newProvider() (*provider, error) {
	u, err := url.Parse(s.cfg.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("users: the issuer %q is not an http(s) URL", s.cfg.Issuer)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("users: the issuer %q must be https beyond this machine", s.cfg.Issuer)
	}
	mount := strings.TrimSuffix(u.Path, "/")
	if mount == "" {
		return nil, fmt.Errorf("users: the issuer %q needs a path to serve the provider under, e.g. %s/oidc", s.cfg.Issuer, s.cfg.Issuer)
	}
	configured := map[string]*Client{}
	scopes := slices.Clone(standardScopes)
	for i := range s.cfg.Clients {
		c := &s.cfg.Clients[i]
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("users: client %d (%s): %w", i, c.ID, err)
		}
		configured[c.ID] = c
		scopes = append(scopes, c.Scopes...)
	}
	p := &provider{mount: mount}
	p.st = &storage{s: s, clients: clients{db: s.db, configured: configured},
		login: func(id string) string { return mount + "/login?authRequestID=" + url.QueryEscape(id) }}
	opts := []op.Option{op.WithCrypto(tokenCrypto{s}), op.WithLogger(s.log)}
	if u.Scheme == "http" {
		opts = append(opts, op.WithAllowInsecure())
	}
	p.op, err = op.NewProvider(&op.Config{
		CodeMethodS256:        true,
		AuthMethodPost:        true,
		GrantTypeRefreshToken: true,
		SupportedScopes:       slices.Compact(slices.Sorted(slices.Values(scopes))),
		SupportedClaims:       []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "name", "email", "email_verified", "at_hash", "azp"},
	}, p.st, op.StaticIssuer(s.cfg.Issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("users: provider: %w", err)
	}
	return p, nil
}

// routes mounts the provider and its pages on mux.
func (p *provider) routes(mux *http.ServeMux, s *Service) {
	mux.HandleFunc("GET "+p.mount+"/login", s.loginPage(p))
	mux.HandleFunc("POST "+p.mount+"/login", s.loginSubmit(p))
	mux.HandleFunc("POST "+p.mount+"/consent", s.consentSubmit(p))
	mux.Handle(p.mount+"/", http.StripPrefix(p.mount, requireRedirectURI(p.op)))
}

// requireRedirectURI answers an authorization request without a redirect_uri
// itself, as RFC 6749 section 4.1.2.1 asks (an error shown, never redirected):
// the library would call it a server error.
func requireRedirectURI(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/authorize" && r.FormValue("redirect_uri") == "" {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_request","error_description":"redirect_uri is required"}`))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// callback is where a finished sign-in goes: the provider's, which sends the code
// to the client. Relative, so that the browser stays on the origin it came by.
func (p *provider) callback(authRequestID string) string {
	return p.mount + "/authorize/callback?id=" + url.QueryEscape(authRequestID)
}

// tokenCrypto is the provider's op.Crypto: "encrypting" a token id and subject
// mints the access token they stand for; anything else it is asked to encrypt is
// an authorization code, which is random (the storage keeps its hash).
type tokenCrypto struct{ s *Service }

func (c tokenCrypto) Encrypt(v string) (string, error) {
	id, subject, isToken := strings.Cut(v, ":")
	if !isToken {
		return "ac_" + rand.Text() + rand.Text(), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.s.mintAccess(ctx, id, subject)
}

func (c tokenCrypto) Decrypt(v string) (string, error) {
	p, err := c.s.verifier.Verify(context.Background(), v)
	if err != nil {
		return "", err
	}
	return p.TokenID + ":" + p.Subject, nil
}

// mintAccess signs the access token stored under id.
func (s *Service) mintAccess(ctx context.Context, id, subject string) (string, error) {
	var (
		sub, clientID, grant, scopes string
		expires                      int64
	)
	err := s.db.QueryRowContext(ctx, `SELECT subject, client_id, grant_type, scopes, expires_at FROM access_tokens WHERE id = $1`, id).
		Scan(&sub, &clientID, &grant, &scopes, &expires)
	if errors.Is(err, sql.ErrNoRows) || err == nil && sub != subject {
		return "", errors.New("no such access token")
	}
	if err != nil {
		return "", fmt.Errorf("load access token: %w", err)
	}
	var roles []string
	if grant != GrantClientCredentials {
		u, err := accounts{s.db}.byID(ctx, subject)
		if err != nil {
			return "", err
		}
		roles = u.Roles
	}
	key, err := s.keys.signer()
	if err != nil {
		return "", err
	}
	now := s.cfg.Now()
	return authn.SignAccessToken(key.kid, key.priv, authn.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: s.cfg.Issuer, Audience: jwt.ClaimStrings{s.cfg.Audience}, Subject: subject, ID: id,
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(store.Time(expires)),
		},
		Roles: roles, Scope: scopes, ClientID: clientID,
	})
}
