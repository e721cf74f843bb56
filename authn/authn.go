// Package authn verifies the end user's access token in every service, so that no
// service trusts an identity header and a port reached directly is no way around the
// gateway.
//
// Access tokens are JWTs (RFC 9068 profile: header typ "at+jwt") signed with EdDSA
// (Ed25519). Verification pins the algorithm (so "none", HS256-with-the-public-key and
// other algorithm confusions fail), requires exp, iss and aud, allows a small clock
// leeway, caps the token's size before parsing it, and finds the key by kid in a
// [KeySource] — the issuer's own key store, or a cached remote JWKS ([RemoteKeys]).
//
// Every failure is a problem.Unauthenticated error whose detail says what was wrong
// in general terms and never echoes the token.
package authn

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchyard/switchyard/problem"
)

// AccessTokenType is the JOSE "typ" header of an access token (RFC 9068).
const AccessTokenType = "at+jwt"

// Algorithm is the only signature algorithm accepted.
const Algorithm = "EdDSA"

// MaxTokenBytes bounds the size of a token accepted for parsing.
const MaxTokenBytes = 4096

// Claims are the claims of a Switchyard access token.
type Claims struct {
	jwt.RegisteredClaims
	// Roles granted to the subject, e.g. "admin".
	Roles []string `json:"roles,omitempty"`
}

// Principal is a verified end user.
type Principal struct {
	// Subject is the user id.
	Subject string
	// Roles granted to the user.
	Roles []string
	// TokenID is the token's jti.
	TokenID string
	// Expires is when the token stops being valid.
	Expires time.Time
	// Token is the raw access token, so a service can pass the user's identity on to
	// the services it calls as the verified token itself, never as a bare header.
	Token string
}

// HasRole reports whether p was granted role.
func (p *Principal) HasRole(role string) bool { return slices.Contains(p.Roles, role) }

// KeySource finds a verification key by its key id.
type KeySource interface {
	// PublicKey returns the key with id kid. It must be safe for concurrent use and
	// return an error for an unknown kid.
	PublicKey(ctx context.Context, kid string) (crypto.PublicKey, error)
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Issuer every token must carry in iss. Required.
	Issuer string
	// Audience every token must carry in aud. Required.
	Audience string
	// Leeway tolerated on exp, nbf and iat [30s].
	Leeway time.Duration
	// Now returns the current time [time.Now].
	Now func() time.Time
}

// Verifier verifies access tokens.
type Verifier struct {
	cfg    VerifierConfig
	keys   KeySource
	parser *jwt.Parser
	seen   *verified[Principal]
}

// NewVerifier returns a verifier trusting the keys of keys.
func NewVerifier(cfg VerifierConfig, keys KeySource) (*Verifier, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("authn: verifier needs an issuer and an audience")
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{Algorithm}),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithStrictDecoding(),
	)
	return &Verifier{cfg: cfg, keys: keys, parser: parser, seen: newVerified[Principal](cfg.Now)}, nil
}

// errUnauthenticated builds the one error kind verification returns.
func errUnauthenticated(detail string, cause error) error {
	return &problem.Error{Kind: problem.Unauthenticated, Detail: detail, Err: cause}
}

// Verify checks token and returns its principal.
func (v *Verifier) Verify(ctx context.Context, token string) (*Principal, error) {
	if token == "" {
		return nil, errUnauthenticated("no access token", nil)
	}
	if len(token) > MaxTokenBytes {
		return nil, errUnauthenticated("the access token is too large", nil)
	}
	if strings.Count(token, ".") != 2 {
		return nil, errUnauthenticated("the access token is not a JWT", nil)
	}
	if p, ok := v.seen.get(token); ok {
		return &p, nil
	}
	var claims Claims
	_, err := v.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, AccessTokenType) {
			return nil, fmt.Errorf("token type %q is not an access token", typ)
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" || len(kid) > 64 {
			return nil, errors.New("missing or malformed kid")
		}
		key, err := v.keys.PublicKey(ctx, kid)
		if err != nil {
			return nil, err
		}
		if _, ok := key.(ed25519.PublicKey); !ok {
			return nil, fmt.Errorf("key %q is not an Ed25519 key", kid)
		}
		return key, nil
	})
	if err != nil {
		return nil, errUnauthenticated(reason(err), err)
	}
	if claims.Subject == "" || claims.ID == "" {
		return nil, errUnauthenticated("the access token lacks a subject or id", nil)
	}
	p := &Principal{Subject: claims.Subject, Roles: claims.Roles, TokenID: claims.ID, Token: token}
	if claims.ExpiresAt != nil {
		p.Expires = claims.ExpiresAt.Time
	}
	v.seen.put(token, *p, p.Expires)
	return p, nil
}

// reason turns a verification failure into a safe, general detail.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "the access token has expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "the access token is not valid yet"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "the access token lacks a required claim"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "the access token was not issued for this API"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "the access token is malformed"
	default:
		return "the access token is not valid"
	}
}

// BearerToken extracts the token of an "Authorization: Bearer <token>" header. It
// returns "" when there is none.
func BearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", nil
	}
	if len(h) > MaxTokenBytes+16 {
		return "", errUnauthenticated("the Authorization header is too large", nil)
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", errUnauthenticated("use Authorization: Bearer <access token>", nil)
	}
	return strings.TrimSpace(token), nil
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the verified principal in ctx, if any.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}

// Authenticate verifies the request's bearer token and returns its principal. It is
// the building block of handlers that require a user.
func (v *Verifier) Authenticate(r *http.Request) (*Principal, error) {
	token, err := BearerToken(r)
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, errUnauthenticated("this endpoint needs Authorization: Bearer <access token>", nil)
	}
	return v.Verify(r.Context(), token)
}

// Require wraps next so that it runs only for a verified user, whose principal it
// finds with PrincipalFrom. Failures go to fail (normally a problem.Writer's Write),
// with a WWW-Authenticate challenge.
func (v *Verifier) Require(fail func(http.ResponseWriter, *http.Request, error), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := v.Authenticate(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			fail(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// SignAccessToken signs c as an access token with key, under key id kid: the one way
// access tokens are made (the users service issues them; tests and benchmarks sign
// their own).
func SignAccessToken(kid string, key ed25519.PrivateKey, c Claims) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = kid
	tok.Header["typ"] = AccessTokenType
	s, err := tok.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return s, nil
}
