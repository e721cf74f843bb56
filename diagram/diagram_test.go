package diagram_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/diagram"
	"github.com/switchyard/switchyard/observe"
)

// order is the trace of one order as the platform records it, abridged: a client
// call through the gateway, orders calling inventory over gRPC with one failed
// attempt, a statement, an event written, sent by the relay and delivered to two
// consumers (one failing once, then redelivered), and a saga step.
func order() observe.Trace {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	sp := func(id, parent, service, name string, kind observe.Kind, from, to int, attrs ...string) observe.Span {
		s := observe.Span{TraceID: strings.Repeat("a", 32), SpanID: fmt.Sprintf("%016x", []byte(id))[:16], Service: service, Name: name,
			Kind: kind, Start: at(from), End: at(to), Attributes: map[string]string{}}
		if parent != "" {
			s.ParentID = fmt.Sprintf("%016x", []byte(parent))[:16]
		}
		for i := 0; i+1 < len(attrs); i += 2 {
			s.Attributes[attrs[i]] = attrs[i+1]
		}
		return s
	}
	grpc := sp("c2", "s2", "orders", "inventory POST", observe.Client, 5, 20, "service.peer.name", "inventory", "rpc.system.name", "grpc")
	grpc.Events = []observe.Event{{Name: "attempt failed", Time: at(8), Attributes: map[string]string{"switchyard.attempt.outcome": "503 Service Unavailable"}}}
	failed := sp("k2", "p1", "notifications", "consume orders.order.placed.v1", observe.Consumer, 40, 41,
		"cloudevents.event_type", "orders.order.placed.v1", "switchyard.delivery.attempt", "1")
	failed.Error, failed.Status = true, "database is locked"
	return observe.Trace{ID: strings.Repeat("a", 32), Spans: []observe.Span{
		// The client sent its own traceparent: its span is not among these.
		sp("s1", "browser", "gateway", "POST /api/v1/orders", observe.Server, 0, 30, "http.response.status_code", "201"),
		sp("c1", "s1", "gateway", "orders POST", observe.Client, 1, 29, "service.peer.name", "orders", "url.scheme", "http"),
		sp("s2", "c1", "orders", "POST /v1/orders", observe.Server, 2, 28, "http.response.status_code", "201"),
		grpc,
		sp("s3", "c2", "inventory", "POST /switchyard.inventory.v1.InventoryService/", observe.Server, 10, 19,
			"http.request.method", "POST", "url.path", "/switchyard.inventory.v1.InventoryService/ReserveStock", "http.response.status_code", "200"),
		sp("d1", "s2", "orders", "INSERT orders", observe.Client, 21, 22, "db.system.name", "sqlite"),
		sp("d2", "s2", "orders", "INSERT outbox", observe.Client, 22, 23, "db.system.name", "sqlite"),
		sp("p1", "s2", "orders", "publish orders.order.placed.v1", observe.Producer, 22, 23,
			"cloudevents.event_type", "orders.order.placed.v1", "messaging.message.id", "e1"),
		sp("r1", "p1", "orders", "send orders.order.placed.v1", observe.Producer, 31, 32,
			"cloudevents.event_type", "orders.order.placed.v1", "messaging.message.id", "e1", "messaging.operation.name", "send"),
		sp("k1", "p1", "catalog", "consume orders.order.placed.v1", observe.Consumer, 33, 34,
			"cloudevents.event_type", "orders.order.placed.v1", "switchyard.delivery.attempt", "1"),
		failed,
		sp("k3", "p1", "notifications", "consume orders.order.placed.v1", observe.Consumer, 50, 51,
			"cloudevents.event_type", "orders.order.placed.v1", "switchyard.delivery.attempt", "2"),
		sp("g1", "s2", "orders", "saga order do reserve_stock", observe.Internal, 4, 21, "switchyard.saga.step", "reserve_stock", "switchyard.saga.action", "do"),
	}}
}

