// Package saga runs orchestrated sagas: a sequence of steps across services, each
// with a compensation, persisted so that a crash anywhere loses nothing.
//
// A Definition lists the steps. Start records a new instance in the caller's
// transaction (with the caller's own state, so an order and its saga exist together
// or not at all) and runs it. Each step's outcome and the step to run next are
// recorded in one transaction, together with whatever the OnTransition hook writes
// — typically the application's state and its outbox events — so state, next
// command and events never disagree.
//
// Failure model:
//   - A step refuses with Fail (out of stock, card declined): the saga compensates,
//     undoing that step and the ones before it in reverse, and ends compensated
//     with the reason.
//   - Any other error is transient: the step is tried again with backoff, until the
//     saga's deadline; past it, the saga compensates. The deadline bounds the whole
//     saga up to its pivot.
//   - The pivot is the step after which the saga can only go forward (taking the
//     money): from it on, steps are retried, deadline or not. A pivot that refuses
//     compensates like any step; a step after the pivot that refuses leaves the
//     saga stuck, for a person (and `switchyard check`) to see.
//   - Compensations are retried.
//   - A failure that says when to come back — a dependency's Retry-After, as an
//     open circuit breaker gives it — is waited out rather than retried into: the
//     next try comes when the breaker half-opens, never against it.
//   - A step past the pivot, or a compensation, that keeps failing for StuckAfter
//     leaves the saga stuck with the last error as its reason: visible, alerted, and
//     never silently spinning.
//
// Steps and compensations must therefore be idempotent, and a compensation must
// cope with a step that never happened or is still in flight elsewhere (a release
// that arrives before its reservation leaves a marker the reservation respects).
//
// Crash recovery: every instance is leased by the orchestrator running it, which
// renews its leases while alive. An orchestrator that dies stops renewing; after the
// lease another one (or the same service restarted) takes the saga over and
// continues from its recorded step, repeating at most the step that was in flight.
// Writes are fenced by ownership, so a stalled former owner cannot overwrite its
// successor.
//
// No library in Go's ecosystem persists orchestration with this contract on the
// service's own SQL database (Temporal and Cadence are servers of their own), so
// this package is ours; it is about 500 lines.
package saga

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations create the sagas table; apply them with store.DB.Migrate.
func Migrations() store.Migrations {
	sub, _ := fs.Sub(migrations, "migrations")
	return store.Migrations{Table: "saga_schema_version", SQLite: sub, Postgres: sub}
}

// Status is where a saga instance is.
type Status string

// Statuses. Done, Compensated and Stuck are terminal.
const (
	Running      Status = "running"
	Compensating Status = "compensating"
	Done         Status = "done"
	Compensated  Status = "compensated"
	Stuck        Status = "stuck"
)

// Terminal reports whether a saga in s will change no more.
func (s Status) Terminal() bool { return s == Done || s == Compensated || s == Stuck }

// Failure is a step's refusal: a business outcome, not a fault. Its reason ends up
// on the compensated saga.
type Failure struct{ Reason string }

func (f *Failure) Error() string { return f.Reason }

// Fail returns a step's refusal with a reason for people.
func Fail(format string, args ...any) error {
	return &Failure{Reason: fmt.Sprintf(format, args...)}
}

// Step is one step of a saga.
type Step[T any] struct {
	// Name identifies the step in records, spans and metrics (reserve_stock).
	Name string
	// Do performs the step. It may change data, which is saved with its outcome. It
	// must be idempotent: after a crash it runs again.
	Do func(ctx context.Context, data *T) error
	// Undo compensates Do: idempotent, and harmless when Do never happened or is
	// still in flight. Nil when there is nothing to undo.
	Undo func(ctx context.Context, data *T) error
	// Pivot marks the step from which the saga only goes forward.
	Pivot bool
	// About and UndoAbout say what Do and Undo do, for the design document.
	About, UndoAbout string
	// Unrecorded skips the transaction recording this step's completion: it is
	// recorded with the next step's, in one transaction. A crash in between repeats
	// the step, so it must be cheap to repeat. Allowed only from the pivot on,
	// where a saga never compensates.
	Unrecorded bool
}

