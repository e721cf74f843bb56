// Package discoverytest is the conformance suite every discovery implementation
// passes: announce, resolve, isolate services, withdraw, expire after a crash, watch.
package discoverytest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/discovery"
)

// Harness adapts one implementation to the suite.
type Harness struct {
	// Resolver under test.
	Resolver discovery.Resolver
	// Announce makes inst resolvable and returns it as it will resolve, a withdraw
	// function (a clean shutdown) and a crash function (the process vanishes without
	// a word).
	Announce func(t testing.TB, inst discovery.Instance) (resolved discovery.Instance, withdraw, crash func())
	// Expiry bounds how long a crashed instance may stay resolvable.
	Expiry time.Duration
	// Metadata is true when version and weight survive resolution.
	Metadata bool
}

// Run runs the suite; newHarness gives each case a fresh, isolated harness.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Run("an announced instance resolves", func(t *testing.T) {
		h := newHarness(t)
		want, _, _ := h.Announce(t, instance("orders", 1, "v2", 10))
		got := resolveUntil(t, h, "orders", func(l []discovery.Instance) bool { return len(l) == 1 })
		if got[0].Addr != want.Addr || got[0].ID != want.ID || got[0].Service != "orders" {
			t.Errorf("resolved %+v, want %+v", got[0], want)
		}
		if h.Metadata && (got[0].Version != "v2" || got[0].Weight != 10) {
			t.Errorf("version/weight lost: %+v", got[0])
		}
	})

	t.Run("several instances resolve, sorted by id", func(t *testing.T) {
		h := newHarness(t)
		for i := 1; i <= 3; i++ {
			h.Announce(t, instance("orders", i, "", 0))
		}
		got := resolveUntil(t, h, "orders", func(l []discovery.Instance) bool { return len(l) == 3 })
		if !slices.IsSortedFunc(got, func(a, b discovery.Instance) int { return cmp(a.ID, b.ID) }) {
			t.Errorf("not sorted by id: %+v", got)
		}
	})

	t.Run("services do not see each other's instances", func(t *testing.T) {
		h := newHarness(t)
		h.Announce(t, instance("orders", 1, "", 0))
		h.Announce(t, instance("payments", 2, "", 0))
		h.Announce(t, instance("orders-v2", 3, "", 0))
		resolveUntil(t, h, "payments", func(l []discovery.Instance) bool { return len(l) == 1 })
		resolveUntil(t, h, "orders-v2", func(l []discovery.Instance) bool { return len(l) == 1 })
		got, _ := h.Resolver.Resolve(context.Background(), "orders")
		if len(got) != 1 || got[0].Service != "orders" {
			t.Errorf("orders resolved to %+v", got)
		}
	})

	t.Run("an unknown service has no instances", func(t *testing.T) {
		h := newHarness(t)
		got, err := h.Resolver.Resolve(context.Background(), "nobody")
		if err != nil || len(got) != 0 {
			t.Errorf("Resolve(nobody) = %v, %v", got, err)
		}
	})

	t.Run("a withdrawn instance stops resolving at once", func(t *testing.T) {
		h := newHarness(t)
		h.Announce(t, instance("orders", 1, "", 0))
		_, withdraw, _ := h.Announce(t, instance("orders", 2, "", 0))
		resolveUntil(t, h, "orders", func(l []discovery.Instance) bool { return len(l) == 2 })
		withdraw()
		began := time.Now()
		resolveUntil(t, h, "orders", func(l []discovery.Instance) bool { return len(l) == 1 })
		if took := time.Since(began); took > time.Second {
			t.Errorf("withdrawal took %s to show", took)
		}
	})

	t.Run("a crashed instance leaves resolution within its expiry", func(t *testing.T) {
		h := newHarness(t)
		h.Announce(t, instance("orders", 1, "", 0))
		_, _, crash := h.Announce(t, instance("orders", 2, "", 0))
		resolveUntil(t, h, "orders", func(l []discovery.Instance) bool { return len(l) == 2 })
		began := time.Now()
		crash()
		deadline := began.Add(h.Expiry + 500*time.Millisecond)
		for {
			got, _ := h.Resolver.Resolve(context.Background(), "orders")
			if len(got) == 1 {
				t.Logf("crashed instance gone after %s (expiry %s)", time.Since(began).Round(10*time.Millisecond), h.Expiry)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("crashed instance still resolves %s after the crash (expiry %s)", time.Since(began), h.Expiry)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("watch sends the current set, then every change", func(t *testing.T) {
		h := newHarness(t)
		h.Announce(t, instance("orders", 1, "", 0))
		resolveUntil(t, h, "orders", func(l []discovery.Instance) bool { return len(l) == 1 })
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ch, err := h.Resolver.Watch(ctx, "orders")
		if err != nil {
			t.Fatal(err)
		}
		expect := func(n int, within time.Duration) {
			t.Helper()
			deadline := time.After(within)
			for {
				select {
				case set := <-ch:
					if len(set) == n {
						return
					}
				case <-deadline:
					t.Fatalf("watch never delivered a set of %d", n)
				}
			}
		}
		expect(1, 2*time.Second)
		_, withdraw, _ := h.Announce(t, instance("orders", 2, "", 0))
		expect(2, h.Expiry+2*time.Second)
		withdraw()
		expect(1, h.Expiry+2*time.Second)
		cancel()
		for range ch { //nolint:revive // drain until closed
		}
	})
}

func cmp(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// instance makes a test instance; n picks its id and address (127.0.0.n).
func instance(service string, n int, version string, weight int) discovery.Instance {
	return discovery.Instance{
		Service: service,
		ID:      fmt.Sprintf("%s-%d", service, n),
		Addr:    fmt.Sprintf("127.0.0.%d:%d", n, 8000+n),
		Version: version,
		Weight:  weight,
	}
}

func resolveUntil(t *testing.T, h Harness, service string, ok func([]discovery.Instance) bool) []discovery.Instance {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := h.Resolver.Resolve(context.Background(), service)
		if err == nil && ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("Resolve(%s) = %+v, %v", service, got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
