// Package shoptest runs the reference shop's services in one test process, through
// platformtest: each built by the platform exactly as `switchyard serve` builds it
// (shop.Services), with its own port and database, discovery and events on an
// embedded broker, and the real call stack with service credentials — so that a
// service's tests can place real orders. Callers, dependencies and subscriptions
// come from the shop's switchyard.yaml, as everywhere else; it adds the shop's
// customers, orders and stock.
package shoptest

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/switchyard/switchyard"
	"github.com/switchyard/switchyard/api/events"
	"github.com/switchyard/switchyard/internal/shop"
	"github.com/switchyard/switchyard/internal/shop/orders"
	"github.com/switchyard/switchyard/platform/platformtest"
)

// Options shape a shop. Zero fields take the default in brackets.
type Options struct {
	// Database returns the database URL of a service [a fresh SQLite file each].
	Database func(service string) string
	// Settings replace services' own settings (services.<name>.settings), by
	// service [payments' simulated provider with no declines, failures or
	// latency, so that only the test cards decide].
	Settings map[string]map[string]any
	// Gateway also runs the gateway (service "gateway" of Do), for flows through
	// the public API.
	Gateway bool
}

// Shop is a running shop.
type Shop struct {
	*platformtest.System
	t testing.TB
}

// Start runs the shop until t ends.
func Start(t testing.TB, opt Options) *Shop {
	t.Helper()
	settings := map[string]map[string]any{"payments": {"decline_rate": 0, "failure_rate": 0, "latency": "0s"}}
	maps.Copy(settings, opt.Settings)
	sys := platformtest.Start(t, platformtest.Options{Config: switchyard.DefaultConfig, Events: events.Schemas,
		Services: shop.Services(), Settings: settings, Database: opt.Database, Gateway: opt.Gateway})
	return &Shop{System: sys, t: t}
}

// Customer is a registered, logged-in customer.
type Customer struct {
	ID, Email, Token string
}

// Customer registers and logs in a customer named name.
func (s *Shop) Customer(name string) Customer {
	s.t.Helper()
	email := name + "@example.com"
	const password = "correct horse battery staple"
	r := s.Do("POST", "users", "/v1/auth/register", "", map[string]string{"email": email, "password": password, "name": name}, nil)
	if r.Code != http.StatusCreated {
		s.t.Fatalf("register %s: %d %s", name, r.Code, r.Raw)
	}
	l := s.Do("POST", "users", "/v1/auth/login", "", map[string]string{"email": email, "password": password}, nil)
	if l.Code != http.StatusOK {
		s.t.Fatalf("login %s: %d %s", name, l.Code, l.Raw)
	}
	return Customer{ID: r.Body["id"].(string), Email: email, Token: l.Body["access_token"].(string)}
}

// Response is an HTTP response, read.
type Response struct {
	Code   int
	Header http.Header
	Raw    []byte
	Body   map[string]any
}

// Do sends a JSON request to a service as the holder of token (none when empty).
func (s *Shop) Do(method, service, path, token string, body any, header http.Header) Response {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		must(s.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL(service)+path, rd)
	must(s.t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	must(s.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	must(s.t, err)
	out := Response{Code: resp.StatusCode, Header: resp.Header, Raw: raw}
	_ = json.Unmarshal(raw, &out.Body)
	return out
}

// Order places an order through v2 and returns the response.
func (s *Shop) Order(c Customer, key, card string, items ...orders.ItemRequest) Response {
	s.t.Helper()
	return s.Do("POST", "orders", "/v2/orders", c.Token, orders.PlaceRequest{Items: items, Payment: &orders.PaymentRequest{CardNumber: card}},
		http.Header{"Idempotency-Key": {key}})
}

// Await waits up to within for an order to reach a final status, and returns it
// (v2).
func (s *Shop) Await(c Customer, id string, within time.Duration) Response {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := s.Do("GET", "orders", "/v2/orders/"+id, c.Token, nil, http.Header{"Prefer": {"wait=1"}})
		if r.Code != http.StatusOK {
			s.t.Fatalf("order %s: %d %s", id, r.Code, r.Raw)
		}
		if orders.Terminal(r.Body["status"].(string)) || time.Now().After(deadline) {
			return r
		}
	}
}

// Item is a line of an order.
func Item(product string, quantity int) orders.ItemRequest {
	return orders.ItemRequest{ProductID: product, Quantity: quantity}
}

// Stock returns a product's (available, reserved, sold) in inventory's database.
func (s *Shop) Stock(product string) (available, reserved, sold int64) {
	s.t.Helper()
	err := s.DB("inventory").QueryRow(`SELECT available, reserved, sold FROM stock WHERE product_id = $1`, product).Scan(&available, &reserved, &sold)
	if err != nil {
		s.t.Fatalf("stock of %s: %v", product, err)
	}
	return
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