// Definition is a kind of saga.
type Definition[T any] struct {
	// Name identifies the kind (order); instances of several kinds can share a table.
	Name  string
	Steps []Step[T]
	// Deadline bounds a saga from its start to its pivot [30s].
	Deadline time.Duration
}

// StepInfo describes a step of a saga kind, for documentation.
type StepInfo struct {
	Name, About, UndoAbout string
	// Compensated says whether the step has an Undo.
	Compensated, Pivot bool
}

// Describe lists the kind's steps in order.
func (d Definition[T]) Describe() []StepInfo {
	out := make([]StepInfo, len(d.Steps))
	for i, s := range d.Steps {
		out[i] = StepInfo{Name: s.Name, About: s.About, UndoAbout: s.UndoAbout, Compensated: s.Undo != nil, Pivot: s.Pivot}
	}
	return out
}

// Change is what happened to a saga in a transition.
type Change string

// Changes.
const (
	ChangeStarted      Change = "started"
	ChangeStepDone     Change = "step_done"
	ChangeCompensating Change = "compensating"
	ChangeStepUndone   Change = "step_undone"
	ChangeDone         Change = "done"
	ChangeCompensated  Change = "compensated"
	ChangeStuck        Change = "stuck"
)

// Transition is one recorded change of a saga, given to the OnTransition hook.
type Transition[T any] struct {
	Saga   string // the definition's name
	ID     string
	Change Change
	// Step is the step done or undone; for Compensating the step that failed.
	Step   string
	Status Status
	Reason string
	Data   *T
	At     time.Time
}

// Config configures an Orchestrator. Zero fields take the default in brackets.
type Config[T any] struct {
	// Owner names this orchestrator in leases [host-pid-random].
	Owner string
	// Lease is how long a saga stays with an orchestrator that stops renewing it:
	// the longest a crashed process's sagas wait to be taken over [5s].
	Lease time.Duration
	// Scan is how often sagas with expired leases are looked for [1s].
	Scan time.Duration
	// MaxConcurrent caps the sagas this orchestrator runs at once [256]. Once as
	// many again wait for a slot, Start refuses new sagas (Unavailable, retry in a
	// second) rather than queue them past their deadlines.
	MaxConcurrent int
	// Backoff and MaxBackoff space the retries of a failing step or compensation
	// (exponential, full jitter) [50ms, 2s].
	Backoff, MaxBackoff time.Duration
	// TryTimeout bounds one try of a step past the pivot or a compensation, which
	// the saga's deadline does not bound [10s].
	TryTimeout time.Duration
	// StuckAfter is how long a step past the pivot, or a compensation, may keep
	// failing before the saga is declared stuck for a person to look at [10m].
	StuckAfter time.Duration
	// Drain bounds how long Run, when stopping, waits for steps in flight [5s].
	Drain time.Duration
	// OnTransition runs inside the transaction recording each transition; an error
	// rolls it back (and the step is tried again).
	OnTransition func(ctx context.Context, tx *sql.Tx, t Transition[T]) error
	Log          *slog.Logger
	Tracer       trace.Tracer
	Metrics      prometheus.Registerer
	// Now returns the current time [time.Now].
	Now func() time.Time
}

// Instance is a saga's recorded state.
type Instance[T any] struct {
	ID       string
	Status   Status
	Step     int
	Data     T
	Reason   string
	Deadline time.Time
	Created  time.Time
	Updated  time.Time

	// pending are transitions of unrecorded steps, recorded with the next.
	pending []Transition[T]
}

// Orchestrator runs the instances of one Definition.
type Orchestrator[T any] struct {
	db    *store.DB
	def   Definition[T]
	cfg   Config[T]
	pivot int // index of the pivot step; len(Steps) when none

	mu       sync.Mutex
	running  map[string]bool
	waiters  map[string][]chan struct{}
	stopping bool
	stopped  chan struct{} // closed when stopping begins: waits between tries end
	wg       sync.WaitGroup
	slots    chan struct{}
	waiting  atomic.Int64 // launched sagas waiting for a slot

	metrics metrics
}

