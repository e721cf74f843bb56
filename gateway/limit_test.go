package gateway_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"math"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/gateway"
)

// hammer sends requests as one principal (an API key) from four clients at once, to
// the replicas in turn, as fast as they answer, for d — far faster than the limits
// under test allow, even under the race detector — and returns how many were allowed
// and how long the run took; it checks the refusals on the way.
func hammer(t *testing.T, replicas []string, key string, d time.Duration) (allowed int, elapsed time.Duration) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	var mu sync.Mutex
	var refused int
	var wg sync.WaitGroup
	start := time.Now()
	for w := range 4 {
		wg.Go(func() {
			for i := w; time.Since(start) < d; i++ {
				req, _ := http.NewRequest(http.MethodGet, replicas[i%len(replicas)]+"/api/v1/products/p1", nil)
				req.Header.Set(gateway.APIKeyHeader, key)
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				mu.Lock()
				switch resp.StatusCode {
				case http.StatusOK:
					allowed++
					if resp.Header.Get("RateLimit-Remaining") == "" || resp.Header.Get("RateLimit-Limit") == "" {
						t.Errorf("an allowed answer lacks RateLimit headers: %v", resp.Header)
					}
				case http.StatusTooManyRequests:
					refused++
					if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 {
						t.Errorf("429 with Retry-After %q", resp.Header.Get("Retry-After"))
					}
				default:
					t.Errorf("status %d", resp.StatusCode)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed = time.Since(start)
	if refused < allowed {
		t.Errorf("only %d refusals for %d allowed: the limit was not under pressure all along", refused, allowed)
	}
	return allowed, elapsed
}

// within checks that got is within ±5 % of what a limit of rate per second with
// burst allows over elapsed, times n independent allowances.
func within(t *testing.T, what string, got int, rate, burst int, elapsed time.Duration, n int) {
	t.Helper()
	want := float64(n) * (float64(burst) + float64(rate)*elapsed.Seconds())
	dev := (float64(got) - want) / want
	t.Logf("%s: %d allowed over %s, %.0f expected (%+.1f%%)", what, got, elapsed.Round(time.Millisecond), want, 100*dev)
	if math.Abs(dev) > 0.05 {
		t.Errorf("%s: %d allowed, want %.0f ± 5%%", what, got, want)
	}
}

func limitedReplica(t *testing.T, limiter gateway.Limiter, be *backend, l gateway.Limit) string {
	g := newGateway(t, gateway.Config{Limiter: limiter, Routes: []gateway.Route{
		{Prefix: "/api/v1/products", Auth: gateway.AuthNone, RateLimit: l, Upstream: upstream(t, "catalog", discovery.Instance{Addr: be.addr()})},
	}})
	return serve(t, g, nil)
}

func TestRateLimitPerReplicaInLocalMode(t *testing.T) {
	be := newBackend(t, "catalog")
	l := gateway.Limit{Rate: 50, Per: time.Second, Burst: 25, FailOpen: true}
	one := limitedReplica(t, gateway.NewLocal(), be, l)
	two := limitedReplica(t, gateway.NewLocal(), be, l)

	allowed, elapsed := hammer(t, []string{one}, "key-"+rand.Text(), 3*time.Second)
	within(t, "one replica", allowed, 50, 25, elapsed, 1)

	// Two replicas without Redis: each applies the limit on its own, so a client
	// spreading its requests gets twice the allowance.
	allowed, elapsed = hammer(t, []string{one, two}, "key-"+rand.Text(), 3*time.Second)
	within(t, "two local replicas", allowed, 50, 25, elapsed, 2)
}

func redisClient(t *testing.T) *redis.Client {
	t.Helper()
	url := os.Getenv("SWITCHYARD_TEST_REDIS")
	if url == "" {
		t.Skip("SWITCHYARD_TEST_REDIS is not set (e.g. redis://127.0.0.1:6379/0)")
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("SWITCHYARD_TEST_REDIS names a server that does not answer: %v", err)
	}
	return rdb
}

func TestRateLimitSharedAcrossReplicasThroughRedis(t *testing.T) {
	rdb := redisClient(t)
	be := newBackend(t, "catalog")
	l := gateway.Limit{Rate: 50, Per: time.Second, Burst: 25, FailOpen: true}
	one := limitedReplica(t, gateway.NewShared(rdb), be, l)
	two := limitedReplica(t, gateway.NewShared(redis.NewClient(rdb.Options())), be, l)

	allowed, elapsed := hammer(t, []string{one, two}, "key-"+rand.Text(), 3*time.Second)
	within(t, "two replicas sharing Redis", allowed, 50, 25, elapsed, 1)
}

func TestRateLimitWhenRedisIsDown(t *testing.T) {
	// A Redis that is not there: a port nothing listens on.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 50 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	be := newBackend(t, "catalog")
	shared := gateway.NewShared(rdb)
	reg := prometheus.NewRegistry()
	if err := shared.Register(reg); err != nil {
		t.Fatal(err)
	}
	g := newGateway(t, gateway.Config{Limiter: shared, Routes: []gateway.Route{
		{Prefix: "/api/v1/products", Auth: gateway.AuthNone, RateLimit: gateway.Limit{Rate: 5, Per: time.Minute, Burst: 5, FailOpen: true},
			Upstream: upstream(t, "catalog", discovery.Instance{Addr: be.addr()})},
		{Prefix: "/api/v1/auth", Auth: gateway.AuthNone, RateLimit: gateway.Limit{Rate: 5, Per: time.Minute, Burst: 5, FailOpen: false},
			Upstream: upstream(t, "users", discovery.Instance{Addr: be.addr()})},
	}})
	url := serve(t, g, nil)
	statuses := func(path string) map[int]int {
		out := map[int]int{}
		for range 10 {
			resp, _ := get(t, url+path, map[string]string{gateway.APIKeyHeader: "k"})
			out[resp.StatusCode]++
		}
		return out
	}
	// Fail open: this replica's own limit still applies (5 of 10 pass).
	if got := statuses("/api/v1/products/p1"); got[200] != 5 || got[429] != 5 {
		t.Errorf("fail-open route with Redis down: %v, want 5×200 and 5×429", got)
	}
	// Fail closed: nothing passes, and the client is told to come back.
	if got := statuses("/api/v1/auth/login"); got[503] != 10 {
		t.Errorf("fail-closed route with Redis down: %v, want 10×503", got)
	}
	// Each decision made without Redis is counted, by how it was made.
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counted := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			counted[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if counted["open"] != 10 || counted["closed"] != 10 {
		t.Errorf("gateway_rate_limit_without_redis_total = %v, want 10 open and 10 closed", counted)
	}
}

func TestLocalLimiterForgetsIdleKeys(t *testing.T) {
	l := gateway.NewLocal()
	lim := gateway.Limit{Rate: 1, Per: time.Second, Burst: 1}
	var wg sync.WaitGroup
	for i := range 1000 {
		wg.Go(func() {
			d, err := l.Allow(context.Background(), fmt.Sprint("k", i), lim)
			if err != nil || !d.Allowed {
				t.Errorf("first request of a key: %+v %v", d, err)
			}
		})
	}
	wg.Wait()
	d, _ := l.Allow(context.Background(), "k1", lim)
	if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > time.Second {
		t.Errorf("second request within the second: %+v, want refused with RetryAfter ≤ 1s", d)
	}
}
