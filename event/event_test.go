package event_test

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/switchyard/switchyard/api/events"
	"github.com/switchyard/switchyard/event"
)

func TestNewFillsTheEnvelope(t *testing.T) {
	t.Parallel()
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "handler")
	defer span.End()
	ctx = event.WithCorrelation(ctx, "req-1", "key-1")
	e, err := event.New(ctx, "/switchyard/inventory", "inventory.stock.changed.v1", "prod-1",
		map[string]any{"product_id": "prod-1", "available": 3, "reserved": 1, "sold": 0, "reason": "reserved"})
	if err != nil {
		t.Fatal(err)
	}
	if e.SpecVersion != "1.0" || e.ID == "" || e.Time.IsZero() || e.DataContentType != "application/json" ||
		e.CorrelationID != "req-1" || e.IdempotencyKey != "key-1" || e.CausationID != "" {
		t.Errorf("envelope = %+v", e)
	}
	if !strings.Contains(e.TraceParent, span.SpanContext().TraceID().String()) {
		t.Errorf("traceparent %q lacks the trace", e.TraceParent)
	}
	if e.BrokerSubject() != "events.inventory.stock.changed" {
		t.Errorf("subject %q", e.BrokerSubject())
	}

	// An event produced while handling e names e as its cause, in the same correlation.
	next, err := event.New(event.WithCause(context.Background(), &e), "/switchyard/catalog", "inventory.stock.changed.v1", "prod-1",
		map[string]any{"product_id": "prod-1", "available": 3, "reserved": 1, "sold": 0, "reason": "reserved"})
	if err != nil {
		t.Fatal(err)
	}
	if next.CausationID != e.ID || next.CorrelationID != "req-1" || next.IdempotencyKey != "key-1" {
		t.Errorf("caused event = %+v", next)
	}
	back := event.TraceContext(context.Background(), &e)
	if !strings.Contains(e.TraceParent, "-01") || back == nil {
		t.Error("trace context does not round-trip")
	}
}

func TestEnvelopesAreChecked(t *testing.T) {
	t.Parallel()
	for name, raw := range map[string]string{
		"not JSON":         `{"specversion":`,
		"wrong spec":       `{"specversion":"0.3","id":"01900000-0000-7000-8000-000000000000","type":"a.b.c.v1","source":"/x","subject":"s","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","data":{}}`,
		"bad type":         `{"specversion":"1.0","id":"01900000-0000-7000-8000-000000000000","type":"OrderPlaced","source":"/x","subject":"s","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","data":{}}`,
		"no subject":       `{"specversion":"1.0","id":"01900000-0000-7000-8000-000000000000","type":"a.b.c.v1","source":"/x","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","data":{}}`,
		"id is not a UUID": `{"specversion":"1.0","id":"42","type":"a.b.c.v1","source":"/x","subject":"s","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","data":{}}`,
		"no data":          `{"specversion":"1.0","id":"01900000-0000-7000-8000-000000000000","type":"a.b.c.v1","source":"/x","subject":"s","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json"}`,
		"xml content":      `{"specversion":"1.0","id":"01900000-0000-7000-8000-000000000000","type":"a.b.c.v1","source":"/x","subject":"s","time":"2026-01-01T00:00:00Z","datacontenttype":"application/xml","data":"<a/>"}`,
		"type twice":       `{"specversion":"1.0","id":"01900000-0000-7000-8000-000000000000","type":"a.b.c.v1","type":"a.b.d.v1","source":"/x","subject":"s","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","data":{}}`,
		"a field twice":    `{"specversion":"1.0","id":"01900000-0000-7000-8000-000000000000","type":"a.b.c.v1","source":"/x","subject":"s","time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","data":{"n":1,"n":2}}`,
	} {
		if _, err := event.Decode([]byte(raw)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func TestDataIsCheckedAgainstItsSchema(t *testing.T) {
	t.Parallel()
	reg, err := event.NewRegistry(events.Schemas)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := event.New(context.Background(), "/x", "inventory.stock.changed.v1", "p",
		map[string]any{"product_id": "p", "available": 1, "reserved": 0, "sold": 0, "reason": "restocked"})
	if err := reg.Validate(&good); err != nil {
		t.Fatalf("a good event: %v", err)
	}
	for name, data := range map[string]map[string]any{
		"negative stock": {"product_id": "p", "available": -1, "reserved": 0, "sold": 0, "reason": "restocked"},
		"unknown reason": {"product_id": "p", "available": 1, "reserved": 0, "sold": 0, "reason": "stolen"},
		"extra field":    {"product_id": "p", "available": 1, "reserved": 0, "sold": 0, "reason": "restocked", "price": 3},
		"missing field":  {"product_id": "p", "reserved": 0, "sold": 0, "reason": "restocked"},
	} {
		e, _ := event.New(context.Background(), "/x", "inventory.stock.changed.v1", "p", data)
		if err := reg.Validate(&e); err == nil {
			t.Errorf("%s: valid", name)
		}
	}
	// Data put together by hand, a field twice: refused before it is published.
	twice := good
	twice.Data = []byte(`{"product_id":"p","available":1,"available":9,"reserved":0,"sold":0,"reason":"restocked"}`)
	if err := reg.Validate(&twice); err == nil || !strings.Contains(err.Error(), `duplicate key "available"`) {
		t.Errorf("data with a field twice: %v", err)
	}
	if err := twice.Validate(); err == nil || !strings.Contains(err.Error(), `duplicate key "available"`) {
		t.Errorf("data with a field twice, without schemas: %v", err)
	}
	unknown, _ := event.New(context.Background(), "/x", "orders.order.teleported.v1", "o", map[string]any{})
	if err := reg.Validate(&unknown); err == nil || !strings.Contains(err.Error(), "no schema") {
		t.Errorf("an unknown type: %v", err)
	}
}

func TestSchemaFilesMustBeNamedForTheirType(t *testing.T) {
	t.Parallel()
	if _, err := event.NewRegistry(fstest.MapFS{"OrderPlaced.json": {Data: []byte(`{}`)}}); err == nil {
		t.Error("a schema named for no event type was accepted")
	}
}

func TestTypeNames(t *testing.T) {
	t.Parallel()
	for name, ok := range map[string]bool{
		"orders.order.placed.v1": true, "inventory.stock_level.changed.v12": true, "a1.b_2.c3.v1": true,
		"Orders.order.placed.v1": false, "orders.order.placed": false, "orders.order.placed.v0": false,
		"orders.order.placed.v01": false, "orders.order.placed.1": false, "orders..placed.v1": false,
		"orders.order.placed.v1.extra": false, "1orders.order.placed.v1": false, "orders.order.pla-ced.v1": false,
	} {
		if _, err := event.ParseType(name); (err == nil) != ok {
			t.Errorf("ParseType(%q) error %v, want ok=%v", name, err, ok)
		}
	}
}
