// Package cache is a read-through cache for services' hot reads: in process by
// default (a bounded LRU with expiry), shared across replicas on Redis when one is
// configured (RedisCache). Loads of one key are collapsed (singleflight), so a cold
// key under load costs one database read.
//
// A cache is an optimisation, never a source of truth: every entry expires, writers
// invalidate what they change (catalog drops a product when its stock-changed event
// arrives), and a cache that fails is bypassed, not fatal.
package cache

import (
	"container/list"
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Cache stores byte values by key.
type Cache interface {
	// Get returns the value of key, if present and not expired. The value may be
	// shared with every other reader (Memory returns the stored slice): read it,
	// never modify it.
	Get(ctx context.Context, key string) ([]byte, bool, error)
	// Set stores value under key for ttl.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Delete removes keys.
	Delete(ctx context.Context, keys ...string) error
}

// Memory is an in-process LRU cache with expiry. Safe for concurrent use.
type Memory struct {
	max      int
	maxBytes int
	now      func() time.Time
	bytes    int // of keys and values held

	mu    sync.Mutex
	order *list.List // front: most recently used
	items map[string]*list.Element
}

type entry struct {
	key     string
	value   []byte
	expires time.Time
}

// NewMemory returns an LRU cache of at most maxEntries entries [10 000].
func NewMemory(maxEntries int) *Memory {
	if maxEntries <= 0 {
		maxEntries = 10_000
	}
	return &Memory{max: maxEntries, now: time.Now, order: list.New(), items: map[string]*list.Element{}}
}

// WithMaxBytes bounds the keys and values held, in total, as well; the least
// recently used go first. It returns m.
func (m *Memory) WithMaxBytes(n int) *Memory {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.maxBytes = n
	m.evict()
	return m
}

func (m *Memory) evict() {
	for m.order.Len() > m.max || (m.maxBytes > 0 && m.bytes > m.maxBytes && m.order.Len() > 0) {
		m.remove(m.order.Back())
	}
}

func (m *Memory) remove(el *list.Element) {
	e := el.Value.(*entry)
	m.order.Remove(el)
	delete(m.items, e.key)
	m.bytes -= len(e.key) + len(e.value)
}

// Get implements Cache.
func (m *Memory) Get(_ context.Context, key string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.items[key]
	if !ok {
		return nil, false, nil
	}
	e := el.Value.(*entry)
	if !m.now().Before(e.expires) {
		m.remove(el)
		return nil, false, nil
	}
	m.order.MoveToFront(el)
	return e.value, true, nil
}

// Set implements Cache.
func (m *Memory) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[key]; ok {
		e := el.Value.(*entry)
		m.bytes += len(value) - len(e.value)
		e.value, e.expires = value, m.now().Add(ttl)
		m.order.MoveToFront(el)
	} else {
		m.items[key] = m.order.PushFront(&entry{key: key, value: value, expires: m.now().Add(ttl)})
		m.bytes += len(key) + len(value)
	}
	m.evict()
	return nil
}

// Delete implements Cache.
func (m *Memory) Delete(_ context.Context, keys ...string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range keys {
		if el, ok := m.items[k]; ok {
			m.remove(el)
		}
	}
	return nil
}

// Len is the number of entries held (expired ones included until touched).
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.order.Len()
}

// ReadThrough serves keys from a cache, loading misses once per key at a time.
type ReadThrough struct {
	c     Cache
	ttl   time.Duration
	group singleflight.Group
	// OnError, when set, hears about cache failures (the load still happens).
	OnError func(error)
}

// NewReadThrough returns a read-through view of c whose entries live ttl.
func NewReadThrough(c Cache, ttl time.Duration) *ReadThrough {
	return &ReadThrough{c: c, ttl: ttl}
}

// Get returns key's value from the cache or, on a miss, from load (which runs once
// for all concurrent misses of key), storing it. hit reports a cache hit.
func (r *ReadThrough) Get(ctx context.Context, key string, load func(context.Context) ([]byte, error)) (value []byte, hit bool, err error) {
	if v, ok, err := r.c.Get(ctx, key); err == nil && ok {
		return v, true, nil
	} else if err != nil && r.OnError != nil {
		r.OnError(err)
	}
	v, err, _ := r.group.Do(key, func() (any, error) {
		v, err := load(ctx)
		if err != nil {
			return nil, err
		}
		if err := r.c.Set(ctx, key, v, r.ttl); err != nil && r.OnError != nil {
			r.OnError(err)
		}
		return v, nil
	})
	if err != nil {
		return nil, false, err
	}
	return v.([]byte), false, nil
}

// Invalidate removes keys from the cache.
func (r *ReadThrough) Invalidate(ctx context.Context, keys ...string) error {
	return r.c.Delete(ctx, keys...)
}
