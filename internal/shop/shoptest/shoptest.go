// Package shoptest runs the reference shop's services in one test process: each on
// its own loopback socket, each with its own database, calling each other through
// the real rpc client stack with service credentials — what `switchyard up` runs,
// without the processes, so that a service's tests can place real orders.
//
// Without Options.Events, events stay in the services' outboxes (no relay runs)
// and tests read them there; with it, an embedded NATS server carries them, relays
// publish them and catalog and notifications consume them, as in `switchyard up`.
package shoptest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/switchyard/switchyard/api/events"
	"github.com/switchyard/switchyard/api/gen/switchyard/inventory/v1/inventoryv1connect"
	"github.com/switchyard/switchyard/api/gen/switchyard/payments/v1/paymentsv1connect"
	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/broker/brokertest"
	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/bus/natsbus"
	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/inbox"
	"github.com/switchyard/switchyard/internal/shop/catalog"
	"github.com/switchyard/switchyard/internal/shop/inventory"
	"github.com/switchyard/switchyard/internal/shop/notifications"
	"github.com/switchyard/switchyard/internal/shop/orders"
	"github.com/switchyard/switchyard/internal/shop/payments"
	"github.com/switchyard/switchyard/internal/shop/users"
	"github.com/switchyard/switchyard/outbox"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rpc"
	"github.com/switchyard/switchyard/saga"
	"github.com/switchyard/switchyard/server"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/telemetry"
)

// Options shape a shop. Zero fields take the default in brackets.
type Options struct {
	// Database returns the database URL of a service [a fresh SQLite file each].
	Database func(service string) string
	// Payments shapes the simulated provider [no latency, no declines].
	Payments payments.SimulatorSettings
	// Orders configures the orders service.
	Orders orders.Config
	// Events runs the event backbone: an embedded broker, the outbox relays and the
	// consumers.
	Events bool
}

// Shop is a running shop.
type Shop struct {
	t    testing.TB
	urls map[string]string
	dbs  map[string]*store.DB
	// Orders is the orders service, for its saga.
	Orders *orders.Service
	// Notifications is the notifications service, to feed it events by hand.
	Notifications *notifications.Service
}

// URL returns a service's base URL (http://127.0.0.1:port).
func (s *Shop) URL(service string) string { return s.urls[service] }

// DB returns a service's database.
func (s *Shop) DB(service string) *store.DB { return s.dbs[service] }

var services = []string{"users", "catalog", "inventory", "payments", "orders", "notifications"}

