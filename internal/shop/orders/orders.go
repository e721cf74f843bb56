// Package orders is the order service of the reference shop. This first cut takes an
// order, checks the customer with users over REST, holds its stock with inventory
// over gRPC — both through the rpc client stack, with service credentials and the
// customer's own token — and records the outcome.
//
// Every request is authenticated by the service itself against the users JWKS; no
// identity header is trusted. Placing an order requires an Idempotency-Key: the same
// key with the same body returns the same order, with a different body a 422; the
// key is passed on to inventory, so a retried reservation holds stock once.
package orders

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	inventoryv1 "github.com/switchyard/switchyard/api/gen/switchyard/inventory/v1"
	"github.com/switchyard/switchyard/api/gen/switchyard/inventory/v1/inventoryv1connect"
	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rest"
	"github.com/switchyard/switchyard/rpc"
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
	StatusPending   = "PENDING"
	StatusReserved  = "STOCK_RESERVED"
	StatusCancelled = "CANCELLED"
)

// Config configures the orders service.
type Config struct {
	// MaxBody caps request bodies [64 KiB].
	MaxBody int64
	// Now returns the current time [time.Now].
	Now func() time.Time
}

// Deps are the orders service's collaborators.
type Deps struct {
	DB  *store.DB
	Log *slog.Logger
	// Verifier authenticates customers' access tokens.
	Verifier *authn.Verifier
	// Users is the HTTP client to the users service (rpc stack), addressed at UsersURL.
	Users    *http.Client
	UsersURL string
	// Inventory is the inventory gRPC client.
	Inventory inventoryv1connect.InventoryServiceClient
}

// Service is the orders service.
type Service struct {
	cfg      Config
	deps     Deps
	problems problem.Writer
}

// New builds the service.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.DB == nil || deps.Verifier == nil || deps.Users == nil || deps.Inventory == nil {
		return nil, errors.New("orders: DB, Verifier, Users and Inventory are required")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 64 << 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{cfg: cfg, deps: deps, problems: problem.Writer{Log: deps.Log, RequestID: telemetry.RequestID}}, nil
}

