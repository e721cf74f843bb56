// Package inbox makes an event handler's effects happen once per event, however many
// times the event is delivered.
//
// Handle runs the handler in one database transaction together with the record
// (consumer, event id): if the record is already there, the event was handled before
// — the delivery is a redelivery or a duplicate — and Handle returns without running
// the handler, so the bus acknowledges it. If the handler fails, nothing of it and no
// record remain, and the bus retries. Records are pruned after a window that must be
// longer than the broker's redelivery horizon (how long a message can still come back).
//
// Group commit: with RunGroupCommit, handlers that run at the same time share one
// transaction; a failing handler's event is taken out and the rest committed without
// it, so each event's outcome stays its own. A consumer with concurrency N then pays one commit per batch
// instead of one per event, which on SQLite is the difference between a few thousand
// and tens of thousands of events a second.
package inbox

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations create the inbox table; apply them with store.DB.Migrate.
func Migrations() store.Migrations {
	sub, _ := fs.Sub(migrations, "migrations")
	return store.Migrations{Table: "inbox_schema_version", SQLite: sub, Postgres: sub}
}

// Inbox de-duplicates the events a service's consumers handle.
type Inbox struct {
	db         *store.DB
	duplicates *prometheus.CounterVec
	mu         sync.RWMutex  // guards queue; held for reading by handlers in a batch
	queue      chan *request // non-nil while group commit runs
	maxBatch   int
}

type request struct {
	ctx      context.Context
	consumer string
	msg      *bus.Message
	fn       Handler
	done     chan result
}

type result struct {
	duplicate bool
	err       error
}

// New returns the inbox of db, whose inbox table must exist (Migrations). reg, when
// not nil, receives inbox_duplicates_total{consumer}.
func New(db *store.DB, reg prometheus.Registerer) (*Inbox, error) {
	in := &Inbox{db: db, duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inbox_duplicates_total", Help: "Deliveries skipped because their event was already handled.",
	}, []string{"consumer"})}
	if reg != nil {
		if err := reg.Register(in.duplicates); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// Handler is the transactional part of an event handler.
type Handler func(ctx context.Context, tx *sql.Tx, msg *bus.Message) error

// RunGroupCommit makes concurrent handlers share transactions of up to maxBatch
// events until ctx ends; then it waits for the handlers of the batches under way and
// returns, and handlers use a transaction each again.
func (in *Inbox) RunGroupCommit(ctx context.Context, maxBatch int) error {
	if maxBatch < 2 {
		return errors.New("inbox: group commit needs batches of at least 2")
	}
	queue := make(chan *request, maxBatch)
	in.mu.Lock()
	in.queue, in.maxBatch = queue, maxBatch
	in.mu.Unlock()
	stopped := make(chan struct{})
	go func() {
		<-ctx.Done()
		in.mu.Lock() // every handler in a batch has its answer once this returns
		in.queue = nil
		in.mu.Unlock()
		close(stopped)
	}()
	for {
		var first *request
		select {
		case first = <-queue:
		case <-stopped:
			return nil
		}
		batch := []*request{first}
	collect:
		for len(batch) < maxBatch {
			select {
			case r := <-queue:
				batch = append(batch, r)
			default:
				break collect
			}
		}
		in.commit(batch)
	}
}

// Handle runs fn in a transaction that also records that consumer handled msg's
// event; a second delivery of the event does not run fn. It returns fn's error (its
// effects then roll back and the event can be retried).
func (in *Inbox) Handle(ctx context.Context, consumer string, msg *bus.Message, fn Handler) (duplicate bool, err error) {
	in.mu.RLock()
	if q := in.queue; q != nil {
		req := &request{ctx: ctx, consumer: consumer, msg: msg, fn: fn, done: make(chan result, 1)}
		q <- req
		r := <-req.done
		in.mu.RUnlock()
		in.count(consumer, r)
		return r.duplicate, r.err
	}
	in.mu.RUnlock()
	err = in.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		duplicate, err = apply(ctx, tx, consumer, msg, fn)
		return err
	})
	in.count(consumer, result{duplicate, err})
	return duplicate, err
}

func (in *Inbox) count(consumer string, r result) {
	if r.duplicate && r.err == nil {
		in.duplicates.WithLabelValues(consumer).Inc()
	}
}

// apply records the event and runs fn, in tx.
func apply(ctx context.Context, tx *sql.Tx, consumer string, msg *bus.Message, fn Handler) (bool, error) {
	if forgetsIDs {
		return false, fn(ctx, tx, msg)
	}
	res, err := tx.ExecContext(ctx,
		`INSERT INTO inbox (consumer, event_id, processed_at) VALUES ($1, $2, $3) ON CONFLICT (consumer, event_id) DO NOTHING`,
		consumer, msg.Event.ID, store.Millis(time.Now()))
	if err != nil {
		return false, fmt.Errorf("inbox: record %s: %w", msg.Event.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return true, nil
	}
	return false, fn(ctx, tx, msg)
}

// commit runs a batch in one transaction. It is optimistic: when a handler fails,
// the transaction rolls back and the batch runs again without that event, which gets
// its error — failures are rare, so the common batch pays two statements per event
// and one commit. Handlers' effects live in the transaction, so running one again
// after a rollback is safe.
func (in *Inbox) commit(batch []*request) {
	results := make([]result, len(batch))
	pending := make([]int, len(batch)) // indexes still to commit
	for i := range pending {
		pending[i] = i
	}
	for len(pending) > 0 {
		failed := -1
		err := in.db.InTx(context.Background(), func(tx *sql.Tx) error {
			for _, i := range pending {
				r := batch[i]
				dup, err := apply(r.ctx, tx, r.consumer, r.msg, r.fn)
				if err != nil {
					failed = i
					results[i] = result{err: err}
					return err
				}
				results[i] = result{duplicate: dup}
			}
			return nil
		})
		if err == nil {
			break
		}
		if failed < 0 { // the commit itself failed: nothing was kept
			for _, i := range pending {
				results[i] = result{err: err}
			}
			break
		}
		pending = slices.DeleteFunc(pending, func(i int) bool { return i == failed })
	}
	for i, r := range batch {
		r.done <- results[i]
	}
}

// Wrap turns a transactional handler into a bus handler for consumer.
func (in *Inbox) Wrap(consumer string, fn Handler) bus.Handler {
	return func(ctx context.Context, msg *bus.Message) error {
		_, err := in.Handle(ctx, consumer, msg, fn)
		return err
	}
}

// Prune deletes records older than window.
func (in *Inbox) Prune(ctx context.Context, window time.Duration) (int64, error) {
	res, err := in.db.ExecContext(ctx, `DELETE FROM inbox WHERE processed_at < $1`, store.Millis(time.Now().Add(-window)))
	if err != nil {
		return 0, fmt.Errorf("inbox: prune: %w", err)
	}
	return res.RowsAffected()
}

// Run prunes records older than window every hour until ctx ends.
func (in *Inbox) Run(ctx context.Context, window time.Duration) error {
	if window <= 0 {
		return errors.New("inbox: a prune window is required")
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if _, err := in.Prune(ctx, window); err != nil && ctx.Err() == nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
