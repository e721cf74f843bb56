package natsbus_test

import (
	"context"
	"fmt"
	"os"
	"testing/fstest"

	"github.com/nats-io/nats.go"

	"github.com/switchyard/switchyard/broker"
	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/bus/natsbus"
	"github.com/switchyard/switchyard/event"
)

// Events on NATS JetStream, here an embedded broker: published validated against
// their JSON Schema as CloudEvents, consumed by a durable consumer group. A bad
// event is refused before it leaves.
func ExampleNew() {
	dir, _ := os.MkdirTemp("", "natsbus-example")
	defer os.RemoveAll(dir)
	b, err := broker.Start(broker.Config{StoreDir: dir})
	if err != nil {
		panic(err)
	}
	defer b.Shutdown()
	nc, err := nats.Connect(b.URL())
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	reg, _ := event.NewRegistry(fstest.MapFS{"tickets.ticket.issued.v1.json": {Data: []byte(
		`{"type": "object", "required": ["seat"], "properties": {"seat": {"type": "integer", "minimum": 1}}}`)}})
	events, err := natsbus.New(nc, natsbus.Config{Registry: reg})
	if err != nil {
		panic(err)
	}

	ctx, stop := context.WithCancel(context.Background())
	got := make(chan *bus.Message, 1)
	go func() {
		_ = events.Subscribe(ctx, bus.Subscription{Group: "printer", Types: []string{"tickets.ticket.issued.v1"}},
			func(_ context.Context, m *bus.Message) error { got <- m; stop(); return nil })
	}()
	e, _ := event.New(context.Background(), "/tickets", "tickets.ticket.issued.v1", "booking-1", map[string]int{"seat": 7})
	if err := events.Publish(context.Background(), e); err != nil {
		panic(err)
	}
	m := <-got
	fmt.Printf("%s about %s: %s (delivery %d)\n", m.Event.Type, m.Event.Subject, m.Event.Data, m.Attempt)

	bad, _ := event.New(context.Background(), "/tickets", "tickets.ticket.issued.v1", "booking-2", map[string]int{"seat": 0})
	fmt.Println(events.Publish(context.Background(), bad) != nil)
	// Output:
	// tickets.ticket.issued.v1 about booking-1: {"seat":7} (delivery 1)
	// true
}
