// Package inventory is the stock service of the reference shop: stock levels per
// product and the reservations orders hold against them, served over gRPC
// (api/proto/switchyard/inventory/v1).
//
// Every change publishes events through the outbox, in the transaction that makes
// it: inventory.stock.reserved|committed|released.v1 about the order, and
// inventory.stock.changed.v1 with the new levels of each product touched (catalog
// keeps its availability view from them).
//
// Guarantees: available stock never goes below zero, however many reservations race
// (each change is one conditional UPDATE inside a transaction, items taken in product
// order so concurrent reservations cannot deadlock); every call that changes state is
// idempotent by order id (the reservations table remembers each order's outcome); a
// reservation is all or nothing.
package inventory

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	inventoryv1 "github.com/switchyard/switchyard/api/gen/switchyard/inventory/v1"
	"github.com/switchyard/switchyard/api/gen/switchyard/inventory/v1/inventoryv1connect"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/outbox"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

//go:embed seed/stock.json
var seedStock []byte

// Migrations are the inventory database's schema migrations, for store.Open.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrations, "migrations")
	return sub
}

// Limits on a reservation.
const (
	MaxItems    = 50
	MaxQuantity = 1000
)

// Config configures the inventory service.
type Config struct {
	Settings Settings
	// Now returns the current time [time.Now].
	Now func() time.Time
}

// Settings are the inventory service's own options (services.inventory.settings).
type Settings struct {
	// SeedQuantity, when above zero, is the stock every product starts with instead
	// of the seed file's (for load tests that should not run out). It applies to
	// products seeded from now on; stock already recorded is never changed.
	SeedQuantity int64 `yaml:"seed_quantity"`
}

// DecodeSettings reads the inventory service's settings.
func DecodeSettings(s config.Settings) (Settings, error) {
	var out Settings
	if err := s.Decode(&out); err != nil {
		return out, err
	}
	if out.SeedQuantity < 0 || out.SeedQuantity > 1_000_000_000 {
		return out, s.Invalid("seed_quantity", "want 0 (the seed file's) to 1000000000")
	}
	return out, nil
}

// Event types inventory publishes.
const (
	EventStockChanged   = "inventory.stock.changed.v1"
	EventStockReserved  = "inventory.stock.reserved.v1"
	EventStockCommitted = "inventory.stock.committed.v1"
	EventStockReleased  = "inventory.stock.released.v1"
)

// source is the CloudEvents source of inventory's events.
const source = "/switchyard/inventory"

// Service is the inventory service.
type Service struct {
	cfg    Config
	db     *store.DB
	outbox *outbox.Outbox
	log    *slog.Logger
}

var _ inventoryv1connect.InventoryServiceHandler = (*Service)(nil)

// Deps are the inventory service's collaborators.
type Deps struct {
	// DB is the service's database, migrated (its own migrations and the outbox's).
	DB *store.DB
	// Outbox carries the stock events. Required.
	Outbox *outbox.Outbox
	Log    *slog.Logger
}

// New builds the service and seeds the stock of products it does not know yet.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	if deps.DB == nil || deps.Outbox == nil {
		return nil, errors.New("inventory: a database and an outbox are required")
	}
	db, ob, log := deps.DB, deps.Outbox, deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{cfg: cfg, db: db, outbox: ob, log: log}
	if err := s.seed(ctx); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return s, nil
}

