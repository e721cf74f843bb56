// Package inbox makes an event handler's effects happen once per event, however many
// times the event is delivered.
//
// Handle runs the handler in one database transaction together with the record
// (consumer, event id): if the record is already there, the event was handled before
// — the delivery is a redelivery or a duplicate — and Handle returns without running
// the handler, so the bus acknowledges it. If the handler fails, nothing of it and no
// record remain, and the bus retries. Records are pruned after a window that must be
// longer than the broker's redelivery horizon (how long a message can still come back).
package inbox

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
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

// Handle runs fn in a transaction that also records that consumer handled msg's
// event; a second delivery of the event does not run fn. It returns fn's error (the
// transaction then rolls back and the event can be retried).
func (in *Inbox) Handle(ctx context.Context, consumer string, msg *bus.Message, fn Handler) (duplicate bool, err error) {
	err = in.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`INSERT INTO inbox (consumer, event_id, processed_at) VALUES ($1, $2, $3) ON CONFLICT (consumer, event_id) DO NOTHING`,
			consumer, msg.Event.ID, store.Millis(time.Now()))
		if err != nil {
			return fmt.Errorf("inbox: record %s: %w", msg.Event.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			duplicate = true
			return nil
		}
		return fn(ctx, tx, msg)
	})
	if duplicate && err == nil {
		in.duplicates.WithLabelValues(consumer).Inc()
	}
	return duplicate, err
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
