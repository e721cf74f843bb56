package saga_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/switchyard/switchyard/saga"
	"github.com/switchyard/switchyard/store"
)

// A saga of two steps — hold the seats, then charge the card (the pivot) — whose
// second refuses: the first is undone, and the saga ends compensated with the
// reason. Every transition is recorded in the service's own database, so a crash
// anywhere resumes where it stopped.
func ExampleOrchestrator() {
	dir, _ := os.MkdirTemp("", "saga-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	db, err := store.Open(ctx, store.Config{URL: "sqlite:" + dir + "/bookings.db"})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx, saga.Migrations(), nil); err != nil {
		panic(err)
	}
	type booking struct{ Card string }
	def := saga.Definition[booking]{
		Name: "booking", Deadline: 10 * time.Second,
		Steps: []saga.Step[booking]{
			{Name: "hold_seats",
				Do:   func(context.Context, *booking) error { fmt.Println("seats held"); return nil },
				Undo: func(context.Context, *booking) error { fmt.Println("seats given back"); return nil }},
			{Name: "charge_card", Pivot: true, Do: func(_ context.Context, b *booking) error {
				if b.Card == "4000000000000002" {
					return saga.Fail("card declined")
				}
				return nil
			}},
		},
	}
	o, err := saga.New(db, def, saga.Config[booking]{})
	if err != nil {
		panic(err)
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = o.Run(rctx) }()

	finished := o.Finished("b1")
	if err := o.Start(ctx, "b1", booking{Card: "4000000000000002"}, nil); err != nil {
		panic(err)
	}
	<-finished
	inst, _ := o.Get(ctx, "b1")
	fmt.Println(inst.Status+":", inst.Reason)
	// Output:
	// seats held
	// seats given back
	// compensated: card declined
}
