package cache_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/cache"
)

// redisEnv names a Redis server the Redis cache is tested against. When set and
// unreachable, the tests fail: in CI an integration test never skips silently.
const redisEnv = "SWITCHYARD_TEST_REDIS"

func prefix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "sytest:" + hex.EncodeToString(b) + ":"
}

// eachCache runs fn against every Cache: in memory always, on Redis when the
// environment names a server.
func eachCache(t *testing.T, fn func(t *testing.T, c cache.Cache, again func() cache.Cache)) {
	t.Run("memory", func(t *testing.T) {
		m := cache.NewMemory(0)
		fn(t, m, func() cache.Cache { return m })
	})
	url := os.Getenv(redisEnv)
	if url == "" {
		t.Logf("%s unset: Redis cache not tested here", redisEnv)
		return
	}
	t.Run("redis", func(t *testing.T) {
		p := prefix()
		open := func() cache.Cache {
			r, err := cache.NewRedis(context.Background(), url, p)
			if err != nil {
				t.Fatalf("%s: %v", redisEnv, err)
			}
			t.Cleanup(func() { r.Close() })
			return r
		}
		fn(t, open(), open)
	})
}

func TestEveryCacheKeepsItsContract(t *testing.T) {
	t.Parallel()
	eachCache(t, func(t *testing.T, c cache.Cache, again func() cache.Cache) {
		ctx := context.Background()
		if _, ok, err := c.Get(ctx, "missing"); ok || err != nil {
			t.Errorf("missing key: %v %v", ok, err)
		}
		if err := c.Set(ctx, "a", []byte("1"), time.Minute); err != nil {
			t.Fatal(err)
		}
		c.Set(ctx, "b", []byte("2"), time.Minute)
		c.Set(ctx, "short", []byte("x"), 50*time.Millisecond)
		if v, ok, err := c.Get(ctx, "a"); !ok || err != nil || string(v) != "1" {
			t.Errorf("a: %q %v %v", v, ok, err)
		}
		time.Sleep(120 * time.Millisecond)
		if _, ok, _ := c.Get(ctx, "short"); ok {
			t.Error("an expired entry was served")
		}
		// Another client of the same cache sees the same entries and invalidations:
		// for Redis, another replica.
		other := again()
		if v, ok, _ := other.Get(ctx, "b"); !ok || string(v) != "2" {
			t.Errorf("b through another client: %q %v", v, ok)
		}
		if err := other.Delete(ctx, "a", "b", "never-set"); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"a", "b"} {
			if _, ok, _ := c.Get(ctx, k); ok {
				t.Errorf("%s survived its deletion by another client", k)
			}
		}
		if err := c.Delete(ctx); err != nil {
			t.Errorf("deleting nothing: %v", err)
		}
	})
}

func TestRedisRefusesBadURLsAndAbsentServers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if _, err := cache.NewRedis(ctx, "http://127.0.0.1:6379", ""); err == nil || !strings.Contains(err.Error(), "REDIS_URL") {
		t.Errorf("an http URL: %v", err)
	}
	// A port nothing listens on (reserved as unassigned).
	if _, err := cache.NewRedis(ctx, "redis://127.0.0.1:1", ""); err == nil || !strings.Contains(err.Error(), "does not answer") {
		t.Errorf("no server: %v", err)
	}
}
