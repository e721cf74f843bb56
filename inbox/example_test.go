package inbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"testing/fstest"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/inbox"
	"github.com/switchyard/switchyard/store"
)

// A consumer whose effects happen once per event: the handler's writes and the
// record that the event was handled commit together, so a redelivery — the broker
// is at-least-once — is acknowledged and skipped.
func ExampleInbox_Wrap() {
	dir, _ := os.MkdirTemp("", "inbox-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	db, err := store.Open(ctx, store.Config{URL: "sqlite:" + dir + "/tickets.db", Migrations: fstest.MapFS{
		"00001_tickets.sql": {Data: []byte("-- +goose Up\nCREATE TABLE tickets (booking_id TEXT NOT NULL);\n")}}})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx, inbox.Migrations(), nil); err != nil {
		panic(err)
	}
	in, _ := inbox.New(db, nil)
	issue := in.Wrap("tickets", func(ctx context.Context, tx *sql.Tx, m *bus.Message) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO tickets (booking_id) VALUES ($1)`, m.Event.Subject)
		return err
	})

	e, _ := event.New(ctx, "/bookings", "bookings.booking.confirmed.v1", "b1", map[string]string{"booking_id": "b1"})
	for attempt := 1; attempt <= 3; attempt++ { // delivered three times
		if err := issue(ctx, &bus.Message{Event: e, Attempt: attempt}); err != nil {
			panic(err)
		}
	}
	var n int
	_ = db.QueryRow(`SELECT count(*) FROM tickets`).Scan(&n)
	fmt.Println("tickets issued:", n)
	// Output: tickets issued: 1
}
