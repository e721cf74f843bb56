// Package bustest is the conformance suite every bus passes: delivery, order,
// competing consumers, retries that do not block, dead letters with their metadata,
// schema violations, replay, durability and graceful drain.
package bustest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/event"
)

// Harness adapts one bus implementation to the suite.
type Harness struct {
	// Bus under test, built with the registry the suite passed.
	Bus bus.Bus
	// DeadLetters of the same broker.
	DeadLetters bus.DeadLetters
	// PublishRaw puts data on the broker as if it were an event of type typ with key
	// subject, bypassing validation (to test what consumers do with bad events).
	PublishRaw func(ctx context.Context, typ, subject string, data []byte) error
	// Dedup is true when the broker drops a second publish of an event id.
	Dedup bool
}

// Run runs the suite. newHarness builds a bus whose events are validated by reg
// (every case uses its own event domain, so cases and runs never share streams).
func Run(t *testing.T, newHarness func(t *testing.T, reg *event.Registry) Harness) {
	t.Run("a published event is delivered intact", func(t *testing.T) {
		s := setup(t, newHarness)
		tp := sdktrace.NewTracerProvider()
		ctx, span := tp.Tracer("t").Start(context.Background(), "request")
		e := s.event(ctx, "order-1", 1)
		span.End()
		if err := s.h.Bus.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
		got := s.collect(t, bus.Subscription{Group: s.group("g"), Types: []string{s.typ}}, 1, nil)
		m := got[0]
		if m.Event.ID != e.ID || m.Event.Subject != "order-1" || string(m.Event.Data) != string(e.Data) || m.Event.TraceParent != e.TraceParent || m.Attempt != 1 {
			t.Errorf("delivered %+v, published %+v", m.Event, e)
		}
	})

	t.Run("a batch keeps its order per subject", func(t *testing.T) {
		s := setup(t, newHarness)
		var batch []event.Event
		for i := range 50 {
			batch = append(batch, s.event(context.Background(), fmt.Sprintf("agg-%d", i%3), i))
		}
		if err := s.h.Bus.Publish(context.Background(), batch...); err != nil {
			t.Fatal(err)
		}
		got := s.collect(t, bus.Subscription{Group: s.group("g"), Types: []string{s.typ}}, 50, nil)
		last := map[string]int{}
		for _, m := range got {
			n := seqOf(t, m.Event)
			if prev, ok := last[m.Event.Subject]; ok && n < prev {
				t.Fatalf("subject %s: %d delivered after %d", m.Event.Subject, n, prev)
			}
			last[m.Event.Subject] = n
		}
	})

	t.Run("a group's members share the events; every group gets them all", func(t *testing.T) {
		s := setup(t, newHarness)
		group, other := s.group("shared"), s.group("other")
		var mu sync.Mutex
		seen := map[string]map[string]int{group: {}, other: {}}
		members := map[string]int{}
		var failed []string // members whose Subscribe returned early, and why
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var wg sync.WaitGroup
		for i, g := range []string{group, group, other} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := s.h.Bus.Subscribe(ctx, bus.Subscription{Group: g, Types: []string{s.typ}, Concurrency: 2}, func(_ context.Context, m *bus.Message) error {
					mu.Lock()
					seen[g][m.Event.ID]++
					members[fmt.Sprintf("%s/%d", g, i)]++
					mu.Unlock()
					return nil
				})
				if err != nil && ctx.Err() == nil {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("%s/%d: %v", g, i, err))
					mu.Unlock()
				}
			}()
		}
		// Publish over many subjects (partitions, on Kafka) until both members of the
		// group are live and working — a member that joins late may find the work
		// already taken — then 60 more.
		n := 0
		publish := func() {
			s.publish(t, s.event(context.Background(), fmt.Sprintf("o-%d", n), n))
			n++
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			mu.Lock()
			both := members[group+"/0"] > 0 && members[group+"/1"] > 0
			ended := strings.Join(failed, "; ")
			mu.Unlock()
			if both {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("one member of the group never got work: %v (subscriptions that ended: %q)", members, ended)
			}
			publish()
			time.Sleep(20 * time.Millisecond)
		}
		for range 60 {
			publish()
		}
		waitFor(t, "both groups to get every event", 20*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(seen[group]) == n && len(seen[other]) == n
		})
		cancel()
		wg.Wait()
		for g, ids := range seen {
			for id, c := range ids {
				if c != 1 {
					t.Errorf("group %s got %s %d times", g, id, c)
				}
			}
		}

	})

	t.Run("a failing event is redelivered without holding up the others", func(t *testing.T) {
		s := setup(t, newHarness)
		failing := s.event(context.Background(), "bad", 0)
		if err := s.h.Bus.Publish(context.Background(), failing); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 5; i++ {
			s.publish(t, s.event(context.Background(), "good", i))
		}
		var attempts []int
		var good atomic.Int32
		var mu sync.Mutex
		goodBeforeRetry := false
		s.collect(t, bus.Subscription{Group: s.group("g"), Types: []string{s.typ}, Backoff: 300 * time.Millisecond, MaxAttempts: 10},
			6, func(_ context.Context, m *bus.Message) error {
				if m.Event.ID == failing.ID {
					mu.Lock()
					defer mu.Unlock()
					attempts = append(attempts, m.Attempt)
					if m.Attempt == 2 && good.Load() == 5 {
						goodBeforeRetry = true
					}
					if m.Attempt < 3 {
						return errors.New("not yet")
					}
					return nil
				}
				good.Add(1)
				return nil
			})
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(attempts, []int{1, 2, 3}) {
			t.Errorf("attempts %v, want [1 2 3]", attempts)
		}
		if !goodBeforeRetry {
			t.Error("the other events waited for the failing one")
		}
	})

	t.Run("after MaxAttempts an event becomes a dead letter with its metadata", func(t *testing.T) {
		s := setup(t, newHarness)
		poison := s.event(context.Background(), "poison", 0)
		s.publish(t, poison)
		group := s.group("g")
		var tries atomic.Int32
		ctx, cancel := context.WithCancel(context.Background())
		done := s.subscribe(t, ctx, bus.Subscription{Group: group, Types: []string{s.typ}, MaxAttempts: 3, Backoff: 100 * time.Millisecond},
			func(context.Context, *bus.Message) error { tries.Add(1); return errors.New("price feed down") })
		dl := s.waitDeadLetter(t, group, poison.ID)
		cancel()
		<-done
		if dl.Attempts != 3 || tries.Load() != 3 || !strings.Contains(dl.LastError, "price feed down") || dl.Group != group ||
			dl.Event.TraceParent != poison.TraceParent || dl.Subject == "" || dl.FirstFailure.IsZero() || !dl.LastFailure.After(dl.FirstFailure) {
			t.Errorf("dead letter %+v after %d tries", dl, tries.Load())
		}
		// Fixed, replayed: the same event, once.
		var replayed atomic.Value
		if err := s.h.DeadLetters.Replay(context.Background(), dl.ID); err != nil {
			t.Fatal(err)
		}
		got := s.collect(t, bus.Subscription{Group: group, Types: []string{s.typ}}, 1, func(_ context.Context, m *bus.Message) error {
			replayed.Store(m.Event)
			return nil
		})
		if got[0].Event.ID != poison.ID || got[0].Event.TraceParent != poison.TraceParent {
			t.Errorf("replayed %+v", got[0].Event)
		}
		left, _ := s.h.DeadLetters.List(context.Background(), group, 10)
		if len(left) != 0 {
			t.Errorf("%d dead letters left after the replay", len(left))
		}
	})

	t.Run("a permanent error and a schema violation skip the retries", func(t *testing.T) {
		s := setup(t, newHarness)
		group := s.group("g")
		e := s.event(context.Background(), "perm", 0)
		s.publish(t, e)
		bad := s.event(context.Background(), "broken", 1)
		bad.Data = []byte(`{"n":"not a number"}`)
		raw, _ := event.Encode(&bad)
		if err := s.h.PublishRaw(context.Background(), s.typ, bad.Subject, raw); err != nil {
			t.Fatal(err)
		}
		var calls atomic.Int32
		ctx, cancel := context.WithCancel(context.Background())
		done := s.subscribe(t, ctx, bus.Subscription{Group: group, Types: []string{s.typ}, MaxAttempts: 5},
			func(_ context.Context, m *bus.Message) error {
				calls.Add(1)
				return bus.Permanent(errors.New("order does not exist"))
			})
		perm := s.waitDeadLetter(t, group, e.ID)
		schema := s.waitDeadLetter(t, group, bad.ID)
		cancel()
		<-done
		if perm.Attempts != 1 || schema.Attempts != 1 || calls.Load() != 1 {
			t.Errorf("attempts %d and %d, handler calls %d; want 1, 1, 1 (the invalid event never reaches the handler)", perm.Attempts, schema.Attempts, calls.Load())
		}
		if !strings.Contains(schema.LastError, "schema") {
			t.Errorf("schema dead letter says %q", schema.LastError)
		}
		n, err := s.h.DeadLetters.Purge(context.Background(), group, "")
		if err != nil || n != 2 {
			t.Errorf("purged %d, %v; want 2", n, err)
		}
	})

	t.Run("an invalid event is refused at publish", func(t *testing.T) {
		s := setup(t, newHarness)
		e := s.event(context.Background(), "x", 0)
		e.Data = []byte(`{"n":-1}`)
		if err := s.h.Bus.Publish(context.Background(), e); err == nil {
			t.Error("published an event that breaks its schema")
		}
	})

	t.Run("a group resumes where it left off", func(t *testing.T) {
		s := setup(t, newHarness)
		group := s.group("durable")
		s.publish(t, s.event(context.Background(), "a", 1))
		first := s.collect(t, bus.Subscription{Group: group, Types: []string{s.typ}}, 1, nil)
		s.publish(t, s.event(context.Background(), "a", 2))
		second := s.collect(t, bus.Subscription{Group: group, Types: []string{s.typ}}, 1, nil)
		if seqOf(t, first[0].Event) != 1 || seqOf(t, second[0].Event) != 2 {
			t.Errorf("after a restart the group got %d", seqOf(t, second[0].Event))
		}
	})

	t.Run("cancelling drains: in-flight handlers finish and are acknowledged", func(t *testing.T) {
		s := setup(t, newHarness)
		group := s.group("drain")
		s.publish(t, s.event(context.Background(), "d", 1))
		started, finish := make(chan struct{}), make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		var completed atomic.Bool
		returned := s.subscribe(t, ctx, bus.Subscription{Group: group, Types: []string{s.typ}}, func(hctx context.Context, _ *bus.Message) error {
			close(started)
			<-finish
			completed.Store(hctx.Err() == nil)
			return nil
		})
		<-started
		cancel()
		select {
		case <-returned:
			t.Fatal("Subscribe returned before its handler finished")
		case <-time.After(200 * time.Millisecond):
		}
		close(finish)
		select {
		case <-returned:
		case <-time.After(10 * time.Second):
			t.Fatal("Subscribe did not return after the drain")
		}
		if !completed.Load() {
			t.Error("the handler's context was cancelled under it")
		}
		// Acknowledged: nothing comes back.
		s.publish(t, s.event(context.Background(), "d", 2))
		again := s.collect(t, bus.Subscription{Group: group, Types: []string{s.typ}}, 1, nil)
		if seqOf(t, again[0].Event) != 2 {
			t.Error("the drained event was delivered again")
		}
	})

	t.Run("the broker drops a republished event id", func(t *testing.T) {
		s := setup(t, newHarness)
		if !s.h.Dedup {
			t.Skip("this broker does not de-duplicate; inboxes do")
		}
		e := s.event(context.Background(), "dup", 1)
		for range 3 {
			if err := s.h.Bus.Publish(context.Background(), e); err != nil {
				t.Fatal(err)
			}
		}
		s.publish(t, s.event(context.Background(), "dup", 2))
		got := s.collect(t, bus.Subscription{Group: s.group("g"), Types: []string{s.typ}}, 2, nil)
		if got[0].Event.ID != e.ID || seqOf(t, got[1].Event) != 2 {
			t.Errorf("delivered %s then %d", got[0].Event.ID, seqOf(t, got[1].Event))
		}
	})
}

