package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a Cache on a Redis server, shared by every replica that names it: one
// replica's invalidation is every replica's. Keys are prefixed so that several
// services (or tests) can share a server.
type Redis struct {
	client *redis.Client
	prefix string
}

var _ Cache = (*Redis)(nil)

// NewRedis connects to the Redis server at url (redis://[user:password@]host:port/db)
// and checks that it answers. prefix is prepended to every key.
func NewRedis(ctx context.Context, url, prefix string) (*Redis, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("cache: REDIS_URL: %w", err)
	}
	// A cache must fail fast: a slow Redis costs a database read, never a timeout.
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = time.Second, 200*time.Millisecond, 200*time.Millisecond
	opts.MaxRetries = 1
	client := redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("cache: Redis at %s does not answer: %w", opts.Addr, err)
	}
	return &Redis{client: client, prefix: prefix}, nil
}

// Get implements Cache.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, bool, error) {
	v, err := r.client.Get(ctx, r.prefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("cache: get %s: %w", key, err)
	}
	return v, true, nil
}

// Set implements Cache.
func (r *Redis) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := r.client.Set(ctx, r.prefix+key, value, ttl).Err(); err != nil {
		return fmt.Errorf("cache: set %s: %w", key, err)
	}
	return nil
}

// Delete implements Cache.
func (r *Redis) Delete(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = r.prefix + k
	}
	if err := r.client.Del(ctx, full...).Err(); err != nil {
		return fmt.Errorf("cache: delete: %w", err)
	}
	return nil
}

// Close closes the connection pool.
func (r *Redis) Close() error { return r.client.Close() }
