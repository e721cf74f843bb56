// Package shoptest runs the reference shop's services in one test process, each
// built by the platform exactly as `switchyard serve` builds it (shop.Services):
// each on its own loopback socket with its own database, finding the others
// through discovery on an embedded NATS broker that also carries their events,
// calling each other through the real rpc client stack with service credentials —
// what `switchyard up` runs, without the processes, so that a service's tests can
// place real orders. Callers, dependencies and subscriptions come from the shop's
// switchyard.yaml, as everywhere else.
package shoptest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/switchyard/switchyard"
	"github.com/switchyard/switchyard/api/events"
	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/broker/brokertest"
	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/shop"
	"github.com/switchyard/switchyard/internal/shop/orders"
	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/store"
)

// Options shape a shop. Zero fields take the default in brackets.
type Options struct {
	// Database returns the database URL of a service [a fresh SQLite file each].
	Database func(service string) string
	// Settings replace services' own settings (services.<name>.settings), by
	// service [payments' simulated provider with no declines, failures or
	// latency, so that only the test cards decide].
	Settings map[string]map[string]any
}

// Shop is a running shop.
type Shop struct {
	t       testing.TB
	running map[string]*platform.Running
	dbs     map[string]*store.DB
	urls    map[string]string
	mu      sync.Mutex
	dbURL   func(string) string
}

// Start runs the shop until t ends.
func Start(t testing.TB, opt Options) *Shop {
	t.Helper()
	dir := t.TempDir()
	settings := map[string]map[string]any{"payments": {"decline_rate": 0, "failure_rate": 0, "latency": "0s"}}
	maps.Copy(settings, opt.Settings)
	raw := platformFile(t, dir, settings)
	env := map[string]string{"NATS_URL": brokertest.Embedded(t)}
	if opt.Database != nil {
		declared, err := config.Load("shoptest", raw, nil)
		must(t, err)
		for _, name := range declared.ServiceNames() {
			env[config.EnvName(name)+"_DATABASE_URL"] = opt.Database(name)
		}
	}
	// The databases and the broker are named through the environment, as they are
	// for `switchyard serve`.
	cfg, err := config.Load("shoptest", raw, func(key string) string { return env[key] })
	must(t, err)
	names := append(cfg.ServiceNames(), config.GatewayName)
	_, err = authn.EnsureIdentities(filepath.Join(cfg.DataDir, "identity"), names)
	must(t, err)

	s := &Shop{t: t, running: map[string]*platform.Running{}, dbs: map[string]*store.DB{}, urls: map[string]string{}, dbURL: cfg.DatabaseURL}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		for _, r := range s.running {
			_ = r.Wait()
		}
		for _, db := range s.dbs {
			db.Close()
		}
	})
	builders := map[string]platform.Service{}
	for _, svc := range shop.Services() {
		builders[svc.Name] = svc
	}
	for _, name := range cfg.ServiceNames() { // dependencies first
		r, err := platform.Start(ctx, builders[name], platform.Options{Config: cfg, Service: name, Events: events.Schemas})
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		s.running[name] = r
		s.urls[name] = "http://" + r.Addr
	}
	return s
}

var listen = regexp.MustCompile(`listen: 127\.0\.0\.1:\d+`)

// platformFile is the shop's switchyard.yaml for a test: every service on a free
// port, its files under dir, discovery beating every 200ms, and settings
// replaced.
func platformFile(t testing.TB, dir string, settings map[string]map[string]any) []byte {
	t.Helper()
	src := listen.ReplaceAll(switchyard.DefaultConfig, []byte("listen: 127.0.0.1:0"))
	var doc yaml.MapSlice
	must(t, yaml.UnmarshalWithOptions(src, &doc, yaml.UseOrderedMap()))
	set := func(m yaml.MapSlice, key string, v any) yaml.MapSlice {
		for i := range m {
			if m[i].Key == key {
				m[i].Value = v
				return m
			}
		}
		return append(m, yaml.MapItem{Key: key, Value: v})
	}
	get := func(m yaml.MapSlice, key string) yaml.MapSlice {
		for _, it := range m {
			if it.Key == key {
				v, _ := it.Value.(yaml.MapSlice)
				return v
			}
		}
		return nil
	}
	doc = set(doc, "data_dir", dir)
	doc = set(doc, "discovery", yaml.MapSlice{{Key: "kind", Value: "nats"}, {Key: "heartbeat", Value: "200ms"}})
	services := get(doc, "services")
	for name, values := range settings {
		svc := get(services, name)
		if svc == nil {
			t.Fatalf("shoptest: settings for %s, which the shop does not declare", name)
		}
		services = set(services, name, set(svc, "settings", values))
	}
	doc = set(doc, "services", services)
	out, err := yaml.Marshal(doc)
	must(t, err)
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// URL returns a service's base URL (http://127.0.0.1:port).
func (s *Shop) URL(service string) string { return s.urls[service] }

// DB returns a service's database, opened by the test beside the service's own
// connections.
func (s *Shop) DB(service string) *store.DB {
	s.mu.Lock()
	defer s.mu.Unlock()
	if db, ok := s.dbs[service]; ok {
		return db
	}
	db, err := store.Open(context.Background(), store.Config{URL: s.dbURL(service), MaxOpenConns: 4})
	must(s.t, err)
	s.dbs[service] = db
	return db
}

// Deliver hands an event to a service's consumer as the bus would (a redelivery,
// say), bypassing the broker.
func (s *Shop) Deliver(service string, m *bus.Message) error {
	return s.running[service].Process.Deliver(context.Background(), m)
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
	req, err := http.NewRequest(method, s.urls[service]+path, rd)
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

// String describes the shop.
func (s *Shop) String() string { return fmt.Sprint(s.urls) }