type suite struct {
	h      Harness
	domain string
	typ    string
}

func randomName() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = 'a' + b[i]%26
	}
	return string(b)
}

func setup(t *testing.T, newHarness func(*testing.T, *event.Registry) Harness) *suite {
	t.Helper()
	domain := "bt" + randomName()
	typ := domain + ".thing.happened.v1"
	reg, err := event.NewRegistry(fstest.MapFS{typ + ".json": {Data: []byte(`{
		"type": "object", "required": ["n"], "properties": {"n": {"type": "integer", "minimum": 0}}
	}`)}})
	if err != nil {
		t.Fatal(err)
	}
	return &suite{h: newHarness(t, reg), domain: domain, typ: typ}
}

func (s *suite) group(name string) string { return name + "-" + s.domain }

// publish publishes, failing the test on error.
func (s *suite) publish(t *testing.T, events ...event.Event) {
	t.Helper()
	if err := s.h.Bus.Publish(context.Background(), events...); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// subscribe runs Subscribe in the background; wait for it with the returned channel.
func (s *suite) subscribe(t *testing.T, ctx context.Context, sub bus.Subscription, h bus.Handler) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.h.Bus.Subscribe(ctx, sub, h); err != nil {
			t.Errorf("subscribe: %v", err)
		}
	}()
	return done
}

