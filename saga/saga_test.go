package saga_test

import (
	"context"
	"database/sql"
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
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/saga"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/store/storetest"
)

// trip is the saga of the tests: book a flight, a hotel, then pay (the pivot), then
// send the tickets. Each step and compensation is logged, and effects are rows.
type trip struct {
	Traveller string `json:"traveller"`
	Flight    string `json:"flight,omitempty"`
	Hotel     string `json:"hotel,omitempty"`
}

var schema = fstest.MapFS{"00001_effects.sql": {Data: []byte(`-- +goose Up
CREATE TABLE effects (saga TEXT NOT NULL, step TEXT NOT NULL, undone INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (saga, step));
CREATE TABLE history (seq INTEGER, saga TEXT NOT NULL, change TEXT NOT NULL, step TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL);
`)}}

func openDB(t *testing.T, url string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), store.Config{URL: url, Migrations: schema})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background(), saga.Migrations(), nil); err != nil {
		t.Fatal(err)
	}
	return db
}

// world decides how the trip's steps behave, and records what they did.
type world struct {
	db       *store.DB
	mu       sync.Mutex
	calls    []string
	refuse   map[string]string        // step → refusal reason
	fail     map[string]int           // step → transient failures left
	block    map[string]chan struct{} // step → blocks until closed (or ctx ends)
	undoFail int                      // transient failures of every undo
}

func newWorld(db *store.DB) *world {
	return &world{db: db, refuse: map[string]string{}, fail: map[string]int{}, block: map[string]chan struct{}{}}
}

