package notifications_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/shop/commerce"
	"github.com/switchyard/switchyard/internal/shop/notifications"
	"github.com/switchyard/switchyard/internal/shop/shoptest"
)

func wsURL(shop *shoptest.Shop, query string) string {
	return strings.Replace(shop.URL("notifications"), "http://", "ws://", 1) + "/v1/notifications" + query
}

func dial(t *testing.T, shop *shoptest.Shop, c shoptest.Customer, query string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, wsURL(shop, query), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + c.Token}}})
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { conn.CloseNow() })
	return conn
}

// next reads one notification, failing after a few seconds.
func next(t *testing.T, conn *websocket.Conn) notifications.Notification {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := conn.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var n notifications.Notification
	if err := json.Unmarshal(b, &n); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return n
}

// until reads notifications until one has the given status, and returns them all.
func until(t *testing.T, conn *websocket.Conn, status string) []notifications.Notification {
	t.Helper()
	var out []notifications.Notification
	for {
		n := next(t, conn)
		out = append(out, n)
		if n.Status == status {
			return out
		}
	}
}

func statuses(ns []notifications.Notification) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Status)
	}
	slices.Sort(out)
	return out
}

func TestCustomersHearOfTheirOrdersAsTheyHappen(t *testing.T) {
	t.Parallel()
	shop := shoptest.Start(t, shoptest.Options{})
	ann, bob := shop.Customer("ann"), shop.Customer("bob")
	annConn, bobConn := dial(t, shop, ann, ""), dial(t, shop, bob, "")

	placed := shop.Order(ann, "k1", commerce.CardApproved, shoptest.Item("prod-aud-001", 1))
	got := until(t, annConn, "CONFIRMED")
	want := []string{"CONFIRMED", "PAYMENT_AUTHORIZED", "PAYMENT_CAPTURED", "PENDING"}
	for len(got) < len(want) { // the payment's events travel their own stream
		got = append(got, next(t, annConn))
	}
	if !slices.Equal(statuses(got), want) {
		t.Errorf("ann heard %v, want %v", statuses(got), want)
	}
	for i, n := range got {
		if n.ID != int64(i+1) || n.OrderID != placed.Body["id"] {
			t.Errorf("notification %d: %+v", i, n)
		}
	}

	// Bob's card is declined; he hears why, and nothing of Ann's order.
	shop.Order(bob, "k1", commerce.CardInsufficientFunds, shoptest.Item("prod-aud-001", 1))
	heard := until(t, bobConn, "CANCELLED")
	last := heard[len(heard)-1]
	if last.Message != "Your order was cancelled: payment declined: insufficient funds." {
		t.Errorf("bob's cancellation: %q", last.Message)
	}
	for _, n := range heard {
		if n.OrderID == placed.Body["id"] {
			t.Errorf("bob heard of ann's order: %+v", n)
		}
	}
}

func TestAReconnectingClientResumesWhereItLeftOff(t *testing.T) {
	t.Parallel()
	shop := shoptest.Start(t, shoptest.Options{})
	cat := shop.Customer("cat")
	feed := func(i int) {
		e, err := event.New(context.Background(), "/switchyard/orders", "orders.order.cancelled.v1", fmt.Sprint("o", i),
			map[string]any{"order_id": fmt.Sprint("o", i), "customer_id": cat.ID, "reason": fmt.Sprint("reason ", i)})
		if err != nil {
			t.Fatal(err)
		}
		msg := &bus.Message{Event: e}
		for range 2 { // redelivered: recorded once
			if err := shop.Deliver("notifications", msg); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := 1; i <= 3; i++ {
		feed(i)
	}
	conn := dial(t, shop, cat, "")
	for i := int64(1); i <= 2; i++ {
		if n := next(t, conn); n.ID != i {
			t.Fatalf("notification %d: %+v", i, n)
		}
	}
	conn.Close(websocket.StatusNormalClosure, "")
	feed(4) // while disconnected

	again := dial(t, shop, cat, "?after=2")
	for i := int64(3); i <= 4; i++ {
		if n := next(t, again); n.ID != i || n.Message != fmt.Sprintf("Your order was cancelled: reason %d.", i) {
			t.Fatalf("after reconnecting, notification %d: %+v", i, n)
		}
	}
	feed(5) // live
	if n := next(t, again); n.ID != 5 {
		t.Fatalf("live notification: %+v", n)
	}

	// The same numbers page the history over plain HTTP, Last-Event-ID too.
	r := shop.Do("GET", "notifications", "/v1/notifications", cat.Token, nil, http.Header{"Last-Event-ID": {"3"}})
	items, _ := r.Body["items"].([]any)
	if r.Code != 200 || len(items) != 2 || items[0].(map[string]any)["id"] != 4.0 {
		t.Errorf("history after 3: %d %s", r.Code, r.Raw)
	}
}

func TestOnlyAVerifiedCustomerConnects(t *testing.T) {
	t.Parallel()
	shop := shoptest.Start(t, shoptest.Options{})
	dan := shop.Customer("dan")
	ctx := context.Background()
	for name, c := range map[string]struct {
		query  string
		header http.Header
	}{
		"no token":     {"", nil},
		"forged token": {"", http.Header{"Authorization": {"Bearer " + dan.Token[:len(dan.Token)-3] + "AAA"}}},
		"garbage":      {"?access_token=garbage", nil},
		"bad resume":   {"?after=yesterday", http.Header{"Authorization": {"Bearer " + dan.Token}}},
	} {
		_, resp, err := websocket.Dial(ctx, wsURL(shop, c.query), &websocket.DialOptions{HTTPHeader: c.header})
		want := http.StatusUnauthorized
		if name == "bad resume" {
			want = http.StatusBadRequest
		}
		if err == nil || resp == nil || resp.StatusCode != want {
			t.Errorf("%s: %v %v, want %d", name, err, resp, want)
		}
	}
	// The token in the query, for browsers, which cannot set headers on a WebSocket.
	// The connection stays open as the first of the eight a customer may hold (one
	// closed here would be released by the server only when it notices, racing the cap
	// check below).
	conn, _, err := websocket.Dial(ctx, wsURL(shop, "?access_token="+dan.Token), nil)
	if err != nil {
		t.Fatalf("token in the query: %v", err)
	}
	defer conn.CloseNow()

	// One customer's connections are capped.
	for range 7 {
		dial(t, shop, dan, "") // closed when the test ends
	}
	_, resp, err := websocket.Dial(ctx, wsURL(shop, ""), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + dan.Token}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("ninth connection: %v %v, want 429", err, resp)
	}
}
