package gateway_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/gateway"
)

func canaryReplica(t *testing.T, stable, canary *backend, percent float64) string {
	g := newGateway(t, gateway.Config{Routes: []gateway.Route{{
		Prefix: "/api/v2/orders", Auth: gateway.AuthNone,
		Upstream: upstream(t, "orders", discovery.Instance{Addr: stable.addr(), Version: "v1"}),
		Canary:   &gateway.Canary{Percent: percent, Upstream: upstream(t, "orders", discovery.Instance{Addr: canary.addr(), Version: "v2"})},
	}}})
	return serve(t, g, nil)
}

// sides sends one request per key (from 8 clients at once) and returns which backend
// answered each key.
func sides(t *testing.T, url string, keys []string) map[string]string {
	t.Helper()
	out := make(map[string]string, len(keys))
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(keys); i = int(next.Add(1)) - 1 {
				req, _ := http.NewRequest(http.MethodGet, url+"/api/v2/orders", nil)
				req.Header.Set(gateway.APIKeyHeader, keys[i])
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				var echo struct{ Backend string }
				_ = json.NewDecoder(resp.Body).Decode(&echo)
				resp.Body.Close()
				mu.Lock()
				out[keys[i]] = echo.Backend
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

func TestCanarySplitIsWeightedAndSticky(t *testing.T) {
	stable, canary := newBackend(t, "stable"), newBackend(t, "canary")
	const weight = 10.0
	one := canaryReplica(t, stable, canary, weight)
	two := canaryReplica(t, stable, canary, weight)

	keys := make([]string, 10_000)
	for i := range keys {
		keys[i] = fmt.Sprintf("client-%05d", i)
	}
	got := sides(t, one, keys)
	n := 0
	for _, side := range got {
		if side == "canary" {
			n++
		}
	}
	share := 100 * float64(n) / float64(len(keys))
	t.Logf("canary at %.0f%%: %d of %d principals (%.2f%%, %+.1f%% of the weight)", weight, n, len(keys), share, 100*(share-weight)/weight)
	// Within ±3 points of the weight, as asked; and, tighter, within 4 standard
	// deviations of a fair draw of 10,000 principals (±1.2 points at 10%), which a
	// biased hash would not be.
	sigma := 100 * math.Sqrt(weight/100*(1-weight/100)/float64(len(keys)))
	if math.Abs(share-weight) > 3 || math.Abs(share-weight) > 4*sigma {
		t.Errorf("canary share %.2f%%, want %.0f%% ± 3 points and within 4σ (σ = %.2f points)", share, weight, sigma)
	}

	// Sticky: the same principals land on the same side again, on either replica.
	again := sides(t, two, keys[:2000])
	for _, k := range keys[:2000] {
		if again[k] != got[k] {
			t.Fatalf("%s went to %s, then (on another replica) to %s", k, got[k], again[k])
		}
	}

	// Blue-green: 100 sends everyone to the new version, 0 everyone back.
	for _, c := range []struct {
		percent float64
		want    string
	}{{100, "canary"}, {0, "stable"}} {
		url := canaryReplica(t, stable, canary, c.percent)
		for k, side := range sides(t, url, keys[:500]) {
			if side != c.want {
				t.Fatalf("at %v%% %s went to %s", c.percent, k, side)
			}
		}
	}
}
