package natsbus_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/switchyard/switchyard/api/events"
	"github.com/switchyard/switchyard/broker/brokertest"
	"github.com/switchyard/switchyard/bus/natsbus"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/cetest"
)

// Every event type the platform publishes, read off the broker as it travelled,
// is a valid CloudEvent to the CloudEvents Go SDK, with a dataschema naming the
// schema its data follows.
func TestEventsOffTheWireAreCloudEventsToTheSDK(t *testing.T) {
	nc := brokertest.Connect(t, brokertest.Embedded(t))
	reg, err := event.NewRegistry(events.Schemas)
	if err != nil {
		t.Fatal(err)
	}
	b, err := natsbus.New(nc, natsbus.Config{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	t.Cleanup(func() { cleanup(t, js, reg) })
	wire, err := nc.SubscribeSync("events.>")
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := sdktrace.NewTracerProvider().Tracer("t").Start(context.Background(), "request")
	defer span.End()
	sent := map[string]*event.Event{}
	for _, e := range cetest.Examples(t, reg) {
		e.TraceParent = "00-" + span.SpanContext().TraceID().String() + "-" + span.SpanContext().SpanID().String() + "-01"
		if err := b.Publish(ctx, e); err != nil {
			t.Fatalf("publish %s: %v", e.Type, err)
		}
		sent[e.ID] = &e
	}
	for range len(sent) {
		m, err := wire.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("%d of %d events came off the wire: %v", len(sent)-1, len(sent), err)
		}
		var id struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(m.Data, &id)
		e, ok := sent[id.ID]
		if !ok {
			t.Fatalf("an event nobody sent: %s", m.Data)
		}
		cetest.Check(t, m.Data, e, events.Schemas)
	}
	if len(sent) < 12 {
		t.Errorf("only %d event types checked", len(sent))
	}
}