// Start runs the shop until t ends.
func Start(t testing.TB, opt Options) *Shop {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Shop{t: t, urls: map[string]string{}, dbs: map[string]*store.DB{}}
	var stops []func()
	t.Cleanup(func() {
		cancel()
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	})
	dir := t.TempDir()
	if opt.Database == nil {
		opt.Database = func(service string) string { return "sqlite:" + filepath.Join(dir, service+".db") }
	}
	bundlePath, err := authn.EnsureIdentities(filepath.Join(dir, "identity"), services)
	must(t, err)
	bundle, err := authn.LoadBundle(bundlePath)
	must(t, err)
	reg, err := event.NewRegistry(events.Schemas)
	must(t, err)
	log := telemetry.Discard()
	callers := map[string][]string{"users": {"orders", "notifications"}, "catalog": {"orders"}, "inventory": {"orders"}, "payments": {"orders"}}
	var eventBus bus.Bus
	if opt.Events {
		eventBus, err = natsbus.New(brokertest.Connect(t, brokertest.Embedded(t)), natsbus.Config{Registry: reg})
		must(t, err)
	}
	background := func(run func(context.Context) error) {
		done := make(chan struct{})
		go func() { _ = run(ctx); close(done) }()
		stops = append(stops, func() { <-done })
	}

	// Listeners first: everyone's address is known before anyone calls.
	servers := map[string]*server.Server{}
	handlers := map[string]*switchable{}
	var instances []discovery.Instance
	for _, name := range services {
		h := &switchable{}
		srv := server.New(server.Config{Addr: "127.0.0.1:0", ShutdownTimeout: time.Second}, h, nil, log)
		must(t, srv.Listen())
		servers[name], handlers[name] = srv, h
		s.urls[name] = "http://" + srv.Addr().String()
		instances = append(instances, discovery.Instance{Service: name, ID: name, Addr: srv.Addr().String()})
	}
	resolver := discovery.NewStatic(instances...)
	tokens := func(name string) *authn.ServiceTokens {
		id, err := authn.LoadIdentity(name, filepath.Join(dir, "identity", name+".key"))
		must(t, err)
		return authn.NewServiceTokens(id, nil)
	}
	verifier := func(name string) *authn.ServiceVerifier {
		return authn.NewServiceVerifier(name, bundle, callers[name], nil)
	}
	open := func(name string, own fs.FS, m ...store.Migrations) *store.DB {
		db, err := store.Open(ctx, store.Config{URL: opt.Database(name), Migrations: own})
		must(t, err)
		for _, mig := range m {
			must(t, db.Migrate(ctx, mig, nil))
		}
		s.dbs[name] = db
		stops = append(stops, func() { db.Close() })
		return db
	}
	outboxOf := func(name string, db *store.DB) *outbox.Outbox {
		must(t, db.Migrate(ctx, outbox.Migrations(), nil))
		ob, err := outbox.New(db, outbox.Config{Name: name, Registry: reg})
		must(t, err)
		if eventBus != nil {
			relay, err := ob.Relay(outbox.RelayConfig{Bus: eventBus})
			must(t, err)
			background(relay.Run)
		}
		return ob
	}
	fail := rpc.WriteError(problem.Writer{Log: log})

	// users
	db := open("users", users.Migrations())
	us, err := users.New(ctx, users.Config{}, db, verifier("users"), log, nil)
	must(t, err)
	handlers["users"].set(us.Handler())
	background(us.Run)

	// catalog
	db = open("catalog", catalog.Migrations(), inbox.Migrations())
	in, err := inbox.New(db, nil)
	must(t, err)
	cs, err := catalog.New(ctx, catalog.Config{}, catalog.Deps{DB: db, Log: log, Inbox: in})
	must(t, err)
	handlers["catalog"].set(cs.Handler())
	background(cs.Run)
	if eventBus != nil {
		background(func(ctx context.Context) error {
			return eventBus.Subscribe(ctx, bus.Subscription{Group: "catalog", Types: []string{catalog.EventStockChanged}}, cs.OnStockChanged)
		})
	}

	// inventory
	db = open("inventory", inventory.Migrations())
	is, err := inventory.New(ctx, inventory.Config{}, db, outboxOf("inventory", db), log)
	must(t, err)
	mux := http.NewServeMux()
	path, h := inventoryv1connect.NewInventoryServiceHandler(is, rpc.HandlerOptions()...)
	rpc.MountGRPC(mux, func(h http.Handler) http.Handler { return verifier("inventory").RequireService(fail, h) },
		rpc.GRPCService{Name: inventoryv1connect.InventoryServiceName, Path: path, Handler: h})
	handlers["inventory"].set(mux)

	// payments
	db = open("payments", payments.Migrations())
	ps, err := payments.New(payments.Config{}, db, outboxOf("payments", db), payments.NewSimulator(opt.Payments), log)
	must(t, err)
	mux = http.NewServeMux()
	path, h = paymentsv1connect.NewPaymentServiceHandler(ps, rpc.HandlerOptions()...)
	rpc.MountGRPC(mux, func(h http.Handler) http.Handler { return verifier("payments").RequireService(fail, h) },
		rpc.GRPCService{Name: paymentsv1connect.PaymentServiceName, Path: path, Handler: h})
	handlers["payments"].set(mux)

	// orders, calling the others through the rpc stack
	db = open("orders", orders.Migrations(), saga.Migrations())
	client := func(service string, p rpc.Protocol) *rpc.Client {
		c, err := rpc.NewClient(ctx, rpc.ClientConfig{Service: service, Protocol: p, Resolver: resolver, Tokens: tokens("orders")})
		must(t, err)
		return c
	}
	uc, cc, ic, pc := client("users", rpc.REST), client("catalog", rpc.REST), client("inventory", rpc.GRPC), client("payments", rpc.GRPC)
	verify, err := authn.NewVerifier(authn.VerifierConfig{Issuer: "switchyard", Audience: "switchyard"},
		authn.NewRemoteKeys(authn.RemoteKeysConfig{URL: uc.BaseURL() + "/.well-known/jwks.json", Client: uc.HTTPClient()}))
	must(t, err)
	os, err := orders.New(opt.Orders, orders.Deps{
		DB: db, Outbox: outboxOf("orders", db), Log: log, Verifier: verify,
		Users: uc.HTTPClient(), UsersURL: uc.BaseURL(), Catalog: cc.HTTPClient(), CatalogURL: cc.BaseURL(),
		Inventory: inventoryv1connect.NewInventoryServiceClient(ic.HTTPClient(), ic.BaseURL(), connect.WithGRPC()),
		Payments:  paymentsv1connect.NewPaymentServiceClient(pc.HTTPClient(), pc.BaseURL(), connect.WithGRPC()),
	})
	must(t, err)
	handlers["orders"].set(os.Handler())
	s.Orders = os
	background(os.Run)

	// notifications
	db = open("notifications", notifications.Migrations(), inbox.Migrations())
	nin, err := inbox.New(db, nil)
	must(t, err)
	ns, err := notifications.New(notifications.Config{Poll: 200 * time.Millisecond}, notifications.Deps{DB: db, Inbox: nin, Verifier: verify, Log: log})
	must(t, err)
	handlers["notifications"].set(ns.Handler())
	s.Notifications = ns
	background(ns.Run)
	if eventBus != nil {
		background(func(ctx context.Context) error {
			return eventBus.Subscribe(ctx, bus.Subscription{Group: "notifications", Types: notifications.Events}, ns.OnEvent)
		})
	}

	for _, name := range services {
		srv := servers[name]
		done := make(chan struct{})
		go func() { _ = srv.Run(ctx); close(done) }()
		stops = append(stops, func() { <-done })
	}
	return s
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// switchable is a handler set after its server listens.
type switchable struct{ h http.Handler }

func (s *switchable) set(h http.Handler) { s.h = h }

func (s *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.h.ServeHTTP(w, r) }

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
	err := s.dbs["inventory"].QueryRow(`SELECT available, reserved, sold FROM stock WHERE product_id = $1`, product).Scan(&available, &reserved, &sold)
	if err != nil {
		s.t.Fatalf("stock of %s: %v", product, err)
	}
	return
}

// String describes the shop.
func (s *Shop) String() string { return fmt.Sprint(s.urls) }