func (s *Service) seed(ctx context.Context) error {
	var rows []struct {
		ProductID string `json:"product_id"`
		Quantity  int64  `json:"quantity"`
	}
	if err := json.Unmarshal(seedStock, &rows); err != nil {
		return fmt.Errorf("seed data: %w", err)
	}
	now := store.Millis(s.cfg.Now())
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		for _, r := range rows {
			if q := s.cfg.Settings.SeedQuantity; q > 0 {
				r.Quantity = q
			}
			res, err := tx.ExecContext(ctx,
				`INSERT INTO stock (product_id, available, initial, updated_at) VALUES ($1, $2, $2, $3) ON CONFLICT (product_id) DO NOTHING`,
				r.ProductID, r.Quantity, now)
			if err != nil {
				return fmt.Errorf("seed %s: %w", r.ProductID, err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				if err := s.changed(ctx, tx, level{r.ProductID, r.Quantity, 0, 0}, "restocked", ""); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// level is a product's stock after a change.
type level struct {
	product                   string
	available, reserved, sold int64
}

// adjust applies a change to a product's stock (under a condition, when given) and
// returns the new level; ok is false when the condition did not hold.
func (s *Service) adjust(ctx context.Context, tx *sql.Tx, set, cond string, q int64, product string) (level, bool, error) {
	l := level{product: product}
	err := tx.QueryRowContext(ctx, `UPDATE stock SET `+set+`, updated_at = $2 WHERE product_id = $3`+cond+
		` RETURNING available, reserved, sold`, q, store.Millis(s.cfg.Now()), product).Scan(&l.available, &l.reserved, &l.sold)
	if errors.Is(err, sql.ErrNoRows) {
		return l, false, nil
	}
	if err != nil {
		return l, false, fmt.Errorf("stock %s: %w", product, err)
	}
	return l, true, nil
}

// changed records, in tx, the event announcing a product's new level.
func (s *Service) changed(ctx context.Context, tx *sql.Tx, l level, reason, orderID string) error {
	data := map[string]any{"product_id": l.product, "available": l.available, "reserved": l.reserved, "sold": l.sold, "reason": reason}
	if orderID != "" {
		data["order_id"] = orderID
	}
	e, err := event.New(ctx, source, EventStockChanged, l.product, data)
	if err != nil {
		return err
	}
	return s.outbox.Add(ctx, tx, e)
}

// announce records, in tx, an event about an order's reservation.
func (s *Service) announce(ctx context.Context, tx *sql.Tx, typ string, r *reservation) error {
	e, err := event.New(ctx, source, typ, r.orderID, map[string]any{"order_id": r.orderID, "items": r.items})
	if err != nil {
		return err
	}
	return s.outbox.Add(ctx, tx, e)
}

// item is a validated line of a reservation.
type item struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

func validate(orderID string, in []*inventoryv1.Item) ([]item, error) {
	if orderID == "" || len(orderID) > 64 {
		return nil, problem.InvalidField("order_id", "is required, at most 64 characters")
	}
	if len(in) == 0 || len(in) > MaxItems {
		return nil, problem.InvalidField("items", "want 1 to %d items", MaxItems)
	}
	merged := map[string]int64{}
	for i, it := range in {
		if it.GetProductId() == "" {
			return nil, problem.InvalidField(fmt.Sprintf("items[%d].product_id", i), "is required")
		}
		if it.GetQuantity() < 1 || it.GetQuantity() > MaxQuantity {
			return nil, problem.InvalidField(fmt.Sprintf("items[%d].quantity", i), "want 1 to %d", MaxQuantity)
		}
		merged[it.GetProductId()] += int64(it.GetQuantity())
	}
	out := make([]item, 0, len(merged))
	for id, q := range merged {
		out = append(out, item{ProductID: id, Quantity: q})
	}
	// A fixed order: two transactions taking the same rows take them in the same order.
	slices.SortFunc(out, func(a, b item) int { return strings.Compare(a.ProductID, b.ProductID) })
	return out, nil
}

type reservation struct {
	orderID string
	state   string
	items   []item
	reason  string
}

func (r *reservation) proto() *inventoryv1.Reservation {
	out := &inventoryv1.Reservation{OrderId: r.orderID}
	switch r.state {
	case "held":
		out.State = inventoryv1.ReservationState_RESERVATION_STATE_HELD
	case "committed":
		out.State = inventoryv1.ReservationState_RESERVATION_STATE_COMMITTED
	case "released":
		out.State = inventoryv1.ReservationState_RESERVATION_STATE_RELEASED
	}
	for _, it := range r.items {
		out.Items = append(out.Items, &inventoryv1.Item{ProductId: it.ProductID, Quantity: int32(it.Quantity)})
	}
	return out
}

func loadReservation(ctx context.Context, tx *sql.Tx, orderID string) (*reservation, error) {
	var (
		r     = reservation{orderID: orderID}
		items string
	)
	err := tx.QueryRowContext(ctx, `SELECT state, items, reason FROM reservations WHERE order_id = $1`, orderID).Scan(&r.state, &items, &r.reason)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load reservation: %w", err)
	}
	if err := json.Unmarshal([]byte(items), &r.items); err != nil {
		return nil, fmt.Errorf("reservation %s items: %w", orderID, err)
	}
	return &r, nil
}

func (s *Service) save(ctx context.Context, tx *sql.Tx, r *reservation, insert bool) error {
	items, _ := json.Marshal(r.items)
	if items == nil || string(items) == "null" {
		items = []byte("[]")
	}
	now := store.Millis(s.cfg.Now())
	var err error
	if insert {
		_, err = tx.ExecContext(ctx, `INSERT INTO reservations (order_id, state, items, reason, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)`,
			r.orderID, r.state, string(items), r.reason, now)
	} else {
		_, err = tx.ExecContext(ctx, `UPDATE reservations SET state = $1, updated_at = $2 WHERE order_id = $3`, r.state, now, r.orderID)
	}
	if err != nil {
		return fmt.Errorf("save reservation: %w", err)
	}
	return nil
}

// errShort is the out-of-stock outcome; its detail names the short products.
func errShort(reason string) error {
	return problem.New(problem.Conflict, "insufficient stock: %s", reason)
}

// ReserveStock implements inventoryv1connect.InventoryServiceHandler.
func (s *Service) ReserveStock(ctx context.Context, req *connect.Request[inventoryv1.ReserveStockRequest]) (*connect.Response[inventoryv1.ReserveStockResponse], error) {
	items, err := validate(req.Msg.GetOrderId(), req.Msg.GetItems())
	if err != nil {
		return nil, err
	}
	orderID := req.Msg.GetOrderId()
	out, err := s.reserve(ctx, orderID, items)
	if store.IsUniqueViolation(err) {
		// A concurrent call for the same order won the race; its outcome stands.
		out, err = s.reserve(ctx, orderID, items)
	}
	if err != nil {
		return nil, err
	}
	if out.state == "rejected" {
		return nil, errShort(out.reason)
	}
	s.log.InfoContext(ctx, "stock reserved", "order_id", orderID, "state", out.state)
	return connect.NewResponse(&inventoryv1.ReserveStockResponse{Reservation: out.proto()}), nil
}

// reserve holds items for orderID, or returns the order's earlier outcome.
func (s *Service) reserve(ctx context.Context, orderID string, items []item) (*reservation, error) {
	var out *reservation
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		existing, err := loadReservation(ctx, tx, orderID)
		if err != nil {
			return err
		}
		if existing != nil {
			out = existing // a repeat: the first outcome stands
			return nil
		}
		var (
			short  []string
			levels []level
		)
		for _, it := range items {
			l, ok, err := s.adjust(ctx, tx, "available = available - $1, reserved = reserved + $1", " AND available >= $1", it.Quantity, it.ProductID)
			if err != nil {
				return err
			}
			if !ok {
				short = append(short, it.ProductID)
			}
			levels = append(levels, l)
		}
		if len(short) > 0 {
			return errShortStock{short}
		}
		out = &reservation{orderID: orderID, state: "held", items: items}
		if err := s.save(ctx, tx, out, true); err != nil {
			return err
		}
		for _, l := range levels {
			if err := s.changed(ctx, tx, l, "reserved", orderID); err != nil {
				return err
			}
		}
		return s.announce(ctx, tx, EventStockReserved, out)
	})
	var shortErr errShortStock
	if errors.As(err, &shortErr) {
		// Nothing was held (the transaction rolled back); remember the rejection so a
		// repeat of this order gets the same answer.
		return s.reject(ctx, orderID, items, shortErr.describe(ctx, s))
	}
	return out, err
}

type errShortStock struct{ products []string }

func (e errShortStock) Error() string { return "short: " + strings.Join(e.products, ", ") }

func (e errShortStock) describe(ctx context.Context, s *Service) string {
	parts := make([]string, 0, len(e.products))
	for _, p := range e.products {
		var avail int64
		err := s.db.QueryRowContext(ctx, `SELECT available FROM stock WHERE product_id = $1`, p).Scan(&avail)
		if errors.Is(err, sql.ErrNoRows) {
			parts = append(parts, p+" (unknown product)")
		} else {
			parts = append(parts, fmt.Sprintf("%s (%d available)", p, avail))
		}
	}
	return strings.Join(parts, ", ")
}

func (s *Service) reject(ctx context.Context, orderID string, items []item, reason string) (*reservation, error) {
	var out *reservation
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		existing, err := loadReservation(ctx, tx, orderID)
		if err != nil || existing != nil {
			out = existing
			return err
		}
		out = &reservation{orderID: orderID, state: "rejected", items: items, reason: reason}
		return s.save(ctx, tx, out, true)
	})
	return out, err
}

