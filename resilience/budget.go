package resilience

import (
	"sync"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/budget"
)

// budgetWindow is the sliding window over which a Budget counts, in one-second slots.
const budgetWindow = 10

// Budget is a retry budget in the manner of Finagle's: over a sliding ten-second
// window, retries may not exceed Ratio × calls + PerSecond × 10. Every call deposits,
// every retry withdraws; when the balance is spent, retries stop (the call returns
// its last failure, translated to an Unavailable problem) until calls refill it.
//
// failsafe-go's retry policy accepts it through WithBudget: it implements the same
// hooks as failsafe's concurrency budget, with rate semantics.
type Budget struct {
	ratio     float64
	perSecond int
	now       func() time.Time

	mu    sync.Mutex
	slots [budgetWindow]struct {
		sec            int64
		calls, retries int
	}
}

// NewBudget returns a budget allowing ratio × calls + perSecond retries per second
// over ten seconds. now defaults to time.Now.
func NewBudget(ratio float64, perSecond int, now func() time.Time) *Budget {
	if now == nil {
		now = time.Now
	}
	return &Budget{ratio: ratio, perSecond: perSecond, now: now}
}

// slot returns the slot of the current second, clearing it if it is stale.
func (b *Budget) slot() (sec int64, i int) { return b.slotAt(b.now()) }

// slotAt is slot at a time the caller already read from the budget's clock.
func (b *Budget) slotAt(now time.Time) (sec int64, i int) {
	sec = now.Unix()
	i = int(sec % budgetWindow)
	if b.slots[i].sec != sec {
		b.slots[i].sec, b.slots[i].calls, b.slots[i].retries = sec, 0, 0
	}
	return sec, i
}

func (b *Budget) totals(sec int64) (calls, retries int) {
	for _, s := range b.slots {
		if sec-s.sec < budgetWindow {
			calls += s.calls
			retries += s.retries
		}
	}
	return calls, retries
}

// RecordExecution counts a call (a deposit).
func (b *Budget) RecordExecution() { b.recordAt(b.now()) }

// recordAt is RecordExecution at now, read by the caller from the budget's clock
// (a Policy's budget runs on time.Now, as Do does): one clock read less per call.
func (b *Budget) recordAt(now time.Time) {
	b.mu.Lock()
	_, i := b.slotAt(now)
	b.slots[i].calls++
	b.mu.Unlock()
}

// TryAcquirePermit withdraws one retry, or reports that the budget is spent.
func (b *Budget) TryAcquirePermit() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	sec, i := b.slot()
	calls, retries := b.totals(sec)
	if float64(retries+1) > b.ratio*float64(calls)+float64(b.perSecond*budgetWindow) {
		return false
	}
	b.slots[i].retries++
	return true
}

// ReleaseExecution is part of failsafe's budget hooks; a rate budget keeps no
// in-flight count.
func (b *Budget) ReleaseExecution() {}

// ReleasePermit is part of failsafe's budget hooks; see ReleaseExecution.
func (b *Budget) ReleasePermit() {}

// OnBudgetExceeded is part of failsafe's budget hooks; exhaustion is recorded where
// the error is translated.
func (b *Budget) OnBudgetExceeded(budget.ExecutionType, failsafe.ExecutionInfo) {}

// Rate is the share of retries among calls in the window.
func (b *Budget) Rate() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	calls, retries := b.totals(b.now().Unix())
	if calls == 0 {
		return 0
	}
	return float64(retries) / float64(calls)
}

// Counts returns the calls and retries in the current window.
func (b *Budget) Counts() (calls, retries int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.totals(b.now().Unix())
}

// Budget returns the policy's retry budget.
func (p *Policy) Budget() *Budget { return p.budget }