func TestInteractionsCountWhatTheSpansProve(t *testing.T) {
	g := diagram.Interactions(order().Spans)
	var got []string
	for _, e := range g.Edges {
		got = append(got, fmt.Sprintf("%s -%s-> %s %s ×%d err%d retry%d", e.From, e.Protocol, e.To, e.Label, e.Calls, e.Errors, e.Retries))
	}
	want := []string{
		"client -HTTP-> gateway  ×1 err0 retry0",
		"gateway -HTTP-> orders  ×1 err0 retry0",
		"orders -gRPC-> inventory  ×1 err0 retry1",
		"bus -event-> catalog orders.order.placed.v1 ×1 err0 retry0",
		"bus -event-> notifications orders.order.placed.v1 ×2 err1 retry1",
		"orders -event-> bus orders.order.placed.v1 ×1 err0 retry0",
		"orders -SQL-> orders-db  ×2 err0 retry0",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("edges:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(g.Flows) != 2 || g.Flows[0] != (diagram.Flow{From: "orders", Type: "orders.order.placed.v1", To: "catalog", Count: 1}) {
		t.Errorf("flows: %+v", g.Flows)
	}
	var text bytes.Buffer
	if err := g.Text(&text); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"orders   --gRPC-->   inventory", "1 retries", "orders   --event-->  bus --> notifications  orders.order.placed.v1  1 delivered  1 errors (50.0%)  1 retries"} {
		if !strings.Contains(text.String(), line) {
			t.Errorf("text lacks %q:\n%s", line, text.String())
		}
	}
	var mer bytes.Buffer
	_ = g.Mermaid(&mer)
	for _, line := range []string{"flowchart LR", "n_client([client])", "n_bus{{bus}}", "n_orders_db[(orders-db)]",
		`n_orders -->|"gRPC ×1, 1 retries"| n_inventory`, `n_bus -.->|"event orders.order.placed.v1 ×2, 50.0% errors, 1 retries"| n_notifications`} {
		if !strings.Contains(mer.String(), line) {
			t.Errorf("mermaid lacks %q:\n%s", line, mer.String())
		}
	}
}

func TestTheSequenceShowsCallsRepliesEventsFailuresAndRetries(t *testing.T) {
	seq := diagram.SequenceOf(order())
	if got := strings.Join(seq.Participants, ","); got != "client,gateway,orders,orders-db,inventory,catalog,notifications,bus" {
		t.Errorf("participants %s", got)
	}
	var b bytes.Buffer
	if err := seq.Mermaid(&b); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"  actor n_client as client",
		"  n_client->>n_gateway: POST /api/v1/orders",
		"  n_gateway->>n_orders: POST /v1/orders",
		"  Note over n_orders: saga do reserve_stock",
		"  n_orders-xn_inventory: attempt failed: 503 Service Unavailable",
		"  n_orders->>n_inventory: POST /switchyard.inventory.v1.InventoryService/ReserveStock",
		"  n_inventory-->>n_orders: 200",
		"  n_orders->>n_orders_db: INSERT orders",
		"  n_orders-->>n_gateway: 201",
		"  n_gateway-->>n_client: 201",
		"  n_orders-)n_bus: orders.order.placed.v1",
		"  n_bus-)n_catalog: orders.order.placed.v1",
		"  n_bus-xn_notifications: orders.order.placed.v1: database is locked",
		"  n_bus-)n_notifications: orders.order.placed.v1 (redelivery 2)",
	}
	got := b.String()
	last := -1
	for _, line := range want {
		i := strings.Index(got, line+"\n")
		if i < 0 {
			t.Errorf("the sequence lacks %q", line)
			continue
		}
		if i < last {
			t.Errorf("%q is out of order", line)
		}
		last = i
	}
	if strings.Count(got, "-)n_bus") != 1 {
		t.Errorf("the event is sent once (by the relay), not also when written:\n%s", got)
	}
	if t.Failed() {
		t.Logf("\n%s", got)
	}
	var svg bytes.Buffer
	if err := seq.SVG(&svg); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(svg.String(), "<svg") || strings.Count(svg.String(), `class="participant"`) != 8 ||
		!strings.Contains(svg.String(), "database is locked") {
		t.Errorf("svg:\n%s", svg.String())
	}
}

func TestFoldedRepeats(t *testing.T) {
	tr := order()
	for i := range 3 {
		s := tr.Spans[5]
		s.SpanID = fmt.Sprintf("%016d", 90+i)
		s.Start = s.Start.Add(time.Duration(i+1) * time.Microsecond)
		tr.Spans = append(tr.Spans, s)
	}
	var b bytes.Buffer
	_ = diagram.SequenceOf(tr).Mermaid(&b)
	if !strings.Contains(b.String(), "n_orders->>n_orders_db: INSERT orders ×4\n") {
		t.Errorf("four INSERT orders in a row are not folded:\n%s", b.String())
	}
}

func TestDriftNamesBothSides(t *testing.T) {
	declared := []diagram.Edge{
		{From: "orders", To: "inventory", Protocol: diagram.GRPC},
		{From: "orders", To: "payments", Protocol: diagram.GRPC},
		{From: "orders", To: diagram.Bus, Protocol: diagram.Event, Label: "orders.order.placed.v1"},
	}
	unseen, undeclared := diagram.Drift(declared, diagram.Interactions(order().Spans).Edges)
	if len(unseen) != 1 || unseen[0].To != "payments" {
		t.Errorf("unseen %+v", unseen)
	}
	var names []string
	for _, e := range undeclared {
		names = append(names, e.From+">"+e.To)
	}
	if strings.Join(names, " ") != "gateway>orders bus>catalog bus>notifications" {
		t.Errorf("undeclared %v (client and SQL edges are never declared, so never drift)", names)
	}
}
