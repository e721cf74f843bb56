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

// checkout is one flow's trace with its timings given by at: an order placed
// through the gateway, two product lookups in parallel, a user lookup, the
// answer, then the saga going on after it and an event delivered to two
// consumers.
func checkout(at map[string][2]int) observe.Trace {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	sp := func(id, parent, service, name string, kind observe.Kind, attrs ...string) observe.Span {
		s := observe.Span{TraceID: strings.Repeat("b", 32), SpanID: fmt.Sprintf("%016x", []byte(id))[:16], Service: service, Name: name, Kind: kind,
			Start: t0.Add(time.Duration(at[id][0]) * time.Millisecond), End: t0.Add(time.Duration(at[id][1]) * time.Millisecond), Attributes: map[string]string{}}
		if parent != "" {
			s.ParentID = fmt.Sprintf("%016x", []byte(parent))[:16]
		}
		for i := 0; i+1 < len(attrs); i += 2 {
			s.Attributes[attrs[i]] = attrs[i+1]
		}
		return s
	}
	ev := "orders.order.placed.v1"
	return observe.Trace{ID: strings.Repeat("b", 32), Spans: []observe.Span{
		sp("gw", "", "gateway", "POST /api/v2/orders", observe.Server, "http.response.status_code", "201"),
		sp("gc", "gw", "gateway", "orders POST", observe.Client, "service.peer.name", "orders"),
		sp("os", "gc", "orders", "POST /v2/orders", observe.Server, "http.response.status_code", "201"),
		sp("u1", "os", "orders", "users GET", observe.Client, "service.peer.name", "users"),
		sp("us", "u1", "users", "GET /v1/users/{id}", observe.Server, "http.response.status_code", "200"),
		sp("c1", "os", "orders", "catalog GET", observe.Client, "service.peer.name", "catalog"),
		sp("cs1", "c1", "catalog", "GET /v1/products/{id}", observe.Server, "http.response.status_code", "200"),
		sp("c2", "os", "orders", "catalog GET", observe.Client, "service.peer.name", "catalog"),
		sp("cs2", "c2", "catalog", "GET /v1/products/{id}", observe.Server, "http.response.status_code", "200"),
		sp("db", "os", "orders", "INSERT orders", observe.Client, "db.system.name", "sqlite"),
		sp("pb", "os", "orders", "publish "+ev, observe.Producer, "cloudevents.event_type", ev, "messaging.message.id", "e1"),
		sp("rl", "pb", "orders", "send "+ev, observe.Producer, "cloudevents.event_type", ev, "messaging.message.id", "e1", "messaging.operation.name", "send"),
		sp("k1", "pb", "notifications", "consume "+ev, observe.Consumer, "cloudevents.event_type", ev),
		sp("k2", "pb", "catalog", "consume "+ev, observe.Consumer, "cloudevents.event_type", ev),
		sp("sg", "os", "orders", "saga order do reserve_stock", observe.Internal, "switchyard.saga.step", "reserve_stock", "switchyard.saga.action", "do"),
		sp("ic", "sg", "orders", "inventory POST", observe.Client, "service.peer.name", "inventory", "rpc.system.name", "grpc"),
		sp("is", "ic", "inventory", "ReserveStock", observe.Server, "http.response.status_code", "200"),
	}}
}

func mermaid(t *testing.T, s diagram.Sequence) string {
	t.Helper()
	var b bytes.Buffer
	if err := s.Mermaid(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestANormalSequenceIsTheSameWhateverTheTimings(t *testing.T) {
	one := map[string][2]int{"gw": {0, 40}, "gc": {1, 39}, "os": {2, 38}, "u1": {3, 6}, "us": {4, 5},
		"c1": {7, 12}, "cs1": {8, 11}, "c2": {8, 13}, "cs2": {9, 12}, "db": {14, 15}, "pb": {15, 16},
		"rl": {50, 52}, "k1": {53, 55}, "k2": {54, 56}, "sg": {39, 60}, "ic": {40, 59}, "is": {41, 58}}
	// Another run: the lookups the other way round, the consumers too, the relay
	// later than the saga.
	two := map[string][2]int{"gw": {0, 30}, "gc": {1, 29}, "os": {2, 28}, "u1": {3, 5}, "us": {3, 4},
		"c2": {6, 10}, "cs2": {7, 9}, "c1": {6, 11}, "cs1": {8, 10}, "db": {12, 13}, "pb": {13, 14},
		"rl": {70, 72}, "k2": {73, 74}, "k1": {75, 79}, "sg": {29, 45}, "ic": {30, 44}, "is": {31, 43}}
	a := mermaid(t, diagram.NormalSequence(checkout(one), diagram.NormalOptions{}))
	b := mermaid(t, diagram.NormalSequence(checkout(two), diagram.NormalOptions{}))
	if a != b {
		t.Fatalf("two runs of one flow draw two diagrams:\n%s\n---\n%s", a, b)
	}
	want := `sequenceDiagram
  actor n_client as client
  participant n_gateway as gateway
  participant n_orders as orders
  participant n_users as users
  participant n_catalog as catalog
  participant n_notifications as notifications
  participant n_inventory as inventory
  participant n_bus as bus
  n_client->>n_gateway: POST /api/v2/orders
  n_gateway->>n_orders: POST /v2/orders
  n_orders->>n_users: GET /v1/users/{id}
  n_users-->>n_orders: 200
  n_orders->>n_catalog: GET /v1/products/{id}
  n_catalog-->>n_orders: 200
  n_orders->>n_catalog: GET /v1/products/{id}
  n_catalog-->>n_orders: 200
  n_orders-)n_bus: orders.order.placed.v1
  n_bus-)n_catalog: orders.order.placed.v1
  n_bus-)n_notifications: orders.order.placed.v1
  n_orders-->>n_gateway: 201
  n_gateway-->>n_client: 201
  Note over n_orders: saga do reserve_stock
  n_orders->>n_inventory: ReserveStock
  n_inventory-->>n_orders: 200
`
	if a != want {
		t.Errorf("got\n%s\nwant\n%s", a, want)
	}
	withStatements := mermaid(t, diagram.NormalSequence(checkout(one), diagram.NormalOptions{Statements: true}))
	if !strings.Contains(withStatements, "n_orders->>n_orders_db: INSERT orders") || strings.Contains(a, "INSERT") {
		t.Errorf("statements are drawn only when asked for:\n%s", withStatements)
	}
}