func (w *world) step(name string, undo bool) func(ctx context.Context, d *trip) error {
	return func(ctx context.Context, d *trip) error {
		w.mu.Lock()
		action := name
		if undo {
			action = "undo " + name
		}
		w.calls = append(w.calls, d.Traveller+":"+action)
		block := w.block[name]
		reason := w.refuse[name]
		failing := false
		if undo && w.undoFail > 0 {
			w.undoFail--
			failing = true
		} else if !undo && w.fail[name] > 0 {
			w.fail[name]--
			failing = true
		}
		w.mu.Unlock()
		if block != nil && !undo {
			select {
			case <-block:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if failing {
			return errors.New("connection reset")
		}
		if undo {
			_, err := w.db.ExecContext(ctx, `UPDATE effects SET undone = 1 WHERE saga = $1 AND step = $2`, d.Traveller, name)
			return err
		}
		if reason != "" {
			return saga.Fail("%s", reason)
		}
		_, err := w.db.ExecContext(ctx, `INSERT INTO effects (saga, step) VALUES ($1, $2) ON CONFLICT DO NOTHING`, d.Traveller, name)
		switch name {
		case "flight":
			d.Flight = "SY" + d.Traveller
		case "hotel":
			d.Hotel = "room-" + d.Traveller
		}
		return err
	}
}

func (w *world) definition(deadline time.Duration) saga.Definition[trip] {
	return saga.Definition[trip]{
		Name:     "trip",
		Deadline: deadline,
		Steps: []saga.Step[trip]{
			{Name: "flight", Do: w.step("flight", false), Undo: w.step("flight", true)},
			{Name: "hotel", Do: w.step("hotel", false), Undo: w.step("hotel", true)},
			{Name: "pay", Do: w.step("pay", false), Pivot: true, Unrecorded: true},
			{Name: "tickets", Do: w.step("tickets", false)},
		},
	}
}

func (w *world) callsOf(traveller string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, c := range w.calls {
		if rest, ok := strings.CutPrefix(c, traveller+":"); ok {
			out = append(out, rest)
		}
	}
	return out
}

func historyHook(ctx context.Context, tx *sql.Tx, t saga.Transition[trip]) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO history (seq, saga, change, step, status, reason) VALUES ((SELECT count(*) FROM history), $1, $2, $3, $4, $5)`,
		t.ID, string(t.Change), t.Step, string(t.Status), t.Reason)
	return err
}

func history(t *testing.T, db *store.DB, id string) []string {
	t.Helper()
	rows, err := db.Query(`SELECT change, step, status, reason FROM history WHERE saga = $1 ORDER BY seq`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var change, step, status, reason string
		rows.Scan(&change, &step, &status, &reason)
		out = append(out, strings.TrimRight(strings.Join([]string{change, step, status, reason}, " "), " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func orchestrator(t *testing.T, db *store.DB, def saga.Definition[trip], cfg saga.Config[trip]) *saga.Orchestrator[trip] {
	t.Helper()
	if cfg.OnTransition == nil {
		cfg.OnTransition = historyHook
	}
	if cfg.Backoff == 0 {
		cfg.Backoff, cfg.MaxBackoff = time.Millisecond, 10*time.Millisecond
	}
	o, err := saga.New(db, def, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { o.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return o
}

func start(t *testing.T, o *saga.Orchestrator[trip], id string) {
	t.Helper()
	if err := o.Start(context.Background(), id, trip{Traveller: id}, nil); err != nil {
		t.Fatal(err)
	}
}

func wait(t *testing.T, o *saga.Orchestrator[trip], id string, within time.Duration) *saga.Instance[trip] {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		inst, err := o.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if inst.Status.Terminal() {
			return inst
		}
		if time.Now().After(deadline) {
			t.Fatalf("saga %s still %s at step %d after %v", id, inst.Status, inst.Step, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestASagaRunsItsStepsAndRecordsEachTransition(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		db := openDB(t, url)
		w := newWorld(db)
		o := orchestrator(t, db, w.definition(time.Minute), saga.Config[trip]{})
		finished := o.Finished("ann")
		start(t, o, "ann")
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Fatal("Finished never closed")
		}
		inst := wait(t, o, "ann", time.Second)
		if inst.Status != saga.Done || inst.Data.Flight != "SYann" || inst.Data.Hotel != "room-ann" {
			t.Errorf("saga %+v, want done with the data its steps set", inst)
		}
		if got, want := w.callsOf("ann"), []string{"flight", "hotel", "pay", "tickets"}; !slices.Equal(got, want) {
			t.Errorf("calls %v, want %v", got, want)
		}
		want := []string{"started  running", "step_done flight running", "step_done hotel running",
			"step_done pay done", "step_done tickets done", "done  done"}
		if got := history(t, db, "ann"); !slices.Equal(got, want) {
			t.Errorf("transitions\n got %q\nwant %q", got, want)
		}
	})
}

func TestARefusalCompensatesInReverse(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		db := openDB(t, url)
		w := newWorld(db)
		w.refuse["pay"] = "card declined"
		o := orchestrator(t, db, w.definition(time.Minute), saga.Config[trip]{})
		start(t, o, "bob")
		inst := wait(t, o, "bob", 10*time.Second)
		if inst.Status != saga.Compensated || inst.Reason != "card declined" {
			t.Errorf("saga %s %q, want compensated for the card", inst.Status, inst.Reason)
		}
		if got, want := w.callsOf("bob"), []string{"flight", "hotel", "pay", "undo hotel", "undo flight"}; !slices.Equal(got, want) {
			t.Errorf("calls %v, want %v", got, want)
		}
		var undone int
		db.QueryRow(`SELECT count(*) FROM effects WHERE saga = 'bob' AND undone = 1`).Scan(&undone)
		if undone != 2 {
			t.Errorf("%d effects undone, want 2", undone)
		}
		want := []string{"started  running", "step_done flight running", "step_done hotel running",
			"compensating pay compensating card declined", "step_undone pay compensating card declined",
			"step_undone hotel compensating card declined", "step_undone flight compensated card declined", "compensated  compensated card declined"}
		if got := history(t, db, "bob"); !slices.Equal(got, want) {
			t.Errorf("transitions\n got %q\nwant %q", got, want)
		}
	})
}

func TestTransientFailuresAreRetriedAndCompensationsToo(t *testing.T) {
	t.Parallel()
	db := openDB(t, storetest.Targets(t)[0].URL)
	w := newWorld(db)
	w.fail["hotel"] = 3
	o := orchestrator(t, db, w.definition(time.Minute), saga.Config[trip]{})
	start(t, o, "cat")
	if inst := wait(t, o, "cat", 10*time.Second); inst.Status != saga.Done {
		t.Fatalf("saga %s, want done after the hotel's three failures", inst.Status)
	}
	if got := w.callsOf("cat"); !slices.Equal(got, []string{"flight", "hotel", "hotel", "hotel", "hotel", "pay", "tickets"}) {
		t.Errorf("calls %v", got)
	}

	w.refuse["hotel"] = "fully booked"
	w.undoFail = 4
	start(t, o, "dan")
	if inst := wait(t, o, "dan", 10*time.Second); inst.Status != saga.Compensated || inst.Reason != "fully booked" {
		t.Fatalf("saga %s %q", inst.Status, inst.Reason)
	}
	undos := 0
	for _, c := range w.callsOf("dan") {
		if strings.HasPrefix(c, "undo") {
			undos++
		}
	}
	if undos != 6 { // hotel and flight, after four failures
		t.Errorf("%d undo calls, want 6: %v", undos, w.callsOf("dan"))
	}
}

func TestADeadlineCompensatesBeforeThePivotOnly(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		db := openDB(t, url)
		w := newWorld(db)
		w.block["hotel"] = make(chan struct{}) // never answers
		o := orchestrator(t, db, w.definition(200*time.Millisecond), saga.Config[trip]{})
		begun := time.Now()
		start(t, o, "eve")
		inst := wait(t, o, "eve", 5*time.Second)
		if inst.Status != saga.Compensated || !strings.HasPrefix(inst.Reason, "timed out in hotel") {
			t.Errorf("saga %s %q, want compensated for the hotel's timeout", inst.Status, inst.Reason)
		}
		if took := time.Since(begun); took > 2*time.Second {
			t.Errorf("took %v to give up on a 200ms deadline", took)
		}
		// The hotel was in flight: it is undone too, in case it happened.
		if got := w.callsOf("eve"); !slices.Equal(got, []string{"flight", "hotel", "undo hotel", "undo flight"}) {
			t.Errorf("calls %v", got)
		}

		// Past the pivot the deadline no longer applies: tickets fail for longer than
		// the deadline, and the saga still ends done.
		w.mu.Lock()
		delete(w.block, "hotel")
		w.fail["tickets"] = 1 << 30
		w.mu.Unlock()
		start(t, o, "fay")
		time.Sleep(400 * time.Millisecond)
		w.mu.Lock()
		w.fail["tickets"] = 0
		w.mu.Unlock()
		if inst := wait(t, o, "fay", 5*time.Second); inst.Status != saga.Done {
			t.Errorf("saga past its pivot: %s %q, want done", inst.Status, inst.Reason)
		}
	})
}

func TestARefusalPastThePivotLeavesTheSagaStuck(t *testing.T) {
	t.Parallel()
	db := openDB(t, storetest.Targets(t)[0].URL)
	w := newWorld(db)
	w.refuse["tickets"] = "no printer"
	o := orchestrator(t, db, w.definition(time.Minute), saga.Config[trip]{})
	start(t, o, "gus")
	inst := wait(t, o, "gus", 5*time.Second)
	if inst.Status != saga.Stuck || inst.Reason != "tickets refused after the pivot: no printer" {
		t.Errorf("saga %s %q", inst.Status, inst.Reason)
	}
	if got := w.callsOf("gus"); slices.Contains(got, "undo flight") {
		t.Errorf("a saga past its pivot was compensated: %v", got)
	}
}

func TestAFailingHookRollsTheTransitionBack(t *testing.T) {
	t.Parallel()
	db := openDB(t, storetest.Targets(t)[0].URL)
	w := newWorld(db)
	var fails atomic.Int32
	fails.Store(2)
	hook := func(ctx context.Context, tx *sql.Tx, tr saga.Transition[trip]) error {
		if err := historyHook(ctx, tx, tr); err != nil {
			return err
		}
		if tr.Change == saga.ChangeStepDone && tr.Step == "hotel" && fails.Add(-1) >= 0 {
			return errors.New("outbox full")
		}
		return nil
	}
	o := orchestrator(t, db, w.definition(time.Minute), saga.Config[trip]{OnTransition: hook})
	start(t, o, "hal")
	if inst := wait(t, o, "hal", 5*time.Second); inst.Status != saga.Done {
		t.Fatalf("saga %s", inst.Status)
	}
	h := history(t, db, "hal")
	if n := strings.Count(strings.Join(h, "\n"), "step_done hotel"); n != 1 {
		t.Errorf("hotel's transition recorded %d times, want once: %q", n, h)
	}
	if got := w.callsOf("hal"); !slices.Equal(got, []string{"flight", "hotel", "hotel", "hotel", "pay", "tickets"}) {
		t.Errorf("calls %v: the step runs again after its transition rolled back", got)
	}

	// And a Start whose own writes fail records no saga.
	err := o.Start(context.Background(), "ida", trip{Traveller: "ida"}, func(*sql.Tx) error { return errors.New("no stock table") })
	if err == nil {
		t.Fatal("Start succeeded")
	}
	if _, err := o.Get(context.Background(), "ida"); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("a failed Start left a saga: %v", err)
	}
}

func TestAStalledOwnerIsFencedOff(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		db := openDB(t, url)
		w := newWorld(db)
		gate := make(chan struct{})
		w.block["hotel"] = gate
		// a starts the saga and stalls in the hotel step without renewing (its Run is
		// not running); b takes the saga over when a's lease expires.
		a, err := saga.New(db, w.definition(time.Minute), saga.Config[trip]{Owner: "a", Lease: 300 * time.Millisecond, OnTransition: historyHook})
		if err != nil {
			t.Fatal(err)
		}
		start(t, a, "jo")
		for !slices.Contains(w.callsOf("jo"), "hotel") {
			time.Sleep(time.Millisecond)
		}
		w.mu.Lock()
		delete(w.block, "hotel")
		w.mu.Unlock()
		b := orchestrator(t, db, w.definition(time.Minute), saga.Config[trip]{Owner: "b", Lease: 300 * time.Millisecond, Scan: 50 * time.Millisecond})
		if inst := wait(t, b, "jo", 5*time.Second); inst.Status != saga.Done {
			t.Fatalf("taken-over saga: %s", inst.Status)
		}
		close(gate) // a wakes up, finishes its hotel step, and must not record anything
		time.Sleep(200 * time.Millisecond)
		h := history(t, db, "jo")
		if n := strings.Count(strings.Join(h, "\n"), "step_done hotel"); n != 1 {
			t.Errorf("hotel's transition recorded %d times, want once (by b): %q", n, h)
		}
		if inst, _ := b.Get(context.Background(), "jo"); inst.Status != saga.Done {
			t.Errorf("after the stalled owner woke: %s", inst.Status)
		}
	})
}

func TestStoppingGivesTheSagasToTheNextOrchestrator(t *testing.T) {
	t.Parallel()
	db := openDB(t, storetest.Targets(t)[0].URL)
	w := newWorld(db)
	gate := make(chan struct{})
	w.block["pay"] = gate
	a, _ := saga.New(db, w.definition(time.Minute), saga.Config[trip]{Owner: "a", Lease: time.Hour, Drain: 100 * time.Millisecond, OnTransition: historyHook})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() { stopped <- a.Run(ctx) }()
	start(t, a, "kim")
	for !slices.Contains(w.callsOf("kim"), "pay") {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	close(gate)
	// a held an hour-long lease, and gave it up on stopping: b continues at once.
	b := orchestrator(t, db, w.definition(time.Minute), saga.Config[trip]{Owner: "b", Scan: 20 * time.Millisecond})
	if inst := wait(t, b, "kim", 3*time.Second); inst.Status != saga.Done {
		t.Fatalf("saga %s", inst.Status)
	}
}

func TestStepsContinueTheTraceThatStartedTheSaga(t *testing.T) {
	t.Parallel()
	db := openDB(t, storetest.Targets(t)[0].URL)
	w := newWorld(db)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	o := orchestrator(t, db, w.definition(time.Minute), saga.Config[trip]{Tracer: tp.Tracer("test")})
	ctx, root := tp.Tracer("test").Start(context.Background(), "POST /trips")
	if err := o.Start(ctx, "liz", trip{Traveller: "liz"}, nil); err != nil {
		t.Fatal(err)
	}
	root.End()
	wait(t, o, "liz", 5*time.Second)
	var names []string
	for _, s := range spans.Ended() {
		if s.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Errorf("span %s is in another trace", s.Name())
		}
		names = append(names, s.Name())
	}
	for _, want := range []string{"saga trip do flight", "saga trip do hotel", "saga trip do pay", "saga trip do tickets"} {
		if !slices.Contains(names, want) {
			t.Errorf("no span %q in %v", want, names)
		}
	}
}

func TestDefinitionsAreChecked(t *testing.T) {
	t.Parallel()
	db := openDB(t, storetest.Targets(t)[0].URL)
	do := func(context.Context, *trip) error { return nil }
	for name, def := range map[string]saga.Definition[trip]{
		"no steps":                    {Name: "x"},
		"no name":                     {Steps: []saga.Step[trip]{{Name: "a", Do: do}}},
		"no Do":                       {Name: "x", Steps: []saga.Step[trip]{{Name: "a"}}},
		"two pivots":                  {Name: "x", Steps: []saga.Step[trip]{{Name: "a", Do: do, Pivot: true}, {Name: "b", Do: do, Pivot: true}}},
		"unrecorded before the pivot": {Name: "x", Steps: []saga.Step[trip]{{Name: "a", Do: do, Unrecorded: true}, {Name: "b", Do: do, Pivot: true}, {Name: "c", Do: do}}},
		"unrecorded last":             {Name: "x", Steps: []saga.Step[trip]{{Name: "a", Do: do, Pivot: true}, {Name: "b", Do: do, Unrecorded: true}}},
	} {
		if _, err := saga.New(db, def, saga.Config[trip]{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestManySagasAtOnce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		db := openDB(t, url)
		w := newWorld(db)
		o := orchestrator(t, db, w.definition(time.Minute), saga.Config[trip]{MaxConcurrent: 16})
		var wg sync.WaitGroup
		for i := range 200 {
			wg.Go(func() {
				id := fmt.Sprint("t", i)
				if i%5 == 0 {
					id = fmt.Sprint("r", i) // refused below
				}
				if err := o.Start(context.Background(), id, trip{Traveller: id}, nil); err != nil {
					t.Error(err)
				}
			})
		}
		w.mu.Lock()
		w.refuse["hotel"] = "" // no refusals here: decided per saga below
		w.mu.Unlock()
		wg.Wait()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var open int
			db.QueryRow(`SELECT count(*) FROM sagas WHERE status NOT IN ('done', 'compensated')`).Scan(&open)
			if open == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d sagas unfinished", open)
			}
			time.Sleep(10 * time.Millisecond)
		}
		var done, effects int
		db.QueryRow(`SELECT count(*) FROM sagas WHERE status = 'done'`).Scan(&done)
		db.QueryRow(`SELECT count(*) FROM effects`).Scan(&effects)
		if done != 200 || effects != 800 {
			t.Errorf("%d done, %d effects; want 200 and 800", done, effects)
		}
	})
}

// An orchestrator with every slot taken and as many sagas again waiting refuses the
// next one at once — Unavailable, retry in a second, nothing recorded — rather than
// queue it past its deadline; once slots free up, it takes new sagas again.
func TestAFullOrchestratorRefusesNewSagasUpFront(t *testing.T) {
	t.Parallel()
	db := openDB(t, storetest.Targets(t)[0].URL)
	w := newWorld(db)
	release := make(chan struct{})
	w.block["flight"] = release
	o := orchestrator(t, db, w.definition(time.Minute), saga.Config[trip]{MaxConcurrent: 1})
	start(t, o, "ann") // runs, blocked in its first step
	for deadline := time.Now().Add(5 * time.Second); len(w.callsOf("ann")) == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("ann's saga never started its first step")
		}
	}
	start(t, o, "bob") // waits for the slot
	err := o.Start(context.Background(), "cid", trip{Traveller: "cid"}, nil)
	if problem.KindOf(err) != problem.Unavailable {
		t.Fatalf("third saga: %v, want Unavailable", err)
	}
	var pe *problem.Error
	if !errors.As(err, &pe) || pe.RetryAfter != time.Second {
		t.Errorf("refusal %+v, want Retry-After 1s", err)
	}
	if _, err := o.Get(context.Background(), "cid"); err == nil {
		t.Error("the refused saga was recorded")
	}
	close(release)
	wait(t, o, "ann", 5*time.Second)
	wait(t, o, "bob", 5*time.Second)
	start(t, o, "dee")
	wait(t, o, "dee", 5*time.Second)
}
