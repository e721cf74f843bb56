package balancer_test

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/balancer"
	"github.com/switchyard/switchyard/discovery"
)

type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.t.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.t.Add(int64(d)) }
func newClock() *fakeClock                   { c := &fakeClock{}; c.t.Store(time.Now().UnixNano()); return c }

func instances(n int) []discovery.Instance {
	out := make([]discovery.Instance, n)
	for i := range out {
		out[i] = discovery.Instance{Service: "svc", ID: fmt.Sprintf("i%d", i), Addr: fmt.Sprintf("127.0.0.1:%d", 9000+i)}
	}
	return out
}

func pickN(t *testing.T, b *balancer.Balancer, n int) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for range n {
		e, err := b.Pick()
		if err != nil {
			t.Fatal(err)
		}
		counts[e.Instance.ID]++
		b.Done(e, time.Millisecond, balancer.Success)
	}
	return counts
}

func TestNoInstancesIsAnError(t *testing.T) {
	t.Parallel()
	if _, err := balancer.New(balancer.Config{}).Pick(); !errors.Is(err, balancer.ErrNoInstances) {
		t.Errorf("Pick on empty = %v", err)
	}
}

func TestRoundRobinVisitsEachInTurn(t *testing.T) {
	t.Parallel()
	b := balancer.New(balancer.Config{Policy: balancer.RoundRobin})
	b.Update(instances(3))
	counts := pickN(t, b, 300)
	for id, n := range counts {
		if n != 100 {
			t.Errorf("%s picked %d times of 300", id, n)
		}
	}
}

func TestWeightedSplitsByWeight(t *testing.T) {
	t.Parallel()
	b := balancer.New(balancer.Config{Policy: balancer.Weighted})
	list := instances(2)
	list[0].Weight, list[1].Weight = 90, 10
	b.Update(list)
	counts := pickN(t, b, 100_000)
	share := float64(counts["i1"]) / 100_000
	if math.Abs(share-0.10) > 0.01 {
		t.Errorf("weight-10 instance got %.3f of the calls, want 0.10 ± 0.01", share)
	}
}

func TestPickForIsStickyAndProportional(t *testing.T) {
	t.Parallel()
	b := balancer.New(balancer.Config{Policy: balancer.Weighted})
	list := instances(2)
	list[0].Weight, list[1].Weight = 90, 10
	list[1].Version = "v2"
	b.Update(list)
	canary := 0
	for u := range 10_000 {
		key := fmt.Sprintf("user-%d", u)
		first, _ := b.PickFor(key)
		b.Done(first, time.Millisecond, balancer.Success)
		for range 3 {
			again, _ := b.PickFor(key)
			b.Done(again, time.Millisecond, balancer.Success)
			if again != first {
				t.Fatalf("%s moved from %s to %s", key, first.Instance.ID, again.Instance.ID)
			}
		}
		if first.Instance.Version == "v2" {
			canary++
		}
	}
	if share := float64(canary) / 10_000; math.Abs(share-0.10) > 0.03 {
		t.Errorf("canary share %.3f, want 0.10 ± 0.03", share)
	}
}

func TestP2CAvoidsTheBusyAndTheSlow(t *testing.T) {
	t.Parallel()
	t.Run("busy", func(t *testing.T) {
		b := balancer.New(balancer.Config{})
		all := instances(3)
		// Hold 20 calls open on i0 while it is alone, then let the others join.
		b.Update(all[:1])
		var busy *balancer.Endpoint
		for range 20 {
			busy, _ = b.Pick()
		}
		b.Update(all)
		counts := map[string]int{}
		for range 1000 {
			e, _ := b.Pick()
			counts[e.Instance.ID]++
			b.Done(e, 0, balancer.Canceled)
		}
		if counts[busy.Instance.ID] > 0 {
			t.Errorf("the instance with 20 calls in flight got %d of 1000 new calls", counts[busy.Instance.ID])
		}
	})
	t.Run("slow", func(t *testing.T) {
		b := balancer.New(balancer.Config{})
		b.Update(instances(3))
		for range 300 {
			e, _ := b.Pick()
			lat := time.Millisecond
			if e.Instance.ID == "i0" {
				lat = 50 * time.Millisecond
			}
			b.Done(e, lat, balancer.Success)
		}
		counts := pickN(t, b, 3000)
		if counts["i0"] > 300 {
			t.Errorf("the 50x slower instance got %d of 3000 calls", counts["i0"])
		}
	})
}

