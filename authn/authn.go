// Package authn verifies the end user's access token in every service, so that no
// service trusts an identity header and a port reached directly is no way around the
// gateway.
//
// A [Verifier] trusts one or more issuers: Switchyard's own (the reference shop's
// users service) and any OpenID Connect provider a team already runs — a Keycloak
// realm, an Auth0 tenant, an Entra ID tenant — each with its own audience, its own
// keys (a JWKS found through the provider's discovery document, refetched when it
// rotates) and the algorithms it signs with: EdDSA, ES256 or RS256. A token is
// routed to its issuer by its iss and then verified by that issuer's rules alone, so
// a key, an algorithm or a token type allowed for one issuer is never accepted for
// another.
//
// Verification pins the algorithm (so "none", HS256-with-the-public-key and other
// algorithm confusions fail), checks that the key found by kid is of the algorithm's
// kind, requires exp, iss and aud, allows a small clock leeway, and caps the token's
// size before parsing it. Access tokens typed "at+jwt" follow RFC 9068 and must carry
// a jti; an issuer whose access tokens are typed "JWT" (many are) says so in
// [Issuer.Types].
//
// Every failure is a problem.Unauthenticated error whose detail says what was wrong
// in general terms and never echoes the token.
package authn

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
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

// Algorithm is the algorithm Switchyard's own issuer signs with, and an issuer's
// default.
const Algorithm = "EdDSA"

// Algorithms are the signature algorithms an issuer may be trusted with.
var Algorithms = []string{"EdDSA", "ES256", "RS256"}

// MaxTokenBytes bounds the size of a token accepted for parsing.
const MaxTokenBytes = 4096

// minRSABits is the smallest RSA modulus trusted.
const minRSABits = 2048

// Claims are the claims of a Switchyard access token.
type Claims struct {
	jwt.RegisteredClaims
	// Roles granted to the subject, e.g. "admin".
	Roles []string `json:"roles,omitempty"`
	// Scope is the space-separated list of scopes granted (RFC 9068 section 2.2.3).
	Scope string `json:"scope,omitempty"`
	// ClientID is the OAuth client the token was issued to (RFC 9068 section 2.2).
	ClientID string `json:"client_id,omitempty"`
}

