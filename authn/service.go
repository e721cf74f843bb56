package authn

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchyard/switchyard/problem"
)

// Service-to-service authentication.
//
// Every service holds an Ed25519 identity key; a trust bundle maps each service
// name to its public key. A caller sends, with every internal call, a short-lived
// service token — a JWT with typ "svc+jwt", iss and sub the caller, aud the callee,
// valid five minutes — in the Service-Authorization header. The callee verifies it
// against the bundle and checks that the caller is one it accepts: the services that
// declare it as a dependency in switchyard.yaml (and the gateway, for routed
// services). The end user's identity travels beside it, as the user's own access
// token in Authorization, never as a header a caller could forge.
//
// `switchyard up` generates the keys and the bundle in the data directory; on
// Kubernetes each service's key is a Secret and the bundle a ConfigMap.

// ServiceTokenType is the JOSE "typ" of a service token.
const ServiceTokenType = "svc+jwt"

// ServiceHeader carries the service token.
const ServiceHeader = "Service-Authorization"

// serviceTokenTTL is a service token's lifetime; callers renew at 80 %.
const serviceTokenTTL = 5 * time.Minute

// Identity is a service's name and signing key.
type Identity struct {
	Service string
	Key     ed25519.PrivateKey
}

// Public returns the identity's public key.
func (id Identity) Public() ed25519.PublicKey { return id.Key.Public().(ed25519.PublicKey) }

// Bundle maps service names to their public keys.
type Bundle map[string]ed25519.PublicKey

type bundleFile struct {
	Services map[string]JWK `json:"services"`
}

// MarshalJSON writes the bundle as {"services": {"orders": <JWK>, ...}}.
func (b Bundle) MarshalJSON() ([]byte, error) {
	f := bundleFile{Services: map[string]JWK{}}
	for name, pub := range b {
		f.Services[name] = PublicJWK(name, pub)
	}
	return json.Marshal(f)
}

// UnmarshalJSON reads a bundle written by MarshalJSON.
func (b *Bundle) UnmarshalJSON(data []byte) error {
	var f bundleFile
	if err := json.Unmarshal(data, &f); err != nil {
		return err
	}
	*b = Bundle{}
	for name, k := range f.Services {
		pub, err := k.PublicKey()
		if err != nil {
			return fmt.Errorf("bundle entry %s: %w", name, err)
		}
		(*b)[name] = pub
	}
	return nil
}

// LoadBundle reads a trust bundle file.
func LoadBundle(path string) (Bundle, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trust bundle: %w", err)
	}
	var b Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("trust bundle %s: %w", path, err)
	}
	return b, nil
}

// LoadIdentity reads a service's PEM (PKCS #8) Ed25519 key.
func LoadIdentity(service, path string) (Identity, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Identity{}, fmt.Errorf("identity of %s: %w", service, err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return Identity{}, fmt.Errorf("identity of %s: %s holds no PEM private key", service, path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return Identity{}, fmt.Errorf("identity of %s: %w", service, err)
	}
	ed, ok := key.(ed25519.PrivateKey)
	if !ok {
		return Identity{}, fmt.Errorf("identity of %s: %s is not an Ed25519 key", service, path)
	}
	return Identity{Service: service, Key: ed}, nil
}

// EnsureIdentities makes sure dir holds a key file (<service>.key, owner-only) for
// every service and a bundle.json listing their public keys; existing keys are kept.
// It is what `switchyard up` runs; it returns the bundle's path.
func EnsureIdentities(dir string, services []string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("identities: %w", err)
	}
	bundle := Bundle{}
	for _, s := range services {
		path := filepath.Join(dir, s+".key")
		id, err := LoadIdentity(s, path)
		if errors.Is(err, os.ErrNotExist) {
			_, key, gerr := ed25519.GenerateKey(rand.Reader)
			if gerr != nil {
				return "", gerr
			}
			der, merr := x509.MarshalPKCS8PrivateKey(key)
			if merr != nil {
				return "", merr
			}
			if werr := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); werr != nil {
				return "", fmt.Errorf("identities: %w", werr)
			}
			id, err = Identity{Service: s, Key: key}, nil
		}
		if err != nil {
			return "", err
		}
		bundle[s] = id.Public()
	}
	data, err := json.MarshalIndent(bundle, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "bundle.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return "", fmt.Errorf("identities: %w", err)
	}
	return path, nil
}

