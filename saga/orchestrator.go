package saga

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/store"
)

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