// New returns an orchestrator of def on db, whose sagas table exists (Migrations).
func New[T any](db *store.DB, def Definition[T], cfg Config[T]) (*Orchestrator[T], error) {
	if db == nil || def.Name == "" || len(def.Steps) == 0 {
		return nil, errors.New("saga: a database, a name and steps are required")
	}
	pivot := len(def.Steps)
	for i, s := range def.Steps {
		if s.Name == "" || s.Do == nil {
			return nil, fmt.Errorf("saga %s: step %d needs a name and Do", def.Name, i)
		}
		if s.Pivot {
			if pivot != len(def.Steps) {
				return nil, fmt.Errorf("saga %s: two pivots (%s, %s)", def.Name, def.Steps[pivot].Name, s.Name)
			}
			pivot = i
		}
	}
	for i, st := range def.Steps {
		if st.Unrecorded && (i < pivot || i == len(def.Steps)-1) {
			return nil, fmt.Errorf("saga %s: step %s can be unrecorded only from the pivot on, and not last", def.Name, st.Name)
		}
	}
	if def.Deadline <= 0 {
		def.Deadline = 30 * time.Second
	}
	if cfg.Owner == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		cfg.Owner = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
	}
	defaults := []struct {
		d *time.Duration
		v time.Duration
	}{{&cfg.Lease, 5 * time.Second}, {&cfg.Scan, time.Second}, {&cfg.Backoff, 50 * time.Millisecond},
		{&cfg.MaxBackoff, 2 * time.Second}, {&cfg.TryTimeout, 10 * time.Second}, {&cfg.Drain, 5 * time.Second},
		{&cfg.StuckAfter, 10 * time.Minute}}
	for _, d := range defaults {
		if *d.d <= 0 {
			*d.d = d.v
		}
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 256
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider().Tracer("")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	o := &Orchestrator[T]{
		db: db, def: def, cfg: cfg, pivot: pivot,
		running: map[string]bool{}, waiters: map[string][]chan struct{}{},
		slots: make(chan struct{}, cfg.MaxConcurrent), stopped: make(chan struct{}),
	}
	if err := o.metrics.register(cfg.Metrics, def.Name); err != nil {
		return nil, err
	}
	return o, nil
}

// Owner is the name under which this orchestrator leases sagas.
func (o *Orchestrator[T]) Owner() string { return o.cfg.Owner }

var propagator = propagation.TraceContext{}