// CommitReservation implements inventoryv1connect.InventoryServiceHandler.
func (s *Service) CommitReservation(ctx context.Context, req *connect.Request[inventoryv1.CommitReservationRequest]) (*connect.Response[inventoryv1.CommitReservationResponse], error) {
	orderID := req.Msg.GetOrderId()
	var out *reservation
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		r, err := loadReservation(ctx, tx, orderID)
		if err != nil {
			return err
		}
		switch {
		case r == nil:
			return problem.New(problem.NotFound, "order %s holds no reservation", orderID)
		case r.state == "committed":
			out = r
			return nil
		case r.state != "held":
			return problem.New(problem.Conflict, "order %s's reservation is %s and cannot be committed", orderID, r.state)
		}
		out = r
		return s.settle(ctx, tx, r, "reserved = reserved - $1, sold = sold + $1", "committed", EventStockCommitted)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&inventoryv1.CommitReservationResponse{Reservation: out.proto()}), nil
}

// settle ends a held reservation: each line's quantity moves out of reserved as set
// says (to sold, or back to available), each product's change is recorded, and the
// reservation, now in state, is saved and announced as eventType.
func (s *Service) settle(ctx context.Context, tx *sql.Tx, r *reservation, set, state, eventType string) error {
	for _, it := range r.items {
		l, _, err := s.adjust(ctx, tx, set, "", it.Quantity, it.ProductID)
		if err != nil {
			return err
		}
		if err := s.changed(ctx, tx, l, state, r.orderID); err != nil {
			return err
		}
	}
	r.state = state
	if err := s.save(ctx, tx, r, false); err != nil {
		return err
	}
	return s.announce(ctx, tx, eventType, r)
}

