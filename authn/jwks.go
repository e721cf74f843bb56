package authn

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
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

// RemoteKeysConfig configures RemoteKeys.
type RemoteKeysConfig struct {
	// URL of the JWKS document, e.g. http://127.0.0.1:8081/.well-known/jwks.json.
	URL string
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
type RemoteKeys struct {
	cfg RemoteKeysConfig

	mu        sync.Mutex
	keys      map[string]ed25519.PublicKey
	fetchedAt time.Time
	lastTry   time.Time
	fetching  chan struct{} // non-nil while a fetch runs; closed when it ends
	lastErr   error
}

// NewRemoteKeys returns a KeySource for the JWKS at cfg.URL. Nothing is fetched until
// the first lookup.
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
	return &RemoteKeys{cfg: cfg}
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
	r.mu.Unlock()

	keys, err := r.fetch(ctx)

	r.mu.Lock()
	defer r.mu.Unlock()
	r.fetching = nil
	close(ch)
	r.lastErr = err
	if err != nil {
		return err
	}
	r.keys = keys
	r.fetchedAt = r.cfg.Now()
	return nil
}

func (r *RemoteKeys) fetch(ctx context.Context) (map[string]ed25519.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.cfg.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch JWKS from %s: %w", r.cfg.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch JWKS from %s: status %d", r.cfg.URL, resp.StatusCode)
	}
	var set JWKSet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<10)).Decode(&set); err != nil {
		return nil, fmt.Errorf("fetch JWKS from %s: %w", r.cfg.URL, err)
	}
	keys := make(map[string]ed25519.PublicKey, len(set.Keys))
	for _, k := range set.Keys {
		pub, err := k.PublicKey()
		if err != nil {
			continue // a key we cannot use is not a key we trust
		}
		keys[k.Kid] = pub
	}
	return keys, nil
}

// StaticKeys is a fixed KeySource, for tests and for an issuer verifying its own
// tokens from keys it already holds.
type StaticKeys map[string]ed25519.PublicKey

// PublicKey implements KeySource.
func (s StaticKeys) PublicKey(_ context.Context, kid string) (crypto.PublicKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownKey, kid)
}
