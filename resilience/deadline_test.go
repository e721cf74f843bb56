package resilience

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// An attempt's context ends at its deadline, within a tick, reporting
// DeadlineExceeded as context.WithDeadline would, and its children end with it.
func TestAnAttemptEndsAtItsDeadlineWithoutATimerOfItsOwn(t *testing.T) {
	w := newDeadlines(40 * time.Millisecond)
	now := time.Now()
	deadline := now.Add(40 * time.Millisecond)
	ctx := w.withDeadline(context.Background(), deadline, now)
	child, cancel := context.WithCancel(ctx)
	defer cancel()
	if dl, ok := ctx.Deadline(); !ok || !dl.Equal(deadline) {
		t.Errorf("Deadline() = %v %v, want %v", dl, ok, deadline)
	}
	<-child.Done()
	late := time.Since(deadline)
	if late < 0 || late > 20*time.Millisecond {
		t.Errorf("ended %s after its deadline, want within a tick (%s) and scheduling", late, time.Duration(w.tick))
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(child), context.DeadlineExceeded) {
		t.Errorf("Err() = %v, child's cause %v; want the deadline", ctx.Err(), context.Cause(child))
	}
	if !ctx.release() {
		t.Error("release did not report that the deadline ended the attempt")
	}
	waitIdle(t, w)
}

// Released attempts leave nothing behind: no pending entry, no goroutine.
func TestReleasedAttemptsLeaveTheClockIdle(t *testing.T) {
	w := newDeadlines(time.Second)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				now := time.Now()
				ctx := w.withDeadline(context.Background(), now.Add(time.Second), now)
				if ctx.release() || !errors.Is(ctx.Err(), context.Canceled) {
					t.Errorf("a released attempt: expired, or Err() = %v", ctx.Err())
					return
				}
			}
		})
	}
	wg.Wait()
	if n := w.pending.Load(); n != 0 {
		t.Errorf("%d attempts still pending", n)
	}
	waitIdle(t, w)
}

// A deadline already past ends the attempt at once; the caller's cancellation
// still reaches it.
func TestAPastDeadlineAndTheCallersCancellation(t *testing.T) {
	w := newDeadlines(time.Second)
	now := time.Now()
	past := w.withDeadline(context.Background(), now.Add(-time.Millisecond), now)
	if !errors.Is(past.Err(), context.DeadlineExceeded) {
		t.Errorf("past deadline: Err() = %v", past.Err())
	}
	parent, cancel := context.WithCancel(context.Background())
	ctx := w.withDeadline(parent, now.Add(time.Second), now)
	cancel()
	<-ctx.Done()
	if !errors.Is(ctx.Err(), context.Canceled) || ctx.release() {
		t.Errorf("caller's cancellation: Err() = %v", ctx.Err())
	}
	waitIdle(t, w)
}

func waitIdle(t *testing.T, w *deadlines) {
	t.Helper()
	for end := time.Now().Add(time.Second); w.running.Load(); {
		if time.Now().After(end) {
			t.Fatal("the deadlines goroutine is still running with nothing pending")
		}
		time.Sleep(time.Millisecond)
	}
}
