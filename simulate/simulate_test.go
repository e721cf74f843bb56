package simulate_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"

	paymentsv1 "github.com/switchyard/switchyard/api/gen/switchyard/payments/v1"
	"github.com/switchyard/switchyard/api/gen/switchyard/payments/v1/paymentsv1connect"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/platform/platformtest"
	"github.com/switchyard/switchyard/telemetry"
)

var schemas = fstest.MapFS{
	"rides.ride.requested.v1.json": {Data: []byte(`{
  "type": "object", "additionalProperties": false, "required": ["ride_id", "zone", "seats"],
  "properties": {
    "ride_id": {"type": "string", "minLength": 1},
    "zone": {"type": "string", "pattern": "^[a-z]+$"},
    "seats": {"type": "integer", "minimum": 1, "maximum": 6}
  }}`)},
	"dispatch.driver.assigned.v1.json": {Data: []byte(`{
  "type": "object", "required": ["ride_id", "driver_id"],
  "properties": {"ride_id": {"type": "string"}, "driver_id": {"type": "string", "format": "uuid"}}}`)},
}

// A system in which nothing is written yet: rides calls pricing (REST, twice in
// parallel) and drivers (gRPC), answers with a template, publishes an event that
// dispatch handles — calling drivers again and publishing one of its own.
const system = `version: 1
services:
  pricing:
    listen: 127.0.0.1:0
    simulate:
      seed: 1
      endpoints:
        - endpoint: GET /v1/prices/{zone}
          latency: {p50: 1ms, p99: 5ms}
        - endpoint: GET /v1/surge
          error_rate: 1
          error_status: 502
  drivers:
    listen: 127.0.0.1:0
    simulate:
      endpoints:
        - endpoint: drivers.v1.DriverService/Nearby
          response_bytes: 512
  rides:
    listen: 127.0.0.1:0
    dependencies:
      pricing: {protocol: rest}
      drivers: {protocol: grpc}
    publishes: [rides.ride.requested.v1]
    simulate:
      seed: 2
      endpoints:
        - endpoint: POST /v1/zones/{zone}/rides
          latency: 2ms
          response: {ride: "{{id}}", zone: "{{path.zone}}", rider: "{{request.rider}}", seats: "{{request.seats}}"}
          calls:
            - {to: pricing, endpoint: "GET /v1/prices/{zone}", count: 2, parallel: true}
            - {to: drivers, endpoint: drivers.v1.DriverService/Nearby}
          publishes:
            - {type: rides.ride.requested.v1, subject: "{{id}}", data: {ride_id: "{{id}}", zone: "{{path.zone}}"}}
        - endpoint: GET /v1/surge
          calls:
            - {to: pricing, endpoint: GET /v1/surge}
        - endpoint: POST /v1/coin
          outcomes:
            - {weight: 1, status: 201}
            - {weight: 1, status: 402, response: {reason: declined}}
        - endpoint: WS /v1/rides/{id}/updates
          interval: 10ms
          messages: 3
          message_bytes: 200
  dispatch:
    listen: 127.0.0.1:0
    dependencies:
      drivers: {protocol: grpc}
    subscriptions: [rides.ride.requested.v1]
    publishes: [dispatch.driver.assigned.v1]
    simulate:
      handlers:
        - event: rides.ride.requested.v1
          latency: 1ms
          calls:
            - {to: drivers, endpoint: drivers.v1.DriverService/Nearby}
          publishes:
            - {type: dispatch.driver.assigned.v1, data: {ride_id: "{{event.ride_id}}"}}
`