// ServiceTokens mints and caches this service's tokens, one per callee.
type ServiceTokens struct {
	id  Identity
	now func() time.Time

	mu    sync.Mutex
	cache map[string]cachedToken
}

type cachedToken struct {
	token   string
	header  []string // {"Bearer <token>"}, shared by every request that carries it
	renewAt time.Time
}

// NewServiceTokens returns a token source for id. now defaults to time.Now.
func NewServiceTokens(id Identity, now func() time.Time) *ServiceTokens {
	if now == nil {
		now = time.Now
	}
	return &ServiceTokens{id: id, now: now, cache: map[string]cachedToken{}}
}

// Service is the name tokens are minted for.
func (s *ServiceTokens) Service() string { return s.id.Service }

// Token returns a token for calls to callee, minting one when the cached one is past
// 80 % of its life.
func (s *ServiceTokens) Token(callee string) (string, error) {
	c, err := s.cached(callee)
	return c.token, err
}

// HeaderValue returns the Service-Authorization header value for calls to callee as
// a one-element slice that callers may share but must not modify.
func (s *ServiceTokens) HeaderValue(callee string) ([]string, error) {
	c, err := s.cached(callee)
	return c.header, err
}

func (s *ServiceTokens) cached(callee string) (cachedToken, error) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.cache[callee]; ok && now.Before(c.renewAt) {
		return c, nil
	}
	tok, err := MintServiceToken(s.id, callee, now, serviceTokenTTL)
	if err != nil {
		return cachedToken{}, err
	}
	c := cachedToken{token: tok, header: []string{"Bearer " + tok}, renewAt: now.Add(serviceTokenTTL * 4 / 5)}
	s.cache[callee] = c
	return c, nil
}

// MintServiceToken signs a token from id for callee, valid for ttl from now.
func MintServiceToken(id Identity, callee string, now time.Time, ttl time.Duration) (string, error) {
	jti := make([]byte, 12)
	_, _ = rand.Read(jti)
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.RegisteredClaims{
		Issuer:    id.Service,
		Subject:   id.Service,
		Audience:  jwt.ClaimStrings{callee},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		ID:        fmt.Sprintf("%x", jti),
	})
	t.Header["typ"] = ServiceTokenType
	t.Header["kid"] = id.Service
	s, err := t.SignedString(id.Key)
	if err != nil {
		return "", fmt.Errorf("mint service token: %w", err)
	}
	return s, nil
}

// ServiceVerifier verifies service tokens sent to one service.
type ServiceVerifier struct {
	self    string
	bundle  Bundle
	allowed []string
	parser  *jwt.Parser
	seen    *verified[string]

	// peers: callers are known by their connections' certificates (mutual TLS),
	// of trustDomain, instead of by tokens.
	peers       bool
	trustDomain string
}

// NewServiceVerifier verifies tokens addressed to self, signed by a key of bundle,
// from one of allowed.
func NewServiceVerifier(self string, bundle Bundle, allowed []string, now func() time.Time) *ServiceVerifier {
	if now == nil {
		now = time.Now
	}
	return &ServiceVerifier{
		self: self, bundle: bundle, allowed: slices.Clone(allowed), seen: newVerified[string](now),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{Algorithm}),
			jwt.WithAudience(self),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(30*time.Second),
			jwt.WithTimeFunc(now),
			jwt.WithStrictDecoding(),
		),
	}
}

// Allowed lists the callers the verifier accepts.
func (v *ServiceVerifier) Allowed() []string { return slices.Clone(v.allowed) }

