package authn_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/problem"
)

func identity(t *testing.T, name string) authn.Identity {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	return authn.Identity{Service: name, Key: key}
}

func TestServiceTokensAreCheckedForSignatureAudienceAndCaller(t *testing.T) {
	t.Parallel()
	orders, gateway, rogue := identity(t, "orders"), identity(t, "gateway"), identity(t, "rogue")
	bundle := authn.Bundle{"orders": orders.Public(), "gateway": gateway.Public(), "rogue": rogue.Public()}
	v := authn.NewServiceVerifier("inventory", bundle, []string{"orders"}, func() time.Time { return now })
	mint := func(id authn.Identity, aud string, at time.Time) string {
		tok, err := authn.MintServiceToken(id, aud, at, 5*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if caller, err := v.Verify(mint(orders, "inventory", now)); err != nil || caller != "orders" {
		t.Fatalf("a good token: %q, %v", caller, err)
	}
	impostor := orders
	impostor.Key = rogue.Key // claims to be orders, signed with another key
	userKey := newKey(t, "k1")
	for name, tc := range map[string]struct {
		token string
		kind  problem.Kind
	}{
		"no token":                     {"", problem.Unauthenticated},
		"for another callee":           {mint(orders, "payments", now), problem.Unauthenticated},
		"expired":                      {mint(orders, "inventory", now.Add(-10*time.Minute)), problem.Unauthenticated},
		"signed by someone else's key": {mint(impostor, "inventory", now), problem.Unauthenticated},
		"a service not in the bundle":  {mint(identity(t, "stranger"), "inventory", now), problem.Unauthenticated},
		"a user's access token":        {sign(t, userKey, claims(nil), nil), problem.Unauthenticated},
		"a known service not allowed":  {mint(gateway, "inventory", now), problem.Forbidden},
		"garbage":                      {"a.b.c", problem.Unauthenticated},
	} {
		if _, err := v.Verify(tc.token); problem.KindOf(err) != tc.kind {
			t.Errorf("%s: %v, want %v", name, err, tc.kind)
		}
	}
}

func TestIdentitiesAreGeneratedOnceAndBundled(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bundlePath, err := authn.EnsureIdentities(dir, []string{"users", "orders"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := authn.LoadIdentity("orders", filepath.Join(dir, "orders.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authn.EnsureIdentities(dir, []string{"users", "orders", "inventory"}); err != nil {
		t.Fatal(err)
	}
	again, _ := authn.LoadIdentity("orders", filepath.Join(dir, "orders.key"))
	if !first.Key.Equal(again.Key) {
		t.Error("an existing key was replaced")
	}
	b, err := authn.LoadBundle(bundlePath)
	if err != nil || len(b) != 3 || !b["orders"].Equal(first.Public()) {
		t.Errorf("bundle = %v, %v", b, err)
	}
	raw, _ := json.Marshal(b)
	var round authn.Bundle
	if err := json.Unmarshal(raw, &round); err != nil || len(round) != 3 {
		t.Errorf("bundle does not round-trip: %v", err)
	}
}

func TestServiceTokensAreCachedAndRenewed(t *testing.T) {
	t.Parallel()
	clock := now
	src := authn.NewServiceTokens(identity(t, "orders"), func() time.Time { return clock })
	a, _ := src.Token("users")
	b, _ := src.Token("users")
	if a != b {
		t.Error("a fresh token was minted on every call")
	}
	clock = clock.Add(4*time.Minute + 30*time.Second) // past 80 % of five minutes
	c, _ := src.Token("users")
	if c == a {
		t.Error("an old token was not renewed")
	}
}
