package cache_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/cache"
)

func TestMemoryEvictsTheLeastRecentlyUsedAndExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := cache.NewMemory(2)
	m.Set(ctx, "a", []byte("1"), time.Hour)
	m.Set(ctx, "b", []byte("2"), time.Hour)
	m.Get(ctx, "a") // a is now the most recent
	m.Set(ctx, "c", []byte("3"), time.Hour)
	if _, ok, _ := m.Get(ctx, "b"); ok {
		t.Error("b survived although least recently used")
	}
	if v, ok, _ := m.Get(ctx, "a"); !ok || string(v) != "1" {
		t.Error("a was evicted")
	}
	m.Set(ctx, "short", []byte("x"), time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	if _, ok, _ := m.Get(ctx, "short"); ok {
		t.Error("an expired entry was served")
	}
	m.Delete(ctx, "a", "c")
	if m.Len() != 0 {
		t.Errorf("%d entries after deleting everything", m.Len())
	}
}

func TestReadThroughLoadsAMissOnce(t *testing.T) {
	t.Parallel()
	rt := cache.NewReadThrough(cache.NewMemory(0), time.Minute)
	var loads atomic.Int32
	gate := make(chan struct{})
	load := func(context.Context) ([]byte, error) {
		loads.Add(1)
		<-gate
		return []byte("value"), nil
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, _, err := rt.Get(context.Background(), "k", load); err != nil || string(v) != "value" {
				t.Errorf("got %q, %v", v, err)
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	close(gate)
	wg.Wait()
	if n := loads.Load(); n != 1 {
		t.Errorf("20 concurrent misses loaded %d times", n)
	}
	if _, hit, _ := rt.Get(context.Background(), "k", load); !hit {
		t.Error("a loaded value was not cached")
	}
	rt.Invalidate(context.Background(), "k")
	if _, hit, _ := rt.Get(context.Background(), "k", func(context.Context) ([]byte, error) { return []byte("new"), nil }); hit {
		t.Error("an invalidated key was served from the cache")
	}
}

type broken struct{}

func (broken) Get(context.Context, string) ([]byte, bool, error) {
	return nil, false, errors.New("down")
}
func (broken) Set(context.Context, string, []byte, time.Duration) error {
	return errors.New("down")
}
func (broken) Delete(context.Context, ...string) error { return errors.New("down") }

func TestAFailingCacheIsBypassed(t *testing.T) {
	t.Parallel()
	var reported atomic.Int32
	rt := cache.NewReadThrough(broken{}, time.Minute)
	rt.OnError = func(error) { reported.Add(1) }
	v, hit, err := rt.Get(context.Background(), "k", func(context.Context) ([]byte, error) { return []byte("from db"), nil })
	if err != nil || hit || string(v) != "from db" {
		t.Errorf("got %q %v %v", v, hit, err)
	}
	if reported.Load() == 0 {
		t.Error("cache failures were not reported")
	}
	_ = fmt.Sprint()
}

func TestMemoryHoldsToItsByteBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := cache.NewMemory(100).WithMaxBytes(250)
	for i := range 5 {
		m.Set(ctx, fmt.Sprintf("k%d", i), make([]byte, 98), time.Hour) // 100 bytes with the key
	}
	if m.Len() != 2 {
		t.Errorf("%d entries of 100 bytes in a budget of 250", m.Len())
	}
	if _, ok, _ := m.Get(ctx, "k4"); !ok {
		t.Error("the newest entry was evicted")
	}
	m.Set(ctx, "k4", make([]byte, 8), time.Hour) // replaced by a smaller value
	m.Set(ctx, "k5", make([]byte, 98), time.Hour)
	if m.Len() != 3 {
		t.Errorf("%d entries after shrinking one, want 3", m.Len())
	}
	m.Set(ctx, "huge", make([]byte, 1000), time.Hour) // over the budget alone: nothing else survives, nor it
	if m.Len() != 0 {
		t.Errorf("%d entries after one larger than the budget", m.Len())
	}
}