// Handler serves the orders API.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/orders", s.deps.Verifier.Require(s.problems.Write, http.HandlerFunc(s.place)))
	mux.Handle("GET /v1/orders/{id}", s.deps.Verifier.Require(s.problems.Write, http.HandlerFunc(s.get)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.problems.Write(w, r, problem.New(problem.NotFound, "no route %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// Item is a line of an order.
type Item struct {
	ProductID string `json:"product_id"`
	Quantity  int    `json:"quantity"`
}

// Payment carries the card an order is to be paid with.
type Payment struct {
	CardNumber string `json:"card_number"`
}

type placeRequest struct {
	Items   []Item   `json:"items"`
	Payment *Payment `json:"payment,omitempty"`
}

// Order is an order as the API shows it.
type Order struct {
	ID         string    `json:"id"`
	CustomerID string    `json:"customer_id"`
	Status     string    `json:"status"`
	Reason     string    `json:"reason,omitempty"`
	Items      []Item    `json:"items"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

func (r *placeRequest) validate() error {
	if len(r.Items) == 0 || len(r.Items) > 50 {
		return problem.InvalidField("items", "want 1 to 50 items")
	}
	for i, it := range r.Items {
		if it.ProductID == "" || len(it.ProductID) > 64 {
			return problem.InvalidField(fmt.Sprintf("items[%d].product_id", i), "is required, at most 64 characters")
		}
		if it.Quantity < 1 || it.Quantity > 100 {
			return problem.InvalidField(fmt.Sprintf("items[%d].quantity", i), "want 1 to 100")
		}
	}
	if r.Payment != nil {
		n := len(r.Payment.CardNumber)
		if n < 12 || n > 19 || !digits(r.Payment.CardNumber) {
			return problem.InvalidField("payment.card_number", "want 12 to 19 digits")
		}
	}
	return nil
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func (s *Service) place(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p, _ := authn.PrincipalFrom(ctx)
	key := r.Header.Get("Idempotency-Key")
	if key == "" || len(key) > 64 {
		s.problems.Write(w, r, problem.New(problem.Invalid, "send an Idempotency-Key header (1 to 64 characters) so a retried order is placed once"))
		return
	}
	var req placeRequest
	if err := rest.Decode(w, r, &req, s.cfg.MaxBody); err != nil {
		s.problems.Write(w, r, err)
		return
	}
	if err := req.validate(); err != nil {
		s.problems.Write(w, r, err)
		return
	}
	canonical, _ := json.Marshal(req)
	sum := sha256.Sum256(canonical)
	hash := hex.EncodeToString(sum[:])

	if existing, err := s.byKey(ctx, p.Subject, key); err != nil {
		s.problems.Write(w, r, err)
		return
	} else if existing != nil {
		s.replay(w, r, existing, hash)
		return
	}
	if err := s.checkCustomer(ctx, p); err != nil {
		s.problems.Write(w, r, err)
		return
	}
	id, _ := uuid.NewV7()
	now := s.cfg.Now().UTC().Truncate(time.Millisecond)
	o := &Order{ID: id.String(), CustomerID: p.Subject, Status: StatusPending, Items: req.Items, CreatedAt: now, UpdatedAt: now}
	if err := s.insert(ctx, o, key, hash); store.IsUniqueViolation(err) {
		// A concurrent request with the same key won; answer as it did.
		existing, err := s.byKey(ctx, p.Subject, key)
		if err != nil || existing == nil {
			s.problems.Write(w, r, fmt.Errorf("load order after a key conflict: %w", err))
			return
		}
		s.replay(w, r, existing, hash)
		return
	} else if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	s.reserve(ctx, o)
	w.Header().Set("Location", "/v1/orders/"+o.ID)
	rest.Write(w, http.StatusCreated, o)
}

// replay answers a repeated key: the same order for the same body, 422 otherwise.
func (s *Service) replay(w http.ResponseWriter, r *http.Request, o *storedOrder, hash string) {
	if o.requestHash != hash {
		s.problems.Write(w, r, problem.New(problem.Unprocessable, "this Idempotency-Key was used for a different order; use a new key"))
		return
	}
	w.Header().Set("Location", "/v1/orders/"+o.ID)
	w.Header().Set("Idempotent-Replayed", "true")
	rest.Write(w, http.StatusCreated, o.Order)
}

// checkCustomer asks users for the customer's record, presenting the customer's own
// token beside this service's credentials.
func (s *Service) checkCustomer(ctx context.Context, p *authn.Principal) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.deps.UsersURL+"/v1/users/"+p.Subject, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+p.Token)
	resp, err := s.deps.Users.Do(req)
	if err != nil {
		return fmt.Errorf("check customer: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusUnauthorized:
		return problem.New(problem.Forbidden, "the customer's account is not active")
	case resp.StatusCode >= 500:
		return &problem.Error{Kind: problem.Unavailable, Detail: "users is unavailable", RetryAfter: time.Second}
	default:
		return fmt.Errorf("check customer: users answered %s", resp.Status)
	}
}

// reserve holds the order's stock and records the outcome. Out of stock cancels the
// order; any other failure releases whatever may have been held and cancels it.
func (s *Service) reserve(ctx context.Context, o *Order) {
	items := make([]*inventoryv1.Item, 0, len(o.Items))
	for _, it := range o.Items {
		items = append(items, &inventoryv1.Item{ProductId: it.ProductID, Quantity: int32(it.Quantity)})
	}
	req := connect.NewRequest(&inventoryv1.ReserveStockRequest{OrderId: o.ID, Items: items})
	req.Header().Set("Idempotency-Key", o.ID)
	_, err := s.deps.Inventory.ReserveStock(ctx, req)
	err = rpc.FromConnect(err)
	switch {
	case err == nil:
		o.Status = StatusReserved
	case problem.KindOf(err) == problem.Conflict:
		o.Status, o.Reason = StatusCancelled, problem.From(err).Detail
	default:
		s.deps.Log.WarnContext(ctx, "reserve failed; releasing", "order_id", o.ID, "error", err)
		rel := connect.NewRequest(&inventoryv1.ReleaseReservationRequest{OrderId: o.ID})
		rel.Header().Set("Idempotency-Key", o.ID)
		if _, rerr := s.deps.Inventory.ReleaseReservation(context.WithoutCancel(ctx), rel); rerr != nil {
			s.deps.Log.ErrorContext(ctx, "release after a failed reserve failed", "order_id", o.ID, "error", rerr)
		}
		o.Status, o.Reason = StatusCancelled, "inventory unavailable: "+problem.From(err).Detail
	}
	o.UpdatedAt = s.cfg.Now().UTC().Truncate(time.Millisecond)
	if _, err := s.deps.DB.ExecContext(context.WithoutCancel(ctx),
		`UPDATE orders SET status = $1, reason = $2, updated_at = $3 WHERE id = $4`,
		o.Status, o.Reason, store.Millis(o.UpdatedAt), o.ID); err != nil {
		s.deps.Log.ErrorContext(ctx, "record order status", "order_id", o.ID, "error", err)
	}
}

func (s *Service) get(w http.ResponseWriter, r *http.Request) {
	p, _ := authn.PrincipalFrom(r.Context())
	o, err := s.byID(r.Context(), r.PathValue("id"))
	if err == nil && o.CustomerID != p.Subject {
		err = errNoOrder // someone else's order does not exist for this caller
	}
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	rest.Write(w, http.StatusOK, o.Order)
}

var errNoOrder = problem.New(problem.NotFound, "no such order")

type storedOrder struct {
	Order
	requestHash string
}

const orderColumns = `id, customer_id, status, reason, items, request_hash, created_at, updated_at`

func scanOrder(row *sql.Row) (*storedOrder, error) {
	var (
		o                storedOrder
		items            string
		created, updated int64
	)
	if err := row.Scan(&o.ID, &o.CustomerID, &o.Status, &o.Reason, &items, &o.requestHash, &created, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(items), &o.Items); err != nil {
		return nil, fmt.Errorf("order %s items: %w", o.ID, err)
	}
	o.CreatedAt, o.UpdatedAt = store.Time(created), store.Time(updated)
	return &o, nil
}

func (s *Service) byKey(ctx context.Context, customer, key string) (*storedOrder, error) {
	o, err := scanOrder(s.deps.DB.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE customer_id = $1 AND idempotency_key = $2`, customer, key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return o, err
}

func (s *Service) byID(ctx context.Context, id string) (*storedOrder, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, errNoOrder
	}
	o, err := scanOrder(s.deps.DB.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoOrder
	}
	return o, err
}

func (s *Service) insert(ctx context.Context, o *Order, key, hash string) error {
	items, _ := json.Marshal(o.Items)
	_, err := s.deps.DB.ExecContext(ctx,
		`INSERT INTO orders (id, customer_id, status, reason, items, idempotency_key, request_hash, created_at, updated_at)
		 VALUES ($1, $2, $3, '', $4, $5, $6, $7, $7)`,
		o.ID, o.CustomerID, o.Status, string(items), key, hash, store.Millis(o.CreatedAt))
	return err
}
