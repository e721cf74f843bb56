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
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// JWK is a public JSON Web Key (RFC 7517); only Ed25519 (kty OKP, RFC 8037) keys are
// produced and accepted.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Kid string `json:"kid"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
}

// JWKSet is a JSON Web Key Set.
type JWKSet struct {
	Keys []JWK `json:"keys"`
}

// PublicJWK encodes an Ed25519 public key as a signing JWK.
func PublicJWK(kid string, pub ed25519.PublicKey) JWK {
	return JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub), Kid: kid, Alg: Algorithm, Use: "sig"}
}

// PublicKey decodes k. Keys other than Ed25519 signing keys are refused.
func (k JWK) PublicKey() (ed25519.PublicKey, error) {
	if k.Kty != "OKP" || k.Crv != "Ed25519" {
		return nil, fmt.Errorf("key %q: kty %q crv %q is not an Ed25519 key", k.Kid, k.Kty, k.Crv)
	}
	if k.Alg != "" && k.Alg != Algorithm {
		return nil, fmt.Errorf("key %q: alg %q is not %s", k.Kid, k.Alg, Algorithm)
	}
	if k.Use != "" && k.Use != "sig" {
		return nil, fmt.Errorf("key %q: use %q is not sig", k.Kid, k.Use)
	}
	x, err := base64.RawURLEncoding.DecodeString(k.X)
	if err != nil || len(x) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("key %q: x is not a %d-byte base64url value", k.Kid, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(x), nil
}

// ErrUnknownKey is returned for a kid no source knows.
var ErrUnknownKey = errors.New("unknown key id")

// RemoteKeysConfig configures RemoteKeys: a JWKS at URL, or the one an OpenID
// Connect provider's discovery document names.
type RemoteKeysConfig struct {
	// URL of the JWKS document, e.g. http://127.0.0.1:8081/.well-known/jwks.json.
	URL string
	// Discovery is the provider's discovery document, e.g.
	// https://idp.example.com/realms/shop/.well-known/openid-configuration, read
	// for its jwks_uri when URL is empty.
	Discovery string
	// Issuer the discovery document must name as its issuer (OpenID Connect
	// Discovery section 4.3), so that a document served elsewhere cannot lend its
	// keys to this issuer.
	Issuer string
	// Client fetches it [a client with a 5s timeout].
	Client *http.Client
	// MaxAge before a fetched set is refreshed in the background of a lookup [5m].
	MaxAge time.Duration
	// MinRefetch is the least time between two fetches triggered by unknown key ids,
	// so a flood of tokens with random kids cannot turn into a flood of fetches [10s].
	MinRefetch time.Duration
	// Now returns the current time [time.Now].
	Now func() time.Time
}

// RemoteKeys is a KeySource backed by a remote JWKS, cached. An unknown kid triggers
// one refetch (the issuer may have rotated its key), at most once per MinRefetch.
// Ed25519, P-256 and RSA (2048 bits or more) signing keys are kept; any other key in
// the set is ignored.
type RemoteKeys struct {
	cfg RemoteKeysConfig

	mu        sync.Mutex
	keys      map[string]crypto.PublicKey
	jwksURL   string // cfg.URL, or what discovery found
	fetchedAt time.Time
	lastTry   time.Time
	fetching  chan struct{} // non-nil while a fetch runs; closed when it ends
	lastErr   error
}

// NewRemoteKeys returns a KeySource for the JWKS at cfg.URL (or cfg.Discovery's).
// Nothing is fetched until the first lookup.
func NewRemoteKeys(cfg RemoteKeysConfig) *RemoteKeys {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 5 * time.Minute
	}
	if cfg.MinRefetch <= 0 {
		cfg.MinRefetch = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &RemoteKeys{cfg: cfg, jwksURL: cfg.URL}
}

// PublicKey implements KeySource.
func (r *RemoteKeys) PublicKey(ctx context.Context, kid string) (crypto.PublicKey, error) {
	r.mu.Lock()
	key, ok := r.keys[kid]
	now := r.cfg.Now()
	stale := now.Sub(r.fetchedAt) > r.cfg.MaxAge
	mayFetch := now.Sub(r.lastTry) >= r.cfg.MinRefetch || r.keys == nil
	r.mu.Unlock()

	if ok && !stale {
		return key, nil
	}
	if (ok && stale) || mayFetch {
		if err := r.refresh(ctx); err != nil && !ok {
			return nil, err
		}
		r.mu.Lock()
		key, ok = r.keys[kid]
		r.mu.Unlock()
	}
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, kid)
	}
	return key, nil
}

