package authn

import (
	"sync"
	"time"
)

// verified remembers tokens already verified, so that a token presented again —
// a service's token is presented on every call for minutes, a customer's on every
// request — costs a map lookup instead of a signature check. An entry lives until
// the token expires, and at most verifiedTTL, so that a signing key withdrawn from
// the JWKS stops being honoured within that time. Bounded: when full, entries go
// in no particular order.
type verified[T any] struct {
	now func() time.Time

	mu      sync.Mutex
	entries map[string]verifiedEntry[T]
}

type verifiedEntry[T any] struct {
	value T
	until time.Time
}

const (
	verifiedTTL = time.Minute
	verifiedMax = 10_000
)

func newVerified[T any](now func() time.Time) *verified[T] {
	return &verified[T]{now: now, entries: map[string]verifiedEntry[T]{}}
}

func (c *verified[T]) get(token string) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[token]
	if !ok || !c.now().Before(e.until) {
		var zero T
		return zero, false
	}
	return e.value, true
}

func (c *verified[T]) put(token string, value T, expires time.Time) {
	until := c.now().Add(verifiedTTL)
	if !expires.IsZero() && expires.Before(until) {
		until = expires
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= verifiedMax {
		for k := range c.entries {
			delete(c.entries, k)
			if len(c.entries) < verifiedMax*9/10 {
				break
			}
		}
	}
	c.entries[token] = verifiedEntry[T]{value: value, until: until}
}