// caller verifies the caller of r: by its connection's certificate under mutual
// TLS, else by its service token.
func (v *ServiceVerifier) caller(r *http.Request) (string, error) {
	if v.peers {
		return v.VerifyPeer(r.TLS)
	}
	return v.Verify(ServiceToken(r.Header))
}

// presented reports whether r carries a credential of a calling service.
func (v *ServiceVerifier) presented(r *http.Request) bool {
	if v.peers {
		return r.TLS != nil && len(r.TLS.PeerCertificates) > 0
	}
	return r.Header.Get(ServiceHeader) != ""
}

// Verify checks a service token and returns the calling service.
func (v *ServiceVerifier) Verify(token string) (string, error) {
	if v.peers {
		return "", &problem.Error{Kind: problem.Unauthenticated, Detail: "services call " + v.self + " over mutual TLS, not with a token"}
	}
	bad := func(detail string, cause error) error {
		return &problem.Error{Kind: problem.Unauthenticated, Detail: detail, Err: cause}
	}
	if token == "" {
		return "", bad("this endpoint is internal: it needs a service token in "+ServiceHeader, nil)
	}
	if len(token) > MaxTokenBytes || strings.Count(token, ".") != 2 {
		return "", bad("the service token is malformed", nil)
	}
	if caller, ok := v.seen.get(token); ok {
		return caller, nil
	}
	var claims jwt.RegisteredClaims
	_, err := v.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); !strings.EqualFold(typ, ServiceTokenType) {
			return nil, errors.New("not a service token")
		}
		iss, _ := t.Claims.(*jwt.RegisteredClaims)
		key, ok := v.bundle[iss.Issuer]
		if !ok {
			return nil, fmt.Errorf("no key for service %q", iss.Issuer)
		}
		return key, nil
	})
	if err != nil {
		return "", bad("the service token is not valid", err)
	}
	if claims.Subject != claims.Issuer {
		return "", bad("the service token is not valid", errors.New("sub differs from iss"))
	}
	if !slices.Contains(v.allowed, claims.Issuer) {
		return "", &problem.Error{Kind: problem.Forbidden, Detail: fmt.Sprintf("service %q may not call %s", claims.Issuer, v.self)}
	}
	var expires time.Time
	if claims.ExpiresAt != nil {
		expires = claims.ExpiresAt.Time
	}
	v.seen.put(token, claims.Issuer, expires)
	return claims.Issuer, nil
}

type callerKey struct{}

// CallerFrom returns the verified calling service in ctx, if any.
func CallerFrom(ctx context.Context) (string, bool) {
	s, ok := ctx.Value(callerKey{}).(string)
	return s, ok
}

// WithCaller returns ctx carrying a verified calling service.
func WithCaller(ctx context.Context, service string) context.Context {
	return context.WithValue(ctx, callerKey{}, service)
}

// ServiceToken extracts the token of a "Service-Authorization: Bearer <token>" header.
func ServiceToken(h http.Header) string {
	v := h.Get(ServiceHeader)
	if len(v) > 7 && strings.EqualFold(v[:7], "Bearer ") {
		return strings.TrimSpace(v[7:])
	}
	return ""
}

// RequireService wraps next so that only an accepted service reaches it; the caller
// is in the context (CallerFrom). Failures go to fail.
func (v *ServiceVerifier) RequireService(fail func(http.ResponseWriter, *http.Request, error), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, err := v.caller(r)
		if err != nil {
			fail(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), caller)))
	})
}

// IdentifyService is RequireService's lenient sibling: a valid token (or
// certificate) puts the caller in the context, an absent one lets the request
// through as a public one, and an invalid one is refused.
func (v *ServiceVerifier) IdentifyService(fail func(http.ResponseWriter, *http.Request, error), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !v.presented(r) {
			next.ServeHTTP(w, r)
			return
		}
		caller, err := v.caller(r)
		if err != nil {
			fail(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), caller)))
	})
}