// Start records a new saga with id and data, runs with(tx) in the same
// transaction for the caller's own writes, commits, and starts running the saga.
// The saga continues the trace of ctx. When the orchestrator is stopping the saga
// is recorded but left for the next one to take over.
func (o *Orchestrator[T]) Start(ctx context.Context, id string, data T, with func(*sql.Tx) error) error {
	if o.waiting.Load() >= int64(o.cfg.MaxConcurrent) {
		o.metrics.refused.Inc()
		return &problem.Error{Kind: problem.Unavailable, RetryAfter: time.Second,
			Detail: fmt.Sprintf("too many %ss in progress here; try again shortly", o.def.Name)}
	}
	raw, err := json.Marshal(&data)
	if err != nil {
		return fmt.Errorf("saga %s: encode data: %w", o.def.Name, err)
	}
	carrier := propagation.MapCarrier{}
	propagator.Inject(ctx, carrier)
	now := o.cfg.Now()
	deadline := now.Add(o.def.Deadline)
	err = o.db.InTx(ctx, func(tx *sql.Tx) error {
		if with != nil {
			if err := with(tx); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO sagas (id, name, status, step, data, deadline, owner, lease_until, traceparent, created_at, updated_at)
			VALUES ($1, $2, $3, 0, $4, $5, $6, $7, $8, $9, $9)`,
			id, o.def.Name, string(Running), string(raw), store.Millis(deadline), o.cfg.Owner,
			store.Millis(now.Add(o.cfg.Lease)), carrier.Get("traceparent"), store.Millis(now)); err != nil {
			return fmt.Errorf("saga %s: record %s: %w", o.def.Name, id, err)
		}
		return o.hook(ctx, tx, Transition[T]{ID: id, Change: ChangeStarted, Status: Running, Data: &data, At: now})
	})
	if err != nil {
		return err
	}
	o.metrics.started.Inc()
	inst := &Instance[T]{ID: id, Status: Running, Data: data, Deadline: deadline.Truncate(time.Millisecond), Created: now}
	o.launch(trace.ContextWithSpanContext(context.Background(), trace.SpanContextFromContext(ctx)), inst)
	return nil
}

// Finished returns a channel closed when the saga id reaches a terminal status in
// this orchestrator. A saga run elsewhere never closes it: wait with a timeout and
// read the state (Get).
func (o *Orchestrator[T]) Finished(id string) <-chan struct{} {
	ch := make(chan struct{})
	o.mu.Lock()
	defer o.mu.Unlock()
	o.waiters[id] = append(o.waiters[id], ch)
	return ch
}

func (o *Orchestrator[T]) finished(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, ch := range o.waiters[id] {
		close(ch)
	}
	delete(o.waiters, id)
}

// Get reads a saga's recorded state; sql.ErrNoRows when there is none.
func (o *Orchestrator[T]) Get(ctx context.Context, id string) (*Instance[T], error) {
	inst, _, err := o.load(ctx, o.db, id)
	return inst, err
}

// Summary is what an operator sees of a saga: where it stands, never its data
// (which may hold what only the steps should see).
type Summary struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Status   Status    `json:"status"`
	Step     string    `json:"step"`
	Reason   string    `json:"reason,omitempty"`
	Owner    string    `json:"owner,omitempty"`
	Deadline time.Time `json:"deadline"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

// List returns up to limit sagas of this kind, most recently updated first; with
// unfinished, only those running, compensating or stuck.
func (o *Orchestrator[T]) List(ctx context.Context, unfinished bool, limit int) ([]Summary, error) {
	q := `SELECT id, status, step, reason, owner, deadline, created_at, updated_at FROM sagas WHERE name = $1`
	if unfinished {
		q += ` AND status IN ('running', 'compensating', 'stuck')`
	}
	rows, err := o.db.QueryContext(ctx, q+` ORDER BY updated_at DESC LIMIT $2`, o.def.Name, limit)
	if err != nil {
		return nil, fmt.Errorf("saga %s: list: %w", o.def.Name, err)
	}
	defer rows.Close()
	out := []Summary{}
	for rows.Next() {
		var (
			sm                         = Summary{Name: o.def.Name}
			step                       int
			deadline, created, updated int64
		)
		if err := rows.Scan(&sm.ID, &sm.Status, &step, &sm.Reason, &sm.Owner, &deadline, &created, &updated); err != nil {
			return nil, fmt.Errorf("saga %s: list: %w", o.def.Name, err)
		}
		if step >= 0 && step < len(o.def.Steps) {
			sm.Step = o.def.Steps[step].Name
		}
		sm.Deadline, sm.Created, sm.Updated = store.Time(deadline), store.Time(created), store.Time(updated)
		out = append(out, sm)
	}
	return out, rows.Err()
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (o *Orchestrator[T]) load(ctx context.Context, q querier, id string) (*Instance[T], string, error) {
	var (
		inst                       = Instance[T]{ID: id}
		status, data, tp           string
		deadline, created, updated int64
	)
	err := q.QueryRowContext(ctx, `SELECT status, step, data, reason, deadline, traceparent, created_at, updated_at FROM sagas WHERE id = $1 AND name = $2`,
		id, o.def.Name).Scan(&status, &inst.Step, &data, &inst.Reason, &deadline, &tp, &created, &updated)
	if err != nil {
		return nil, "", err
	}
	if err := json.Unmarshal([]byte(data), &inst.Data); err != nil {
		return nil, "", fmt.Errorf("saga %s %s: decode data: %w", o.def.Name, id, err)
	}
	inst.Status = Status(status)
	inst.Deadline, inst.Created, inst.Updated = store.Time(deadline), store.Time(created), store.Time(updated)
	return &inst, tp, nil
}

// Run takes over sagas whose leases expired (those of crashed orchestrators, and
// at start this service's own from before a restart) and renews the leases of the
// sagas this orchestrator runs, until ctx ends. Then it stops starting steps, waits
// up to Drain for those in flight, and gives its sagas up so that the next
// orchestrator continues them at once (a step still in flight then records nothing).
func (o *Orchestrator[T]) Run(ctx context.Context) error {
	scan := time.NewTicker(o.cfg.Scan)
	defer scan.Stop()
	renew := time.NewTicker(o.cfg.Lease / 3)
	defer renew.Stop()
	o.recover(ctx)
	for {
		select {
		case <-ctx.Done():
			return o.stop()
		case <-scan.C:
			o.recover(ctx)
		case <-renew.C:
			now := o.cfg.Now()
			if _, err := o.db.ExecContext(ctx, `UPDATE sagas SET lease_until = $1 WHERE owner = $2 AND status IN ('running', 'compensating')`,
				store.Millis(now.Add(o.cfg.Lease)), o.cfg.Owner); err != nil && ctx.Err() == nil {
				o.cfg.Log.Warn("renew saga leases", "saga", o.def.Name, "error", err)
			}
		}
	}
}

func (o *Orchestrator[T]) stop() error {
	o.mu.Lock()
	if !o.stopping {
		o.stopping = true
		close(o.stopped)
	}
	o.mu.Unlock()
	done := make(chan struct{})
	go func() { o.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(o.cfg.Drain):
		o.cfg.Log.Warn("saga steps still in flight at shutdown; their sagas will be taken over", "saga", o.def.Name)
	}
	_, err := o.db.ExecContext(context.Background(), `UPDATE sagas SET owner = '', lease_until = 0 WHERE owner = $1 AND status IN ('running', 'compensating')`, o.cfg.Owner)
	if err != nil {
		return fmt.Errorf("saga %s: give up leases: %w", o.def.Name, err)
	}
	return nil
}

// recover claims and runs sagas whose leases expired.
func (o *Orchestrator[T]) recover(ctx context.Context) {
	now := store.Millis(o.cfg.Now())
	ids, err := o.expired(ctx, now)
	if err != nil {
		if ctx.Err() == nil {
			o.cfg.Log.Warn("look for sagas to take over", "saga", o.def.Name, "error", err)
		}
		return
	}
	for _, id := range ids {
		o.mu.Lock()
		busy := o.running[id] || o.stopping
		o.mu.Unlock()
		if busy {
			continue
		}
		res, err := o.db.ExecContext(ctx, `UPDATE sagas SET owner = $1, lease_until = $2 WHERE id = $3 AND lease_until < $4 AND status IN ('running', 'compensating')`,
			o.cfg.Owner, store.Millis(o.cfg.Now().Add(o.cfg.Lease)), id, now)
		if err != nil {
			continue
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue // another orchestrator claimed it first
		}
		inst, tp, err := o.load(ctx, o.db, id)
		if err != nil {
			o.cfg.Log.Error("load a saga taken over", "saga", o.def.Name, "id", id, "error", err)
			continue
		}
		o.metrics.recovered.Inc()
		o.cfg.Log.Info("saga taken over", "saga", o.def.Name, "id", id, "status", inst.Status, "step", inst.Step)
		o.launch(propagator.Extract(context.Background(), propagation.MapCarrier{"traceparent": tp}), inst)
	}
}

// expired lists unfinished sagas whose leases ended before now, oldest first.
func (o *Orchestrator[T]) expired(ctx context.Context, now int64) ([]string, error) {
	rows, err := o.db.QueryContext(ctx, `SELECT id FROM sagas WHERE status IN ('running', 'compensating') AND lease_until < $1 AND name = $2 ORDER BY lease_until LIMIT $3`,
		now, o.def.Name, o.cfg.MaxConcurrent)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// launch runs inst in its own goroutine, once a slot is free.
func (o *Orchestrator[T]) launch(ctx context.Context, inst *Instance[T]) {
	o.mu.Lock()
	if o.stopping || o.running[inst.ID] {
		o.mu.Unlock()
		return
	}
	o.running[inst.ID] = true
	o.wg.Add(1)
	o.mu.Unlock()
	o.waiting.Add(1)
	go func() {
		defer o.wg.Done()
		o.slots <- struct{}{}
		o.waiting.Add(-1)
		defer func() { <-o.slots }()
		o.metrics.active.Inc()
		defer o.metrics.active.Dec()
		o.run(ctx, inst)
		o.mu.Lock()
		delete(o.running, inst.ID)
		o.mu.Unlock()
		if inst.Status.Terminal() {
			o.finished(inst.ID)
		}
	}()
}

func (o *Orchestrator[T]) isStopping() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stopping
}

// errLost means another orchestrator owns the saga now.
var errLost = errors.New("saga lease lost")

// run drives inst until it is terminal, the lease is lost or the orchestrator stops.
func (o *Orchestrator[T]) run(ctx context.Context, inst *Instance[T]) {
	failures := 0
	var failingSince time.Time
	defer func() {
		if failures > 0 {
			o.metrics.retrying.Dec()
		}
	}()
	for !inst.Status.Terminal() {
		if o.isStopping() {
			return
		}
		var err error
		if inst.Status == Running {
			err = o.forward(ctx, inst)
		} else {
			err = o.backward(ctx, inst)
		}
		switch {
		case err == nil:
			if failures > 0 {
				o.metrics.retrying.Dec()
			}
			failures = 0
		case errors.Is(err, errLost):
			o.cfg.Log.Warn("saga taken over by another orchestrator", "saga", o.def.Name, "id", inst.ID)
			return
		default:
			if failures == 0 {
				failingSince = time.Now()
				o.metrics.retrying.Inc()
			}
			failures++
			if o.bounded(inst) && time.Since(failingSince) >= o.cfg.StuckAfter {
				o.giveUp(ctx, inst, time.Since(failingSince), err)
				continue
			}
			if failures%10 == 1 {
				o.cfg.Log.Warn("saga step failed; trying again", "saga", o.def.Name, "id", inst.ID,
					"status", inst.Status, "tries", failures, "error", err)
			}
			if !o.wait(o.pause(inst, failures, err)) {
				return
			}
		}
	}
}

// bounded reports whether inst is where failures can leave it stuck: at or past the
// pivot, or compensating. Before the pivot the deadline bounds it instead.
func (o *Orchestrator[T]) bounded(inst *Instance[T]) bool {
	return inst.Status == Compensating || inst.Step >= o.pivot
}

// giveUp declares inst stuck after its step failed for so long.
func (o *Orchestrator[T]) giveUp(ctx context.Context, inst *Instance[T], failing time.Duration, err error) {
	name := "the end"
	if inst.Step >= 0 && inst.Step < len(o.def.Steps) {
		name = o.def.Steps[inst.Step].Name
	}
	action := ""
	if inst.Status == Compensating {
		action = "undoing "
	}
	inst.Reason = fmt.Sprintf("%s%s kept failing for %s: %v", action, name, failing.Round(time.Second), err)
	o.cfg.Log.Error("a saga is stuck: its step keeps failing", "saga", o.def.Name, "id", inst.ID, "step", name, "reason", inst.Reason)
	if rerr := o.record(ctx, inst, Stuck, inst.Step, Transition[T]{Change: ChangeStuck, Step: name}); rerr != nil && !errors.Is(rerr, errLost) {
		o.cfg.Log.Warn("record a stuck saga", "saga", o.def.Name, "id", inst.ID, "error", rerr)
		o.wait(o.cfg.MaxBackoff)
	}
}

// pause is the wait after n failures: the backoff (exponential, full jitter), or
// the failure's own Retry-After when longer — an open breaker says when it will
// let a probe through, so the next try lands then instead of against it — spread a
// little so that many sagas do not come back at the same instant. A saga before its
// pivot never waits past its deadline.
func (o *Orchestrator[T]) pause(inst *Instance[T], n int, err error) time.Duration {
	ceiling := o.cfg.Backoff << min(n-1, 16)
	if ceiling > o.cfg.MaxBackoff || ceiling <= 0 {
		ceiling = o.cfg.MaxBackoff
	}
	d := mrand.N(ceiling) + time.Millisecond
	if hint := retryAfter(err); hint > d {
		d = min(hint+mrand.N(hint/10+time.Millisecond), time.Minute)
	}
	if inst.Status == Running && inst.Step < o.pivot {
		d = min(d, max(time.Until(inst.Deadline), time.Millisecond))
	}
	return d
}

// retryAfter is how long a failure asks to be left alone, if it says.
func retryAfter(err error) time.Duration {
	var p *problem.Error
	if errors.As(err, &p) {
		return p.RetryAfter
	}
	return 0
}

// wait sleeps d, or until the orchestrator stops (false).
func (o *Orchestrator[T]) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-o.stopped:
		return false
	}
}

// forward runs the next step of a running saga and records its outcome.
func (o *Orchestrator[T]) forward(ctx context.Context, inst *Instance[T]) error {
	if inst.Step >= len(o.def.Steps) {
		return o.record(ctx, inst, Done, inst.Step, Transition[T]{Change: ChangeDone})
	}
	step := o.def.Steps[inst.Step]
	beforePivot := inst.Step < o.pivot
	if beforePivot && !o.cfg.Now().Before(inst.Deadline) {
		return o.compensate(ctx, inst, step.Name, "timed out before "+step.Name)
	}
	var (
		stepCtx context.Context
		cancel  context.CancelFunc
	)
	if beforePivot {
		stepCtx, cancel = context.WithDeadline(ctx, inst.Deadline)
	} else {
		stepCtx, cancel = context.WithTimeout(ctx, o.cfg.TryTimeout)
	}
	data := inst.Data
	err := o.traced(stepCtx, inst, step.Name, "do", func(ctx context.Context) error { return step.Do(ctx, &data) })
	cancel()
	var refusal *Failure
	switch {
	case err == nil:
		inst.Data = data
		done := Transition[T]{Change: ChangeStepDone, Step: step.Name}
		if next := inst.Step + 1; next < len(o.def.Steps) {
			if step.Unrecorded {
				inst.pending = append(inst.pending, done)
				inst.Step = next
				return nil
			}
			return o.record(ctx, inst, Running, next, done)
		}
		// The last step and the end of the saga, in one transaction.
		return o.record(ctx, inst, Done, len(o.def.Steps), done, Transition[T]{Change: ChangeDone})
	case errors.As(err, &refusal):
		if inst.Step > o.pivot {
			o.cfg.Log.Error("a step past the pivot refused; the saga is stuck", "saga", o.def.Name, "id", inst.ID, "step", step.Name, "reason", refusal.Reason)
			inst.Reason = fmt.Sprintf("%s refused after the pivot: %s", step.Name, refusal.Reason)
			return o.record(ctx, inst, Stuck, inst.Step, Transition[T]{Change: ChangeStuck, Step: step.Name})
		}
		return o.compensate(ctx, inst, step.Name, refusal.Reason)
	case beforePivot && !o.cfg.Now().Before(inst.Deadline):
		return o.compensate(ctx, inst, step.Name, fmt.Sprintf("timed out in %s: %v", step.Name, err))
	default:
		return fmt.Errorf("%s: %w", step.Name, err)
	}
}

// compensate turns a running saga around at the step that failed, which is undone
// too: it may have happened in part, or still be in flight.
func (o *Orchestrator[T]) compensate(ctx context.Context, inst *Instance[T], failed, reason string) error {
	inst.Reason = reason
	return o.record(ctx, inst, Compensating, inst.Step, Transition[T]{Change: ChangeCompensating, Step: failed})
}

// backward undoes the next step of a compensating saga and records it.
func (o *Orchestrator[T]) backward(ctx context.Context, inst *Instance[T]) error {
	if inst.Step < 0 {
		return o.record(ctx, inst, Compensated, -1, Transition[T]{Change: ChangeCompensated})
	}
	step := o.def.Steps[inst.Step]
	if step.Undo != nil {
		tryCtx, cancel := context.WithTimeout(ctx, o.cfg.TryTimeout)
		data := inst.Data
		err := o.traced(tryCtx, inst, step.Name, "undo", func(ctx context.Context) error { return step.Undo(ctx, &data) })
		cancel()
		if err != nil {
			return fmt.Errorf("undo %s: %w", step.Name, err)
		}
		inst.Data = data
	}
	undone := Transition[T]{Change: ChangeStepUndone, Step: step.Name}
	if inst.Step == 0 {
		return o.record(ctx, inst, Compensated, -1, undone, Transition[T]{Change: ChangeCompensated})
	}
	return o.record(ctx, inst, Compensating, inst.Step-1, undone)
}

// record writes transitions — the saga's new status and step, its data, and the
// hook's writes for each transition — in one transaction, fenced by ownership.
func (o *Orchestrator[T]) record(ctx context.Context, inst *Instance[T], status Status, step int, ts ...Transition[T]) error {
	raw, err := json.Marshal(&inst.Data)
	if err != nil {
		return fmt.Errorf("saga %s: encode data: %w", o.def.Name, err)
	}
	now := o.cfg.Now()
	ts = append(inst.pending, ts...)
	err = o.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE sagas SET status = $1, step = $2, data = $3, reason = $4, updated_at = $5, lease_until = $6
			WHERE id = $7 AND owner = $8`,
			string(status), step, string(raw), inst.Reason, store.Millis(now), store.Millis(now.Add(o.cfg.Lease)), inst.ID, o.cfg.Owner)
		if err != nil {
			return fmt.Errorf("saga %s %s: record %s: %w", o.def.Name, inst.ID, status, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errLost
		}
		for _, t := range ts {
			t.ID, t.Data, t.At, t.Reason = inst.ID, &inst.Data, now, inst.Reason
			t.Status = status
			if err := o.hook(ctx, tx, t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	inst.Status, inst.Step, inst.pending = status, step, nil
	if status.Terminal() {
		o.metrics.finished.WithLabelValues(string(status)).Inc()
		o.metrics.duration.WithLabelValues(string(status)).Observe(now.Sub(inst.Created).Seconds())
	}
	return nil
}

func (o *Orchestrator[T]) hook(ctx context.Context, tx *sql.Tx, t Transition[T]) error {
	if o.cfg.OnTransition == nil {
		return nil
	}
	t.Saga = o.def.Name
	return o.cfg.OnTransition(ctx, tx, t)
}

// traced runs a step's Do or Undo in a span of the saga's trace, and times it.
func (o *Orchestrator[T]) traced(ctx context.Context, inst *Instance[T], step, action string, fn func(context.Context) error) error {
	ctx, span := o.cfg.Tracer.Start(ctx, "saga "+o.def.Name+" "+action+" "+step, trace.WithAttributes(
		attribute.String("saga.name", o.def.Name),
		attribute.String("saga.id", inst.ID),
		attribute.String("saga.step", step),
		attribute.String("saga.action", action),
	))
	start := time.Now()
	err := fn(ctx)
	result := "ok"
	var refusal *Failure
	switch {
	case errors.As(err, &refusal):
		result = "refused"
		span.SetAttributes(attribute.String("saga.refusal", refusal.Reason))
	case err != nil:
		result = "error"
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
	o.metrics.step.WithLabelValues(step, action, result).Observe(time.Since(start).Seconds())
	return err
}

type metrics struct {
	started   prometheus.Counter
	recovered prometheus.Counter
	refused   prometheus.Counter
	active    prometheus.Gauge
	retrying  prometheus.Gauge
	finished  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	step      *prometheus.HistogramVec
}

func (m *metrics) register(reg prometheus.Registerer, name string) error {
	labels := prometheus.Labels{"saga": name}
	m.started = prometheus.NewCounter(prometheus.CounterOpts{Name: "saga_started_total", Help: "Sagas started.", ConstLabels: labels})
	m.recovered = prometheus.NewCounter(prometheus.CounterOpts{Name: "saga_recovered_total", Help: "Sagas taken over after their owner's lease expired.", ConstLabels: labels})
	m.refused = prometheus.NewCounter(prometheus.CounterOpts{Name: "saga_refused_total", Help: "Sagas refused at start because as many as can run were already waiting.", ConstLabels: labels})
	m.active = prometheus.NewGauge(prometheus.GaugeOpts{Name: "saga_active", Help: "Sagas this process is running now.", ConstLabels: labels})
	m.retrying = prometheus.NewGauge(prometheus.GaugeOpts{Name: "saga_retrying", Help: "Sagas whose current step (or compensation) failed and waits to be tried again.", ConstLabels: labels})
	m.finished = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "saga_finished_total", Help: "Sagas ended, by outcome (done, compensated, stuck).", ConstLabels: labels}, []string{"outcome"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "saga_duration_seconds", Help: "Time from a saga's start to its end, by outcome.",
		ConstLabels: labels, Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"outcome"})
	m.step = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "saga_step_duration_seconds", Help: "One try of a step or compensation, by result (ok, refused, error).",
		ConstLabels: labels, Buckets: prometheus.DefBuckets}, []string{"step", "action", "result"})
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.started, m.recovered, m.refused, m.active, m.retrying, m.finished, m.duration, m.step} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("saga %s metrics: %w", name, err)
		}
	}
	return nil
}