// refresh fetches the set, joining a fetch already under way.
func (r *RemoteKeys) refresh(ctx context.Context) error {
	r.mu.Lock()
	if ch := r.fetching; ch != nil {
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.lastErr
	}
	ch := make(chan struct{})
	r.fetching = ch
	r.lastTry = r.cfg.Now()
	at := r.jwksURL
	r.mu.Unlock()

	var keys map[string]crypto.PublicKey
	var err error
	if at == "" {
		at, err = r.discover(ctx)
	}
	if err == nil {
		keys, err = r.fetch(ctx, at)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	r.fetching = nil
	close(ch)
	r.lastErr = err
	if err != nil {
		return err
	}
	r.jwksURL = at
	r.keys = keys
	r.fetchedAt = r.cfg.Now()
	return nil
}

// get fetches url's JSON document into v, bounded in size.
func (r *RemoteKeys) get(ctx context.Context, at string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, at, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 256<<10)).Decode(v)
}

// discover reads the provider's discovery document for its jwks_uri.
func (r *RemoteKeys) discover(ctx context.Context) (string, error) {
	if r.cfg.Discovery == "" {
		return "", errors.New("remote keys need a JWKS URL or a discovery document")
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := r.get(ctx, r.cfg.Discovery, &doc); err != nil {
		return "", fmt.Errorf("read discovery document %s: %w", r.cfg.Discovery, err)
	}
	if r.cfg.Issuer != "" && doc.Issuer != r.cfg.Issuer {
		return "", fmt.Errorf("discovery document %s names issuer %q, not %q", r.cfg.Discovery, doc.Issuer, r.cfg.Issuer)
	}
	u, err := url.Parse(doc.JWKSURI)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("discovery document %s: jwks_uri %q is not an http(s) URL", r.cfg.Discovery, doc.JWKSURI)
	}
	return doc.JWKSURI, nil
}

func (r *RemoteKeys) fetch(ctx context.Context, at string) (map[string]crypto.PublicKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := r.get(ctx, at, &set); err != nil {
		return nil, fmt.Errorf("fetch JWKS from %s: %w", at, err)
	}
	keys := make(map[string]crypto.PublicKey, len(set.Keys))
	for _, raw := range set.Keys {
		if kid, pub, ok := signingKey(raw); ok {
			keys[kid] = pub
		}
	}
	return keys, nil
}

// signingKey decodes one JWK of a set: a public signing key with a kid, of a kind
// some trusted algorithm uses. A key it cannot use is not a key it trusts.
func signingKey(raw json.RawMessage) (string, crypto.PublicKey, bool) {
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil || k.KeyID == "" || !k.IsPublic() || !k.Valid() {
		return "", nil, false
	}
	if k.Use != "" && k.Use != "sig" {
		return "", nil, false
	}
	switch pub := k.Key.(type) {
	case ed25519.PublicKey:
		return k.KeyID, pub, k.Algorithm == "" || k.Algorithm == "EdDSA"
	case *ecdsa.PublicKey:
		return k.KeyID, pub, pub.Curve == elliptic.P256() && (k.Algorithm == "" || k.Algorithm == "ES256")
	case *rsa.PublicKey:
		return k.KeyID, pub, pub.N.BitLen() >= minRSABits && (k.Algorithm == "" || k.Algorithm == "RS256")
	}
	return "", nil, false
}

// StaticKeys is a fixed KeySource, for tests and for an issuer verifying its own
// tokens from keys it already holds.
type StaticKeys map[string]crypto.PublicKey

// PublicKey implements KeySource.
func (s StaticKeys) PublicKey(_ context.Context, kid string) (crypto.PublicKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownKey, kid)
}
