package users

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/store"
)

// keyring holds the Ed25519 signing keys, persisted in the users database so that
// replicas share them and a restart keeps them.
//
// Rotation: a key signs for rotateEvery, then retires; it stays published in the JWKS
// until every token it signed has expired (retirement + access-token lifetime +
// leeway), so rotation never invalidates a token in flight. Several replicas may
// rotate at once; that only publishes one extra key.
type keyring struct {
	db          *store.DB
	log         *slog.Logger
	now         func() time.Time
	rotateEvery time.Duration
	tokenTTL    time.Duration

	mu         sync.RWMutex
	keys       []signingKey // newest first
	lastReload time.Time
}

type signingKey struct {
	kid            string
	priv           ed25519.PrivateKey
	pub            ed25519.PublicKey
	createdAt      time.Time
	retireAt       time.Time
	publishedUntil time.Time
}

// publishGrace is added to a retired key's publication beyond the longest token life.
const publishGrace = 5 * time.Minute

// ensure creates a key if none can sign now, then reloads the published keys.
func (k *keyring) ensure(ctx context.Context) error {
	if err := k.reload(ctx); err != nil {
		return err
	}
	now := k.now()
	k.mu.RLock()
	signing := len(k.keys) > 0 && k.keys[0].retireAt.After(now)
	k.mu.RUnlock()
	if signing {
		return nil
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate signing key: %w", err)
	}
	kid := "k" + strings.ToLower(rand.Text()[:15])
	retire := now.Add(k.rotateEvery)
	until := retire.Add(k.tokenTTL + publishGrace)
	_, err = k.db.ExecContext(ctx,
		`INSERT INTO signing_keys (kid, private_key, public_key, created_at, retire_at, published_until) VALUES ($1, $2, $3, $4, $5, $6)`,
		kid, "seed:"+base64.StdEncoding.EncodeToString(priv.Seed()), base64.StdEncoding.EncodeToString(pub),
		store.Millis(now), store.Millis(retire), store.Millis(until))
	if err != nil {
		return fmt.Errorf("store signing key: %w", err)
	}
	k.log.Info("signing key created", "kid", kid, "retires", retire)
	return k.reload(ctx)
}

// reload reads every key still published, newest first, and drops expired ones.
func (k *keyring) reload(ctx context.Context) error {
	now := k.now()
	rows, err := k.db.QueryContext(ctx,
		`SELECT kid, private_key, created_at, retire_at, published_until FROM signing_keys WHERE published_until > $1 ORDER BY created_at DESC, kid`,
		store.Millis(now))
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	defer rows.Close()
	var keys []signingKey
	for rows.Next() {
		var (
			sk                     signingKey
			encoded                string
			created, retire, until int64
		)
		if err := rows.Scan(&sk.kid, &encoded, &created, &retire, &until); err != nil {
			return fmt.Errorf("load signing keys: %w", err)
		}
		seed, err := decodeSeed(encoded)
		if err != nil {
			return fmt.Errorf("signing key %s: %w", sk.kid, err)
		}
		sk.priv = ed25519.NewKeyFromSeed(seed)
		sk.pub = sk.priv.Public().(ed25519.PublicKey)
		sk.createdAt, sk.retireAt, sk.publishedUntil = store.Time(created), store.Time(retire), store.Time(until)
		keys = append(keys, sk)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	if _, err := k.db.ExecContext(ctx, `DELETE FROM signing_keys WHERE published_until <= $1`, store.Millis(now)); err != nil {
		return fmt.Errorf("prune signing keys: %w", err)
	}
	k.mu.Lock()
	k.keys = keys
	k.lastReload = now
	k.mu.Unlock()
	return nil
}

func decodeSeed(encoded string) ([]byte, error) {
	b64, ok := strings.CutPrefix(encoded, "seed:")
	if !ok {
		return nil, errors.New("unknown private key encoding")
	}
	seed, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, errors.New("malformed private key")
	}
	return seed, nil
}

// signer returns the key that signs now.
func (k *keyring) signer() (signingKey, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	now := k.now()
	for _, sk := range k.keys {
		if sk.retireAt.After(now) {
			return sk, nil
		}
	}
	return signingKey{}, errors.New("no signing key is current; the rotation loop has not run")
}

// PublicKey implements authn.KeySource. An unknown kid reloads from the database at
// most every few seconds, since another replica may have just rotated.
func (k *keyring) PublicKey(ctx context.Context, kid string) (crypto.PublicKey, error) {
	if pub, ok := k.lookup(kid); ok {
		return pub, nil
	}
	k.mu.RLock()
	recent := k.now().Sub(k.lastReload) < 5*time.Second
	k.mu.RUnlock()
	if !recent {
		if err := k.reload(ctx); err != nil {
			return nil, err
		}
		if pub, ok := k.lookup(kid); ok {
			return pub, nil
		}
	}
	return nil, fmt.Errorf("%w %q", authn.ErrUnknownKey, kid)
}

func (k *keyring) lookup(kid string) (ed25519.PublicKey, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	now := k.now()
	for _, sk := range k.keys {
		if sk.kid == kid && sk.publishedUntil.After(now) {
			return sk.pub, true
		}
	}
	return nil, false
}

// published returns the keys still published.
func (k *keyring) published() []signingKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	now := k.now()
	var out []signingKey
	for _, sk := range k.keys {
		if sk.publishedUntil.After(now) {
			out = append(out, sk)
		}
	}
	return out
}

// jwks is the published key set.
func (k *keyring) jwks() authn.JWKSet {
	k.mu.RLock()
	defer k.mu.RUnlock()
	set := authn.JWKSet{Keys: make([]authn.JWK, 0, len(k.keys))}
	now := k.now()
	for _, sk := range k.keys {
		if sk.publishedUntil.After(now) {
			set.Keys = append(set.Keys, authn.PublicJWK(sk.kid, sk.pub))
		}
	}
	return set
}

// run keeps a current key, checking a few times per rotation period.
func (k *keyring) run(ctx context.Context) error {
	every := min(k.rotateEvery/4, time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := k.ensure(ctx); err != nil && ctx.Err() == nil {
				k.log.Error("signing key rotation failed", "error", err)
			}
		}
	}
}
