package resilience

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Per-try deadlines without a runtime timer per attempt.
//
// context.WithDeadline arms a timer for every attempt and stops it when the attempt
// ends — on a loopback call the timer, its closures and the timer heap's locks are a
// good share of what the policies cost, and nearly every timer is stopped long
// before it would fire. A Policy's deadlines instead files each attempt under the
// tick its deadline falls in, and one goroutine, awake only while attempts are in
// flight, ends those whose tick has passed. An attempt is ended at most one tick
// after its deadline: the tick is 1/256 of the per-try timeout, between 0.5 ms and
// 5 ms.

const (
	minTick = 500 * time.Microsecond
	maxTick = 5 * time.Millisecond
)

// deadlines ends the attempts of one Policy at their deadlines.
type deadlines struct {
	tick    int64 // nanoseconds
	slots   []deadlineSlot
	pending atomic.Int64 // attempts filed and not yet ended or released
	running atomic.Bool  // a goroutine is ending attempts
	through int64        // the last tick ended; owned by the running goroutine
}

// deadlineSlot holds the attempts due in the ticks congruent to its index.
type deadlineSlot struct {
	mu    sync.Mutex
	head  *tryCtx
	ended int64 // the last tick whose attempts were ended from this slot
}

func newDeadlines(tryTimeout time.Duration) *deadlines {
	tick := min(max(tryTimeout/256, minTick), maxTick)
	// Every deadline is at most one per-try timeout away, so these slots hold one
	// lap of ticks; an attempt filed a lap ahead (a late goroutine) waits a lap.
	n := min(int(tryTimeout/tick)+2, 4096)
	return &deadlines{tick: int64(tick), slots: make([]deadlineSlot, n)}
}

// tryCtx is an attempt's context: the call's context, cancellable, with the
// attempt's deadline, which its Policy's deadlines enforces. It carries the
// response body too, so that closing the body releases it (see tryBody).
type tryCtx struct {
	context.Context // a cancelCtx: children and cancellation are the standard library's
	cancel          context.CancelCauseFunc
	deadline        time.Time
	w               *deadlines
	due             int64 // the tick at which it ends: its deadline, rounded up
	prev, next      *tryCtx
	filed           bool // in its slot's list; guarded by the slot's mutex
	expired         atomic.Bool
	body            io.ReadCloser
}

// withDeadline returns ctx bounded by deadline, as context.WithDeadline does,
// without a timer; now is the current time. Release it when the attempt ends.
func (w *deadlines) withDeadline(ctx context.Context, deadline, now time.Time) *tryCtx {
	inner, cancel := context.WithCancelCause(ctx)
	t := &tryCtx{Context: inner, cancel: cancel, deadline: deadline, w: w}
	if !deadline.After(now) {
		t.expire()
		return t
	}
	t.due = (deadline.UnixNano() + w.tick - 1) / w.tick
	s := w.slot(t.due)
	w.pending.Add(1)
	s.mu.Lock()
	if s.ended >= t.due { // its tick has been ended already
		s.mu.Unlock()
		w.pending.Add(-1)
		t.expire()
		return t
	}
	t.next = s.head
	if s.head != nil {
		s.head.prev = t
	}
	s.head, t.filed = t, true
	s.mu.Unlock()
	if !w.running.Load() && w.running.CompareAndSwap(false, true) {
		go w.run()
	}
	return t
}

func (w *deadlines) slot(tick int64) *deadlineSlot { return &w.slots[tick%int64(len(w.slots))] }

// unfile takes t out of its slot's list; s.mu is held.
func (s *deadlineSlot) unfile(t *tryCtx) {
	if t.prev != nil {
		t.prev.next = t.next
	} else {
		s.head = t.next
	}
	if t.next != nil {
		t.next.prev = t.prev
	}
	t.prev, t.next, t.filed = nil, nil, false
}

// run ends attempts tick by tick while any is pending.
func (w *deadlines) run() {
	timer := time.NewTimer(time.Duration(w.tick))
	defer timer.Stop()
	n := int64(len(w.slots))
	for {
		<-timer.C
		now := time.Now().UnixNano()
		through := now / w.tick // ticks whose time has come
		from := max(w.through+1, through-n+1)
		for k := from; k <= through; k++ {
			w.end(w.slot(k), k)
		}
		w.through = through
		if w.pending.Load() == 0 {
			w.running.Store(false)
			// An attempt filed meanwhile saw running set, or starts a goroutine itself.
			if w.pending.Load() == 0 || !w.running.CompareAndSwap(false, true) {
				return
			}
		}
		timer.Reset(time.Duration((through+1)*w.tick - now))
	}
}

// end ends the attempts of s due by tick k.
func (w *deadlines) end(s *deadlineSlot, k int64) {
	var due *tryCtx
	s.mu.Lock()
	s.ended = k
	for t := s.head; t != nil; {
		next := t.next
		if t.due <= k {
			s.unfile(t)
			t.expired.Store(true)
			t.next, due = due, t
		}
		t = next
	}
	s.mu.Unlock()
	for due != nil {
		t := due
		due, t.next = t.next, nil
		w.pending.Add(-1)
		t.cancel(context.DeadlineExceeded)
	}
}

func (t *tryCtx) expire() {
	t.expired.Store(true)
	t.cancel(context.DeadlineExceeded)
}

// release ends the attempt (as a CancelFunc would) and reports whether its
// deadline had ended it first.
func (t *tryCtx) release() bool {
	if t.due != 0 {
		s := t.w.slot(t.due)
		s.mu.Lock()
		filed := t.filed
		if filed {
			s.unfile(t)
		}
		s.mu.Unlock()
		if filed {
			t.w.pending.Add(-1)
		}
	}
	t.cancel(nil)
	return t.expired.Load()
}

// Deadline is the attempt's deadline.
func (t *tryCtx) Deadline() (time.Time, bool) { return t.deadline, true }

// Err is context.DeadlineExceeded once the deadline ended the attempt, as it is
// for a context.WithDeadline.
func (t *tryCtx) Err() error {
	err := t.Context.Err()
	if err == context.Canceled && t.expired.Load() {
		return context.DeadlineExceeded
	}
	return err
}

func (t *tryCtx) String() string { return "resilience.tryCtx" }

// tryBody is an attempt's response body: closing it releases the attempt's context.
// It is the tryCtx itself, seen as a body, so that it costs no allocation.
type tryBody tryCtx

func (b *tryBody) Read(p []byte) (int, error) { return b.body.Read(p) }

func (b *tryBody) Close() error {
	err := b.body.Close()
	(*tryCtx)(b).release()
	return err
}
