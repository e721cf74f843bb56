package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing/fstest"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/broker"
	"github.com/switchyard/switchyard/bus/natsbus"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/outbox"
	"github.com/switchyard/switchyard/store"
)

// A state change and its event in one transaction: both happen, or neither. The
// relay publishes the event afterwards — at once here, later if the broker is down
// (nothing is lost meanwhile) — and marks it sent.
func ExampleOutbox_Add() {
	dir, _ := os.MkdirTemp("", "outbox-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	db, err := store.Open(ctx, store.Config{URL: "sqlite:" + dir + "/bookings.db", Migrations: fstest.MapFS{
		"00001_bookings.sql": {Data: []byte("-- +goose Up\nCREATE TABLE bookings (id TEXT PRIMARY KEY, status TEXT NOT NULL);\n")}}})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx, outbox.Migrations(), nil); err != nil {
		panic(err)
	}
	reg, _ := event.NewRegistry(fstest.MapFS{"bookings.booking.confirmed.v1.json": {Data: []byte(`{"type": "object"}`)}})
	ob, err := outbox.New(db, outbox.Config{Name: "bookings", Registry: reg, Types: []string{"bookings.booking.confirmed.v1"}})
	if err != nil {
		panic(err)
	}

	err = db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO bookings (id, status) VALUES ('b1', 'CONFIRMED')`); err != nil {
			return err
		}
		e, err := event.New(ctx, "/bookings", "bookings.booking.confirmed.v1", "b1", map[string]string{"booking_id": "b1"})
		if err != nil {
			return err
		}
		return ob.Add(ctx, tx, e)
	})
	if err != nil {
		panic(err)
	}
	n, _, _ := ob.Backlog(ctx)
	fmt.Println("written, waiting to be sent:", n)

	b, err := broker.Start(broker.Config{StoreDir: dir + "/nats"})
	if err != nil {
		panic(err)
	}
	defer b.Shutdown()
	nc, _ := nats.Connect(b.URL())
	defer nc.Close()
	events, _ := natsbus.New(nc, natsbus.Config{Registry: reg})
	relay, _ := ob.Relay(outbox.RelayConfig{Bus: events})
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = relay.Run(rctx); close(done) }()
	for n > 0 {
		time.Sleep(10 * time.Millisecond)
		n, _, _ = ob.Backlog(ctx)
	}
	stop()
	<-done
	fmt.Println("after the relay:", n)
	// Output:
	// written, waiting to be sent: 1
	// after the relay: 0
}
