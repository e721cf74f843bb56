// Package watch is the plumbing discovery's implementations share: delivering the
// latest set of instances to a slow reader, and a polling watch. It is generic so
// that the contract's own package can use it too.
package watch

import (
	"context"
	"slices"
	"time"
)

// Send delivers set on out (a channel of capacity one), replacing an undelivered
// older set: a slow reader only ever misses intermediate sets, never the latest.
func Send[T any](out chan []T, set []T) {
	for {
		select {
		case out <- set:
			return
		default:
			select {
			case <-out:
			default:
			}
		}
	}
}

// Poll runs a polling watch: it sends the current set, then whatever poll returns
// whenever it differs, every interval (never, when interval is zero) or when kick
// fires, until ctx ends; then it closes the channel.
func Poll[T comparable](ctx context.Context, interval time.Duration, kick <-chan struct{}, poll func(context.Context) ([]T, error)) <-chan []T {
	out := make(chan []T, 1)
	go func() {
		defer close(out)
		var tick <-chan time.Time
		if interval > 0 {
			t := time.NewTicker(interval)
			defer t.Stop()
			tick = t.C
		}
		var last []T
		for first := true; ; {
			if set, err := poll(ctx); err == nil && (first || !slices.Equal(set, last)) {
				first = false
				last = set
				Send(out, set)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick:
			case <-kick:
			}
		}
	}()
	return out
}
