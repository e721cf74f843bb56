// Package orders is the order service of the reference shop: it takes orders and
// sees each one through its saga — hold the stock (inventory, gRPC), authorize the
// payment (payments, gRPC), take the money and commit the stock — or, when any of
// that is refused or takes too long, gives back what was held and cancels the order
// with the reason.
//
// The saga is the toolkit's saga package: the order row and its saga are written in
// one transaction, each step's outcome with the order's new status, its history
// and its events (outbox) in another, and a restarted service takes over every
// saga its predecessor left unfinished.
//
// The API comes in two versions side by side. /v1/ shows money as decimal strings
// and is deprecated (Deprecation, Sunset and a successor-version Link on every
// response); /v2/ shows money as integer minor units with the currency, embeds the
// priced lines, and shows the order's status history.
//
// Every request is authenticated by the service itself against the users JWKS; no
// identity header is trusted, and a customer sees only their own orders (another's
// is a 404). Placing an order requires an Idempotency-Key: the same key and body
// return the same response, whatever the number of concurrent retries; the same
// key with another body is a 422.
package orders

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/api/gen/switchyard/inventory/v1/inventoryv1connect"
	"github.com/switchyard/switchyard/api/gen/switchyard/payments/v1/paymentsv1connect"
	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/cache"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/outbox"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rest"
	"github.com/switchyard/switchyard/saga"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/telemetry"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the orders database's schema migrations, for store.Open.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrations, "migrations")
	return sub
}

// Order statuses.
const (
	StatusPending    = "PENDING"
	StatusReserved   = "STOCK_RESERVED"
	StatusAuthorized = "PAYMENT_AUTHORIZED"
	StatusConfirmed  = "CONFIRMED"
	StatusCancelling = "CANCELLING"
	StatusCancelled  = "CANCELLED"
	// StatusOnHold is an order whose saga cannot finish on its own (a step after
	// the payment was taken refused): a person has to look at it.
	StatusOnHold = "ON_HOLD"
)

// Terminal reports whether an order in status will change no more by itself.
func Terminal(status string) bool {
	return status == StatusConfirmed || status == StatusCancelled || status == StatusOnHold
}

// Event types orders publishes.
const (
	EventPlaced    = "orders.order.placed.v1"
	EventConfirmed = "orders.order.confirmed.v1"
	EventCancelled = "orders.order.cancelled.v1"
)

const source = "/switchyard/orders"

// Settings are the orders service's own options (services.orders.settings).
type Settings struct {
	// SagaDeadline bounds an order from placement to taking the payment; past it
	// the order is cancelled and what it held given back [20s].
	SagaDeadline config.Duration `yaml:"saga_deadline"`
	// LookupTTL is how long a product's price and a customer's standing, once
	// looked up, are reused [10s].
	LookupTTL config.Duration `yaml:"lookup_ttl"`
	// V1Deprecated and V1Sunset are the dates announced on /v1/ responses.
	V1Deprecated string `yaml:"v1_deprecated"`
	V1Sunset     string `yaml:"v1_sunset"`
}

// DecodeSettings reads the orders service's settings, with defaults.
func DecodeSettings(s config.Settings) (Settings, error) {
	out := Settings{
		SagaDeadline: config.Duration(20 * time.Second),
		LookupTTL:    config.Duration(10 * time.Second),
		V1Deprecated: "2026-11-01",
		V1Sunset:     "2027-06-01",
	}
	if err := s.Decode(&out); err != nil {
		return out, err
	}
	if d := out.SagaDeadline.Std(); d < time.Second || d > time.Hour {
		return out, s.Invalid("saga_deadline", "want 1s to 1h")
	}
	if d := out.LookupTTL.Std(); d < 0 || d > time.Hour {
		return out, s.Invalid("lookup_ttl", "want 0 to 1h")
	}
	for key, v := range map[string]string{"v1_deprecated": out.V1Deprecated, "v1_sunset": out.V1Sunset} {
		if _, err := time.Parse(time.DateOnly, v); err != nil {
			return out, s.Invalid(key, "want a date like 2027-06-01")
		}
	}
	return out, nil
}

// Config configures the orders service.
type Config struct {
	Settings Settings
	// MaxBody caps request bodies [64 KiB].
	MaxBody int64
	// Now returns the current time [time.Now].
	Now func() time.Time
	// Saga tunes the orchestrator (leases, backoff); its OnTransition is the
	// service's own.
	Saga saga.Config[Flow]
}

