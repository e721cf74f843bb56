package saga_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"

	"github.com/switchyard/switchyard/resilience"
	"github.com/switchyard/switchyard/saga"
	"github.com/switchyard/switchyard/store/storetest"
)

// A dependency is down for two seconds behind a circuit breaker that opens at the
// first failure for 500ms. The saga's step, past its pivot and with a backoff of a
// few milliseconds, does not spend its tries against the open breaker: the one try
// the breaker refuses after each failure tells the saga how long it stays open, and
// the next lands when it half-opens, as its probe. So the dependency sees about one
// try per open period (a spinning saga would make hundreds in two seconds), and
// the saga finishes within an open period of the dependency coming back.
func TestASagaStepWaitsForTheBreakerToHalfOpen(t *testing.T) {
	t.Parallel()
	db := openDB(t, storetest.Targets(t)[0].URL)
	var up atomic.Bool
	var reached atomic.Int64
	var cameBack time.Time
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		reached.Add(1)
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	const openFor = 500 * time.Millisecond
	policy, err := resilience.New(resilience.Config{Dependency: "bank", MaxAttempts: 1, ConsecutiveFailures: 1, OpenFor: openFor})
	if err != nil {
		t.Fatal(err)
	}
	var tries, refused atomic.Int64
	call := func(ctx context.Context, _ *trip) error {
		tries.Add(1)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, nil)
		resp, err := policy.Do(ctx, req, http.DefaultTransport.RoundTrip)
		if errors.Is(err, circuitbreaker.ErrOpen) {
			refused.Add(1)
		}
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 500 {
			return errors.New(resp.Status)
		}
		return nil
	}
	def := saga.Definition[trip]{Name: "transfer", Steps: []saga.Step[trip]{{Name: "pay", Do: call, Pivot: true}}}
	o, err := saga.New(db, def, saga.Config[trip]{Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { o.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	if err := o.Start(context.Background(), "t1", trip{Traveller: "t1"}, nil); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(2*time.Second, func() {
		mu.Lock()
		cameBack = time.Now()
		mu.Unlock()
		up.Store(true)
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		inst, err := o.Get(context.Background(), "t1")
		if err != nil {
			t.Fatal(err)
		}
		if inst.Status.Terminal() {
			if inst.Status != saga.Done {
				t.Fatalf("saga %s %q, want done", inst.Status, inst.Reason)
			}
			mu.Lock()
			late := inst.Updated.Sub(cameBack)
			mu.Unlock()
			t.Logf("%d tries, %d reached the bank, %d refused by the open breaker; done %v after the bank came back",
				tries.Load(), reached.Load(), refused.Load(), late.Round(time.Millisecond))
			if refused.Load() > reached.Load() || tries.Load() > 14 {
				t.Errorf("%d tries, %d refused by the open breaker; want at most one refused per failure, the rest waiting for it to half-open", tries.Load(), refused.Load())
			}
			if n := reached.Load(); n > 7 {
				t.Errorf("the bank saw %d tries in 2s with a breaker open for %v at a time; want about one per open period", n, openFor)
			}
			if late > openFor+300*time.Millisecond {
				t.Errorf("done %v after the bank came back; want within an open period (%v)", late, openFor)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("saga still %s after 10s", inst.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A compensation that keeps failing, and a step past the pivot that keeps
// failing, each leave their saga stuck after StuckAfter, with the step and the
// last error as its reason — never spinning unseen.
func TestASagaThatCannotFinishIsDeclaredStuck(t *testing.T) {
	t.Parallel()
	db := openDB(t, storetest.Targets(t)[0].URL)
	w := newWorld(db)
	o := orchestrator(t, db, w.definition(time.Minute), saga.Config[trip]{StuckAfter: 300 * time.Millisecond})

	w.mu.Lock()
	w.refuse["hotel"] = "fully booked"
	w.undoFail = 1 << 30
	w.mu.Unlock()
	start(t, o, "hal")
	inst := wait(t, o, "hal", 5*time.Second)
	if inst.Status != saga.Stuck || !strings.HasPrefix(inst.Reason, "undoing hotel kept failing for") || !strings.Contains(inst.Reason, "connection reset") {
		t.Errorf("a compensation failing for good: saga %s %q; want stuck, naming the undo and its error", inst.Status, inst.Reason)
	}

	w.mu.Lock()
	delete(w.refuse, "hotel")
	w.undoFail = 0
	w.fail["tickets"] = 1 << 30
	w.mu.Unlock()
	start(t, o, "ida")
	inst = wait(t, o, "ida", 5*time.Second)
	if inst.Status != saga.Stuck || !strings.HasPrefix(inst.Reason, "tickets kept failing for") {
		t.Errorf("a step past the pivot failing for good: saga %s %q; want stuck", inst.Status, inst.Reason)
	}
	if got := history(t, db, "ida"); got[len(got)-1] != "stuck tickets stuck "+inst.Reason {
		t.Errorf("last transition %q; want the stuck one, with its reason", got[len(got)-1])
	}
}

// An auditor finds, in the sagas table, the sagas stuck and those unfinished past
// their deadline by more than the grace; finished ones and ones on time pass.
func TestAuditFindsStuckAndLateSagas(t *testing.T) {
	t.Parallel()
	db := openDB(t, storetest.Targets(t)[0].URL)
	w := newWorld(db)
	w.refuse["tickets"] = "no printer"
	o := orchestrator(t, db, w.definition(time.Hour), saga.Config[trip]{})
	start(t, o, "stuck")
	wait(t, o, "stuck", 5*time.Second)
	w.mu.Lock()
	delete(w.refuse, "tickets")
	w.block["hotel"] = make(chan struct{})
	w.mu.Unlock()
	start(t, o, "late") // blocks in hotel: running, its deadline an hour away
	examined, findings, err := saga.Audit(context.Background(), db, time.Now(), 10*time.Second)
	if err != nil || examined != 2 || len(findings) != 1 || !strings.Contains(findings[0], "trip saga stuck is stuck: tickets refused after the pivot: no printer") {
		t.Fatalf("audit now: %d examined, %q, %v; want the stuck one only", examined, findings, err)
	}
	_, findings, _ = saga.Audit(context.Background(), db, time.Now().Add(2*time.Hour), 10*time.Second)
	if len(findings) != 2 || !strings.Contains(strings.Join(findings, "\n"), "trip saga late is still running at step") {
		t.Errorf("audit two hours later: %q; want the late one too", findings)
	}
	close(w.block["hotel"])
}