func counter(t *testing.T, url, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := telemetry.Scrape(context.Background(), http.DefaultClient, url+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, m := range families[name].GetMetric() {
		if matches(m, labels) {
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

func matches(m *dto.Metric, labels map[string]string) bool {
	for k, v := range labels {
		found := false
		for _, l := range m.GetLabel() {
			found = found || l.GetName() == k && l.GetValue() == v
		}
		if !found {
			return false
		}
	}
	return true
}

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s answered %d, no JSON: %s", url, resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 15s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func rows(t *testing.T, db *sql.DB, kind string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM simulated WHERE kind = $1`, kind).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestASimulatedSystemCallsPublishesAndHandlesAsDeclared(t *testing.T) {
	sys := platformtest.Start(t, platformtest.Options{Config: []byte(system), Events: schemas})
	rides := sys.URL("rides")

	const n = 5
	for range n {
		status, body := post(t, rides+"/v1/zones/north/rides", `{"rider": "ann", "seats": 2}`)
		if status != http.StatusOK {
			t.Fatalf("POST answered %d: %v", status, body)
		}
		if body["zone"] != "north" || body["rider"] != "ann" || body["seats"] != 2.0 || body["ride"] == "" {
			t.Fatalf("the response template was not filled: %v", body)
		}
	}
	// Every call is counted where it was made and where it was answered.
	if got := counter(t, rides, "simulate_calls_total", map[string]string{"dependency": "pricing", "outcome": "ok"}); got != 2*n {
		t.Errorf("rides made %v calls to pricing, want %d", got, 2*n)
	}
	if got := counter(t, sys.URL("pricing"), "simulate_requests_total", map[string]string{"endpoint": "GET /v1/prices/{zone}", "status": "200"}); got != 2*n {
		t.Errorf("pricing answered %v, want %d", got, 2*n)
	}
	if got := counter(t, rides, "rpc_client_calls_total", map[string]string{"dependency": "drivers"}); got < n {
		t.Errorf("the gRPC calls went around the rpc client stack: %v", got)
	}
	// The events went through rides' outbox to dispatch's inbox, and on.
	waitFor(t, "dispatch to handle every ride", func() bool { return rows(t, sys.DB("dispatch").DB, "event") == n })
	if got := rows(t, sys.DB("rides").DB, "request"); got != n {
		t.Errorf("rides recorded %d requests, want %d", got, n)
	}
	var payload string
	if err := sys.DB("dispatch").QueryRow(`SELECT payload FROM outbox WHERE type = 'dispatch.driver.assigned.v1' LIMIT 1`).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	e, err := event.Decode([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	var assigned map[string]any
	_ = e.DecodeData(&assigned)
	if id, _ := assigned["ride_id"].(string); id == "" || len(assigned["driver_id"].(string)) != 36 || e.CausationID == "" {
		t.Errorf("the handler's event: %s (caused by %q)", e.Data, e.CausationID)
	}
	if got := counter(t, sys.URL("drivers"), "simulate_requests_total", nil); got != 2*n {
		t.Errorf("drivers answered %v gRPC calls (rides' and dispatch's), want %d", got, 2*n)
	}
}

func TestASimulatedFailureIsAProblemAndFailsItsCallers(t *testing.T) {
	sys := platformtest.Start(t, platformtest.Options{Config: []byte(system), Events: schemas})
	resp, err := http.Get(sys.URL("rides") + "/v1/surge")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(string(b), "pricing GET /v1/surge failed") {
		t.Errorf("a failing dependency: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	// pricing's endpoint fails every time with its declared status; the policy
	// retried the GET.
	if got := counter(t, sys.URL("pricing"), "simulate_requests_total", map[string]string{"status": "502"}); got < 2 {
		t.Errorf("pricing failed %v times; the policy should have retried", got)
	}
	if got := counter(t, sys.URL("rides"), "simulate_calls_total", map[string]string{"outcome": "failed"}); got != 1 {
		t.Errorf("rides counted %v failed calls, want 1 (after retries)", got)
	}
}

func TestOutcomesAreDrawnByWeight(t *testing.T) {
	sys := platformtest.Start(t, platformtest.Options{Config: []byte(system), Events: schemas})
	seen := map[int]int{}
	for range 60 {
		status, body := post(t, sys.URL("rides")+"/v1/coin", `{}`)
		seen[status]++
		if status == http.StatusPaymentRequired && body["reason"] != "declined" {
			t.Fatalf("the outcome's response: %v", body)
		}
	}
	if seen[201] < 10 || seen[402] < 10 || len(seen) != 2 {
		t.Errorf("outcomes of equal weight drawn %v", seen)
	}
}

func TestAStreamSendsItsMessagesAndCloses(t *testing.T) {
	sys := platformtest.Start(t, platformtest.Options{Config: []byte(system), Events: schemas})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(sys.URL("rides"), "http")+"/v1/rides/r1/updates", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	for i := 1; i <= 3; i++ {
		_, msg, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		var m map[string]any
		if err := json.Unmarshal(msg, &m); err != nil || m["seq"] != float64(i) || len(msg) < 150 {
			t.Fatalf("message %d: %s", i, msg)
		}
	}
	_, _, err = conn.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("after its messages the stream closes normally, got %v", err)
	}
}

// A simulated service can stand in for a real one whose generated code the binary
// links: its answers are real messages that the real client reads.
func TestASimulatedGRPCMethodAnswersRealMessages(t *testing.T) {
	const file = `version: 1
services:
  payments:
    listen: 127.0.0.1:0
    simulate:
      endpoints:
        - endpoint: switchyard.payments.v1.PaymentService/Authorize
          response: {payment: {id: "{{id}}", order_id: "{{request.order_id}}", status: PAYMENT_STATUS_AUTHORIZED, amount: {minor_units: "{{request.amount.minor_units}}", currency: EUR}}}
`
	sys := platformtest.Start(t, platformtest.Options{Config: []byte(file), Events: schemas})
	client := paymentsv1connect.NewPaymentServiceClient(http.DefaultClient, sys.URL("payments"), connect.WithGRPC())
	resp, err := client.Authorize(context.Background(), connect.NewRequest(&paymentsv1.AuthorizeRequest{
		OrderId: "o-42", Amount: &paymentsv1.Money{MinorUnits: 1250, Currency: "EUR"}}))
	if err != nil {
		t.Fatal(err)
	}
	p := resp.Msg.GetPayment()
	if p.GetOrderId() != "o-42" || p.GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_AUTHORIZED || p.GetAmount().GetMinorUnits() != 1250 || p.GetId() == "" {
		t.Errorf("got %v", p)
	}
}

// A read publishes nothing, so its row waits for the journal's next batch instead
// of a transaction of its own; none is lost, not even those answered just before
// the service stops.
func TestEveryReadIsRecordedEvenAtShutdown(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rides.db")
	const n = 300
	t.Run("serve", func(t *testing.T) {
		sys := platformtest.Start(t, platformtest.Options{Config: []byte(system), Events: schemas,
			Database: func(service string) string {
				if service == "rides" {
					return "sqlite:" + file
				}
				return "sqlite:" + filepath.Join(t.TempDir(), service+".db")
			}})
		url := sys.URL("rides") + "/v1/coin" // publishes nothing
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range n / 4 {
					resp, err := http.Post(url, "application/json", strings.NewReader(`{}`))
					if err != nil {
						t.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 201 && resp.StatusCode != 402 {
						t.Errorf("POST /v1/coin answered %d", resp.StatusCode)
						return
					}
				}
			})
		}
		wg.Wait()
		// The test's end stops the service at once, with rows still queued.
	})
	db, err := sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := rows(t, db, "request"); got != n {
		t.Errorf("%d rows for %d requests answered", got, n)
	}
}