// Deps are the orders service's collaborators.
type Deps struct {
	DB     *store.DB
	Outbox *outbox.Outbox
	Log    *slog.Logger
	Tracer trace.Tracer
	// Metrics registers the service's metrics [none].
	Metrics prometheus.Registerer
	// Verifier authenticates customers' access tokens.
	Verifier *authn.Verifier
	// Users and Catalog are HTTP clients (the rpc stack), addressed at the URLs.
	Users      *http.Client
	UsersURL   string
	Catalog    *http.Client
	CatalogURL string
	// Inventory and Payments are the gRPC clients.
	Inventory inventoryv1connect.InventoryServiceClient
	Payments  paymentsv1connect.PaymentServiceClient
}

// Service is the orders service.
type Service struct {
	cfg       Config
	deps      Deps
	problems  problem.Writer
	saga      *saga.Orchestrator[Flow]
	lookups   *cache.ReadThrough
	v1Headers http.Header
}

// New builds the service on an open database with its migrations, the outbox's
// and the saga's applied.
func New(_ context.Context, cfg Config, deps Deps) (*Service, error) {
	if deps.DB == nil || deps.Outbox == nil || deps.Verifier == nil || deps.Users == nil || deps.Catalog == nil ||
		deps.Inventory == nil || deps.Payments == nil {
		return nil, errors.New("orders: DB, Outbox, Verifier, Users, Catalog, Inventory and Payments are required")
	}
	if cfg.Settings.SagaDeadline == 0 {
		cfg.Settings, _ = DecodeSettings(config.Settings{})
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 64 << 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg:      cfg,
		deps:     deps,
		problems: problem.Writer{Log: deps.Log, RequestID: telemetry.RequestID},
		lookups:  cache.NewReadThrough(cache.NewMemory(10_000), cfg.Settings.LookupTTL.Std()),
	}
	deprecated, _ := time.Parse(time.DateOnly, cfg.Settings.V1Deprecated)
	sunset, _ := time.Parse(time.DateOnly, cfg.Settings.V1Sunset)
	s.v1Headers = http.Header{
		"Deprecation": {"@" + itoa(deprecated.Unix())},
		"Sunset":      {sunset.UTC().Format(http.TimeFormat)},
		"Link":        {`</v2/orders>; rel="successor-version"`},
	}
	sc := cfg.Saga
	sc.OnTransition = s.onTransition
	if sc.Log == nil {
		sc.Log = deps.Log
	}
	if sc.Tracer == nil {
		sc.Tracer = deps.Tracer
	}
	if sc.Metrics == nil {
		sc.Metrics = deps.Metrics
	}
	if sc.Now == nil {
		sc.Now = cfg.Now
	}
	orch, err := saga.New(deps.DB, s.flow(), sc)
	if err != nil {
		return nil, err
	}
	s.saga = orch
	return s, nil
}

// Run takes over unfinished sagas and keeps this instance's leases until ctx ends.
func (s *Service) Run(ctx context.Context) error { return s.saga.Run(ctx) }

// sagas lists order sagas for administrators: ?state=unfinished (default) or all,
// ?limit=1..200 [50].
func (s *Service) sagas(w http.ResponseWriter, r *http.Request) {
	if p, _ := authn.PrincipalFrom(r.Context()); p == nil || !p.HasRole("admin") {
		s.problems.Write(w, r, problem.New(problem.Forbidden, "listing sagas is for administrators"))
		return
	}
	q := r.URL.Query()
	state := cmp.Or(q.Get("state"), "unfinished")
	if state != "unfinished" && state != "all" {
		s.problems.Write(w, r, problem.InvalidField("state", "want unfinished or all, got %q", state))
		return
	}
	limit := 50
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			s.problems.Write(w, r, problem.InvalidField("limit", "want 1 to 200, got %q", v))
			return
		}
		limit = n
	}
	list, err := s.saga.List(r.Context(), state == "unfinished", limit)
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	rest.Write(w, http.StatusOK, map[string]any{"sagas": list})
}

// Handler serves the orders API.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	auth := func(h http.HandlerFunc) http.Handler { return s.deps.Verifier.Require(s.problems.Write, h) }
	for _, v := range []version{v1, v2} {
		prefix := "/" + v.String() + "/orders"
		mux.Handle("POST "+prefix, auth(func(w http.ResponseWriter, r *http.Request) { s.place(w, r, v) }))
		mux.Handle("GET "+prefix, auth(func(w http.ResponseWriter, r *http.Request) { s.list(w, r, v) }))
		mux.Handle("GET "+prefix+"/{id}", auth(func(w http.ResponseWriter, r *http.Request) { s.get(w, r, v) }))
	}
	mux.Handle("GET /v1/admin/sagas", auth(s.sagas))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.problems.Write(w, r, problem.New(problem.NotFound, "no route %s %s", r.Method, r.URL.Path))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.URL.Path) >= 4 && r.URL.Path[:4] == "/v1/" {
			for k, v := range s.v1Headers {
				w.Header()[k] = v
			}
		}
		mux.ServeHTTP(w, r)
	})
}
