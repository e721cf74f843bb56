package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/examples/bookings/booking"
	"github.com/switchyard/switchyard/examples/bookings/events"
	"github.com/switchyard/switchyard/platform/platformtest"
)

// start runs the whole system in the test: the three services, built as `go run .
// serve` builds them, on an embedded broker.
func start(t *testing.T) *platformtest.System {
	t.Helper()
	return platformtest.Start(t, platformtest.Options{Config: platformFile, Events: events.Schemas, Services: services()})
}

func send(t *testing.T, method, url string, body any, header http.Header) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// book books and waits until the booking has an outcome.
func book(t *testing.T, sys *platformtest.System, show string, seats int, card string) map[string]any {
	t.Helper()
	code, b := send(t, "POST", sys.URL("bookings")+"/v1/bookings", map[string]any{"show": show, "seats": seats, "card": card}, nil)
	if code != http.StatusCreated || b["status"] != booking.StatusPending {
		t.Fatalf("book: %d %v", code, b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, b = send(t, "GET", sys.URL("bookings")+"/v1/bookings/"+b["id"].(string), nil, nil)
		if b["status"] != booking.StatusPending || time.Now().After(deadline) {
			return b
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func available(t *testing.T, sys *platformtest.System, show string) int {
	t.Helper()
	_, body := send(t, "GET", sys.URL("seats")+"/v1/shows", nil, nil)
	for _, s := range body["shows"].([]any) {
		if m := s.(map[string]any); m["id"] == show {
			return int(m["available"].(float64))
		}
	}
	t.Fatalf("no show %s", show)
	return 0
}

// A paid booking is confirmed; tickets issues one ticket per seat from its event,
// once — the same event delivered again issues nothing more.
func TestABookingIsConfirmedAndItsTicketsIssuedOnce(t *testing.T) {
	t.Parallel()
	sys := start(t)
	b := book(t, sys, "jazz-night", 2, "4242424242424242")
	if b["status"] != booking.StatusConfirmed || b["amount_minor"] != float64(2*booking.PricePerSeat) {
		t.Fatalf("booking %v, want CONFIRMED for two seats", b)
	}
	id := b["id"].(string)
	var tickets []any
	deadline := time.Now().Add(10 * time.Second)
	for len(tickets) < 2 && time.Now().Before(deadline) {
		_, body := send(t, "GET", sys.URL("tickets")+"/v1/tickets?booking="+id, nil, nil)
		tickets, _ = body["tickets"].([]any)
		time.Sleep(20 * time.Millisecond)
	}
	if len(tickets) != 2 {
		t.Fatalf("%d tickets for a two-seat booking: %v", len(tickets), tickets)
	}
	// The broker delivers the event again: the inbox knows it.
	var payload string
	if err := sys.DB("bookings").QueryRow(`SELECT payload FROM outbox WHERE type = $1 AND subject = $2`, booking.EventConfirmed, id).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	e, err := event.Decode([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	if err := sys.Deliver("tickets", &bus.Message{Event: e, Attempt: 2}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := sys.DB("tickets").QueryRow(`SELECT count(*) FROM tickets WHERE booking_id = $1`, id).Scan(&n); err != nil || n != 2 {
		t.Errorf("%d tickets after a redelivery (%v), want still 2", n, err)
	}
}

// A card that declines cancels the booking with the reason, and the seats held for
// it are given back (the saga's compensation).
func TestADeclinedCardGivesTheSeatsBack(t *testing.T) {
	t.Parallel()
	sys := start(t)
	before := available(t, sys, "jazz-night")
	b := book(t, sys, "jazz-night", 3, booking.CardDeclined)
	if b["status"] != booking.StatusCancelled || b["reason"] != "card declined" {
		t.Fatalf("booking %v, want CANCELLED: card declined", b)
	}
	if after := available(t, sys, "jazz-night"); after != before {
		t.Errorf("%d seats available after the declined booking, %d before: not given back", after, before)
	}
}

// Beyond the seats left, the booking is cancelled with what seats said.
func TestASoldOutShowCancelsTheBooking(t *testing.T) {
	t.Parallel()
	sys := start(t)
	b := book(t, sys, "opera-gala", 3, "4242424242424242")
	if b["status"] != booking.StatusCancelled || !strings.Contains(b["reason"].(string), "opera-gala: not 3 seats left") {
		t.Errorf("booking %v, want CANCELLED: not 3 seats left", b)
	}
}

// The same Idempotency-Key books once, whatever the number of tries; bad input is a
// problem naming the field.
func TestOneKeyBooksOnceAndBadInputIsNamed(t *testing.T) {
	t.Parallel()
	sys := start(t)
	key := http.Header{"Idempotency-Key": {"k-1"}}
	body := map[string]any{"show": "jazz-night", "seats": 1, "card": "4242424242424242"}
	_, first := send(t, "POST", sys.URL("bookings")+"/v1/bookings", body, key)
	_, again := send(t, "POST", sys.URL("bookings")+"/v1/bookings", body, key)
	if first["id"] == nil || first["id"] != again["id"] {
		t.Errorf("two bookings for one key: %v, %v", first["id"], again["id"])
	}
	code, p := send(t, "POST", sys.URL("bookings")+"/v1/bookings", map[string]any{"show": "jazz-night", "seats": 40, "card": "4242424242424242"}, nil)
	if code != http.StatusBadRequest || !strings.Contains(p["detail"].(string), "seats") {
		t.Errorf("40 seats: %d %v, want 400 naming seats", code, p)
	}
}

// The system's binary links none of the deployment tooling: an importer of
// Switchyard gets the toolkit, not kustomize and the Kubernetes types.
func TestTheBinaryIsLight(t *testing.T) {
	t.Parallel()
	out, err := exec.CommandContext(context.Background(), "go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 100 {
		t.Fatalf("go list -deps found only %d packages", len(deps))
	}
	for _, d := range deps {
		for _, heavy := range []string{"k8s.io/", "sigs.k8s.io/", "github.com/compose-spec/", "github.com/moby/buildkit"} {
			if strings.HasPrefix(d, heavy) {
				t.Errorf("the binary links %s", d)
			}
		}
	}
}