// Principal is a verified end user (or, for a client-credentials token, a client).
type Principal struct {
	// Subject is the user id (a client's id for a client-credentials token).
	Subject string
	// Issuer is the iss of the token, telling one provider's subjects from another's.
	Issuer string
	// Roles granted to the user.
	Roles []string
	// Scopes granted to the token.
	Scopes []string
	// ClientID is the OAuth client the token was issued to, when it says.
	ClientID string
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

// HasScope reports whether p's token was granted scope.
func (p *Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

// KeySource finds a verification key by its key id.
type KeySource interface {
	// PublicKey returns the key with id kid. It must be safe for concurrent use and
	// return an error for an unknown kid.
	PublicKey(ctx context.Context, kid string) (crypto.PublicKey, error)
}

// Issuer is an issuer of access tokens a Verifier trusts, with the rules its tokens
// are held to.
type Issuer struct {
	// Issuer is the iss its tokens carry, exactly. Required.
	Issuer string
	// Audience its tokens must carry in aud. Required.
	Audience string
	// Keys finds its verification keys. Required.
	Keys KeySource
	// Algorithms it signs with, of [Algorithms]; any other is refused [EdDSA].
	Algorithms []string
	// Types are the JOSE typ headers its access tokens carry [at+jwt]. Keycloak and
	// Entra ID type them "JWT"; an ID token is never an access token, whatever it says.
	Types []string
	// RolesClaim is where its tokens carry roles: a claim name, or a dot path into
	// nested objects such as realm_access.roles (Keycloak) [roles].
	RolesClaim string
}

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Issuer every token must carry in iss, with the keys given to NewVerifier; empty
	// when every issuer is in Issuers.
	Issuer string
	// Audience every token of Issuer must carry in aud.
	Audience string
	// Issuers are further issuers trusted, each with its own keys and rules.
	Issuers []Issuer
	// Leeway tolerated on exp, nbf and iat [30s].
	Leeway time.Duration
	// Now returns the current time [time.Now].
	Now func() time.Time
}

// Verifier verifies access tokens.
type Verifier struct {
	cfg     VerifierConfig
	issuers map[string]*trusted
	seen    *verified[Principal]
}

// trusted is an issuer with its parser.
type trusted struct {
	Issuer
	roles  []string // RolesClaim split at its dots
	parser *jwt.Parser
}

// NewVerifier returns a verifier trusting cfg.Issuer, whose keys are keys, and every
// issuer of cfg.Issuers.
func NewVerifier(cfg VerifierConfig, keys KeySource) (*Verifier, error) {
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	all := slices.Clone(cfg.Issuers)
	if cfg.Issuer != "" || cfg.Audience != "" || keys != nil {
		all = append([]Issuer{{Issuer: cfg.Issuer, Audience: cfg.Audience, Keys: keys}}, all...)
	}
	if len(all) == 0 {
		return nil, errors.New("authn: a verifier needs an issuer to trust")
	}
	v := &Verifier{cfg: cfg, issuers: make(map[string]*trusted, len(all)), seen: newVerified[Principal](cfg.Now)}
	for _, is := range all {
		t, err := newTrusted(is, cfg)
		if err != nil {
			return nil, err
		}
		if _, dup := v.issuers[is.Issuer]; dup {
			return nil, fmt.Errorf("authn: issuer %q is trusted twice", is.Issuer)
		}
		v.issuers[is.Issuer] = t
	}
	return v, nil
}

func newTrusted(is Issuer, cfg VerifierConfig) (*trusted, error) {
	if is.Issuer == "" || is.Audience == "" || is.Keys == nil {
		return nil, errors.New("authn: an issuer needs its iss, an audience and keys")
	}
	if len(is.Algorithms) == 0 {
		is.Algorithms = []string{Algorithm}
	}
	for _, a := range is.Algorithms {
		if !slices.Contains(Algorithms, a) {
			return nil, fmt.Errorf("authn: issuer %q: algorithm %q is not one of %s", is.Issuer, a, strings.Join(Algorithms, ", "))
		}
	}
	if len(is.Types) == 0 {
		is.Types = []string{AccessTokenType}
	}
	if is.RolesClaim == "" {
		is.RolesClaim = "roles"
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods(is.Algorithms),
		jwt.WithIssuer(is.Issuer),
		jwt.WithAudience(is.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithStrictDecoding(),
	)
	return &trusted{Issuer: is, roles: strings.Split(is.RolesClaim, "."), parser: parser}, nil
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
	is, ok := v.issuers[unverifiedIssuer(token)]
	if !ok {
		return nil, errUnauthenticated("the access token was not issued by an issuer this API trusts", nil)
	}
	p, err := is.verify(ctx, token)
	if err != nil {
		return nil, err
	}
	v.seen.put(token, *p, p.Expires)
	return p, nil
}

// unverifiedIssuer reads the iss of token without verifying anything, only to
// choose whose rules verify it.
func unverifiedIssuer(token string) string {
	_, rest, _ := strings.Cut(token, ".")
	payload, _, _ := strings.Cut(rest, ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return ""
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return ""
	}
	return c.Iss
}

func (t *trusted) verify(ctx context.Context, token string) (*Principal, error) {
	var (
		claims jwt.MapClaims
		typ    string
	)
	_, err := t.parser.ParseWithClaims(token, &claims, func(tok *jwt.Token) (any, error) {
		typ, _ = tok.Header["typ"].(string)
		if !slices.ContainsFunc(t.Types, func(want string) bool { return strings.EqualFold(typ, want) }) {
			return nil, fmt.Errorf("token type %q is not an access token of this issuer", typ)
		}
		kid, _ := tok.Header["kid"].(string)
		if kid == "" || len(kid) > 128 {
			return nil, errors.New("missing or malformed kid")
		}
		key, err := t.Keys.PublicKey(ctx, kid)
		if err != nil {
			return nil, err
		}
		if !keyFits(tok.Method.Alg(), key) {
			return nil, fmt.Errorf("key %q is not a key for %s", kid, tok.Method.Alg())
		}
		return key, nil
	})
	if err != nil {
		return nil, errUnauthenticated(reason(err), err)
	}
	p := &Principal{Issuer: t.Issuer.Issuer, Token: token}
	p.Subject, _ = claims["sub"].(string)
	p.TokenID, _ = claims["jti"].(string)
	if p.Subject == "" {
		return nil, errUnauthenticated("the access token lacks a subject", nil)
	}
	if p.TokenID == "" && strings.EqualFold(typ, AccessTokenType) {
		return nil, errUnauthenticated("the access token lacks an id", nil) // RFC 9068 section 2.2
	}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		p.Expires = exp.Time
	}
	p.Roles = stringsAt(claims, t.roles)
	p.Scopes = scopes(claims)
	p.ClientID, _ = claims["client_id"].(string)
	if p.ClientID == "" {
		p.ClientID, _ = claims["azp"].(string)
	}
	return p, nil
}

// keyFits reports whether key is a key of the kind alg signs with, so that a JWKS
// mixing kinds never lends an RSA key to an EdDSA header or the other way round.
func keyFits(alg string, key crypto.PublicKey) bool {
	switch k := key.(type) {
	case ed25519.PublicKey:
		return alg == "EdDSA"
	case *ecdsa.PublicKey:
		return alg == "ES256" && k.Curve == elliptic.P256()
	case *rsa.PublicKey:
		return alg == "RS256" && k.N.BitLen() >= minRSABits
	}
	return false
}

// stringsAt finds the strings at path in claims: an array of strings or one string.
func stringsAt(claims map[string]any, path []string) []string {
	var at any = claims
	for _, step := range path {
		obj, ok := at.(map[string]any)
		if !ok {
			return nil
		}
		at = obj[step]
	}
	switch x := at.(type) {
	case string:
		return strings.Fields(x)
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// scopes reads the scopes granted: RFC 9068's space-separated scope, or scp (Entra
// ID, Okta) as a string or an array.
func scopes(claims map[string]any) []string {
	if s := stringsAt(claims, []string{"scope"}); s != nil {
		return s
	}
	return stringsAt(claims, []string{"scp"})
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
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", errUnauthenticated("use Authorization: Bearer <access token>", nil)
	}
	if !b64token(token) {
		return "", errUnauthenticated("the bearer token holds characters no token has (RFC 6750 §2.1)", nil)
	}
	return token, nil
}

// b64token reports whether t has RFC 6750's token68 shape: letters, digits and
// -._~+/ then any '=' padding. A JWT always has it; anything else is refused before
// a verifier reads it.
func b64token(t string) bool {
	end := len(strings.TrimRight(t, "="))
	if end == 0 {
		return false
	}
	for i := range end {
		c := t[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
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