func TestRepeatedFailuresEjectForAGrowingIntervalThenReturn(t *testing.T) {
	t.Parallel()
	clk := newClock()
	var ejections []time.Duration
	b := balancer.New(balancer.Config{Policy: balancer.RoundRobin, EjectAfter: 3, EjectBase: time.Second, Now: clk.Now,
		OnEject: func(_ discovery.Instance, until time.Time) { ejections = append(ejections, until.Sub(clk.Now())) }})
	b.Update(instances(3))
	bad := b.Endpoints()[0]
	fail := func() {
		for range 3 {
			b.Done(bad, 0, balancer.Failure)
		}
	}
	fail()
	if !b.Ejected(bad) {
		t.Fatal("not ejected after 3 consecutive failures")
	}
	if counts := pickN(t, b, 100); counts[bad.Instance.ID] != 0 {
		t.Errorf("ejected instance picked %d times", counts[bad.Instance.ID])
	}
	clk.Advance(1100 * time.Millisecond)
	if b.Ejected(bad) {
		t.Fatal("still ejected after its interval")
	}
	fail()
	if len(ejections) != 2 || ejections[0] != time.Second || ejections[1] != 2*time.Second {
		t.Errorf("ejection intervals %v, want [1s 2s]", ejections)
	}
}

// An instance that refuses the connection is gone: ejected at the first refusal,
// not after EjectAfter of them (a dead instance answers fastest of all, and would
// otherwise draw the most calls until its registration expires).
func TestARefusedConnectionEjectsAtOnce(t *testing.T) {
	t.Parallel()
	b := balancer.New(balancer.Config{EjectAfter: 5, EjectBase: time.Second})
	b.Update(instances(3))
	dead := b.Endpoints()[1]
	b.Done(dead, time.Millisecond, balancer.Unreachable)
	if !b.Ejected(dead) {
		t.Fatal("not ejected after a refused connection")
	}
	if counts := pickN(t, b, 100); counts[dead.Instance.ID] != 0 {
		t.Errorf("a refusing instance picked %d times", counts[dead.Instance.ID])
	}
}

func TestNeverMoreThanHalfAreEjected(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 4, 5} {
		b := balancer.New(balancer.Config{EjectAfter: 1})
		b.Update(instances(n))
		for _, e := range b.Endpoints() {
			b.Done(e, 0, balancer.Failure)
		}
		ejected := 0
		for _, e := range b.Endpoints() {
			if b.Ejected(e) {
				ejected++
			}
		}
		if ejected*2 > n {
			t.Errorf("%d of %d ejected", ejected, n)
		}
	}
}

func TestStatisticsSurviveUpdates(t *testing.T) {
	t.Parallel()
	b := balancer.New(balancer.Config{EjectAfter: 2})
	b.Update(instances(3))
	e := b.Endpoints()[1]
	b.Done(e, 0, balancer.Failure)
	b.Done(e, 0, balancer.Failure)
	b.Update(instances(4)) // a new instance joins
	for _, x := range b.Endpoints() {
		if x.Instance.ID == e.Instance.ID && !b.Ejected(x) {
			t.Error("an update forgot that an instance was ejected")
		}
	}
}

func BenchmarkPickDone(b *testing.B) {
	for _, p := range []balancer.Policy{balancer.P2C, balancer.RoundRobin, balancer.Weighted} {
		b.Run(string(p), func(b *testing.B) {
			bal := balancer.New(balancer.Config{Policy: p})
			bal.Update(instances(5))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					e, _ := bal.Pick()
					bal.Done(e, time.Millisecond, balancer.Success)
				}
			})
		})
	}
}

// A pick among instances never ejected reads no clock; DoneAt takes the caller's
// reading of it and decides as Done does.
func TestPicksReadTheClockOnlyForEjectedInstancesAndDoneAtDecidesAsDone(t *testing.T) {
	clk := newClock()
	var reads atomic.Int64
	b := balancer.New(balancer.Config{EjectAfter: 2, Now: func() time.Time { reads.Add(1); return clk.Now() }})
	b.Update(instances(2))
	for range 10 {
		e, err := b.Pick()
		if err != nil {
			t.Fatal(err)
		}
		b.DoneAt(e, time.Millisecond, balancer.Failure, clk.Now())
		if n := e.InFlight(); n != 0 {
			t.Fatalf("%d in flight after DoneAt", n)
		}
		if b.Ejected(e) {
			break
		}
	}
	ejected := 0
	for _, e := range b.Endpoints() {
		if b.Ejected(e) {
			ejected++
		}
	}
	if ejected != 1 {
		t.Fatalf("%d ejected after failures reported through DoneAt, want 1", ejected)
	}
	before := reads.Load()
	b.Pick()
	if reads.Load() == before {
		t.Error("a pick with an ejected instance did not read the clock")
	}
	fresh := balancer.New(balancer.Config{Now: func() time.Time { reads.Add(1); return clk.Now() }})
	fresh.Update(instances(3))
	before = reads.Load()
	for range 10 {
		fresh.Pick()
	}
	if n := reads.Load() - before; n != 0 {
		t.Errorf("%d clock reads for picks among instances never ejected, want 0", n)
	}
}