// ReleaseReservation implements inventoryv1connect.InventoryServiceHandler.
func (s *Service) ReleaseReservation(ctx context.Context, req *connect.Request[inventoryv1.ReleaseReservationRequest]) (*connect.Response[inventoryv1.ReleaseReservationResponse], error) {
	orderID := req.Msg.GetOrderId()
	if orderID == "" || len(orderID) > 64 {
		return nil, problem.InvalidField("order_id", "is required, at most 64 characters")
	}
	var out *reservation
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		r, err := loadReservation(ctx, tx, orderID)
		if err != nil {
			return err
		}
		switch {
		case r == nil:
			// Nothing held yet: leave a released marker, so a reserve that arrives
			// late (a retry still in flight) holds nothing for a cancelled order.
			out = &reservation{orderID: orderID, state: "released"}
			return s.save(ctx, tx, out, true)
		case r.state == "released", r.state == "rejected":
			out = r
			return nil
		case r.state == "committed":
			return problem.New(problem.Conflict, "order %s's reservation is committed and cannot be released", orderID)
		}
		out = r
		return s.settle(ctx, tx, r, "reserved = reserved - $1, available = available + $1", "released", EventStockReleased)
	})
	if err != nil {
		return nil, err
	}
	resp := &inventoryv1.ReleaseReservationResponse{}
	if len(out.items) > 0 {
		resp.Reservation = out.proto()
	}
	return connect.NewResponse(resp), nil
}

// GetStock implements inventoryv1connect.InventoryServiceHandler. No ids means every
// product.
func (s *Service) GetStock(ctx context.Context, req *connect.Request[inventoryv1.GetStockRequest]) (*connect.Response[inventoryv1.GetStockResponse], error) {
	ids := req.Msg.GetProductIds()
	if len(ids) > 100 {
		return nil, problem.InvalidField("product_ids", "at most 100 per call")
	}
	rows, err := s.db.QueryContext(ctx, `SELECT product_id, available, reserved, sold FROM stock ORDER BY product_id`)
	if err != nil {
		return nil, fmt.Errorf("get stock: %w", err)
	}
	defer rows.Close()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	resp := &inventoryv1.GetStockResponse{}
	for rows.Next() {
		st := &inventoryv1.Stock{}
		if err := rows.Scan(&st.ProductId, &st.Available, &st.Reserved, &st.Sold); err != nil {
			return nil, fmt.Errorf("get stock: %w", err)
		}
		if len(want) == 0 || want[st.ProductId] {
			resp.Stock = append(resp.Stock, st)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get stock: %w", err)
	}
	return connect.NewResponse(resp), nil
}