func (s *suite) event(ctx context.Context, subject string, n int) event.Event {
	e, err := event.New(ctx, "/bustest", s.typ, subject, map[string]int{"n": n})
	if err != nil {
		panic(err)
	}
	return e
}

func seqOf(t *testing.T, e event.Event) int {
	t.Helper()
	var d struct{ N int }
	if err := e.DecodeData(&d); err != nil {
		t.Fatal(err)
	}
	return d.N
}

// collect subscribes until n events were handled (by h, or just recorded), then stops.
func (s *suite) collect(t *testing.T, sub bus.Subscription, n int, h bus.Handler) []bus.Message {
	t.Helper()
	var mu sync.Mutex
	var got []bus.Message
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.h.Bus.Subscribe(ctx, sub, func(hctx context.Context, m *bus.Message) error {
			if h != nil {
				if err := h(hctx, m); err != nil {
					return err
				}
			}
			mu.Lock()
			got = append(got, *m)
			mu.Unlock()
			return nil
		})
	}()
	waitFor(t, fmt.Sprintf("%d events", n), 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= n
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(got)
}

func (s *suite) waitDeadLetter(t *testing.T, group, eventID string) bus.DeadLetter {
	t.Helper()
	var found bus.DeadLetter
	waitFor(t, "the dead letter of "+eventID, 30*time.Second, func() bool {
		list, err := s.h.DeadLetters.List(context.Background(), group, 100)
		if err != nil {
			return false
		}
		for _, dl := range list {
			if dl.Event.ID == eventID {
				found = dl
				return true
			}
		}
		return false
	})
	return found
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
