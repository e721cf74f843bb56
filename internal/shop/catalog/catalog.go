// Package catalog is the product service of the reference shop: the products and
// prices shoppers browse. Reads are public.
//
// Products are seeded from data in the repository (seed/products.json) when the
// service starts: new seed entries are added, existing rows are left as they are.
// Lists are paginated by an opaque cursor over the product id, at most 100 a page.
//
// Availability is a read model (CQRS): catalog consumes inventory.stock.changed.v1
// through its inbox and keeps the newest level per product, so it is eventually
// consistent with inventory — a product shows no availability until its first event
// arrives. Single-product reads go through a read-through cache; each stock change
// invalidates the product's entry after its transaction commits.
package catalog

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"regexp"
	"time"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/cache"
	"github.com/switchyard/switchyard/inbox"
	"github.com/switchyard/switchyard/internal/shop/commerce"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rest"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/telemetry"
)

//go:embed migrations/*.sql
var migrations embed.FS

//go:embed seed/products.json
var seedProducts []byte

// Migrations are the catalog database's schema migrations, for store.Open.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrations, "migrations")
	return sub
}

// Page sizes of GET /v1/products.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// CacheControl is what caches (the gateway's) are told of product reads: fresh
// for five seconds — availability is a read model, already a little behind — and
// good for five minutes while the catalog is down. Each answer carries an ETag.
const CacheControl = "public, max-age=5, stale-if-error=300"

// Product is an item for sale.
type Product struct {
	ID          string `json:"id"`
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Category    string `json:"category"`
	// Price is a decimal string in the currency's major unit ("129.00").
	Price string `json:"price"`
	// PriceMinor is the same price in the currency's minor units (12900), for
	// programs that do arithmetic with it.
	PriceMinor int64  `json:"price_minor"`
	Currency   string `json:"currency"`
	// Available is the stock inventory last announced; absent until it has.
	Available *int64 `json:"available,omitempty"`
}

type seedProduct struct {
	ID          string `json:"id"`
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Category    string `json:"category"`
	PriceMinor  int64  `json:"price_minor"`
	Currency    string `json:"currency"`
}

// Config configures the catalog service.
type Config struct {
	// CacheTTL is how long a product read stays cached [30s].
	CacheTTL time.Duration
	// Now returns the current time [time.Now].
	Now func() time.Time
}

// Deps are the catalog's collaborators.
type Deps struct {
	DB  *store.DB
	Log *slog.Logger
	// Inbox de-duplicates consumed events. Required.
	Inbox *inbox.Inbox
	// Cache holds product reads [an in-process LRU].
	Cache cache.Cache
}

// EventStockChanged is the event catalog's availability view is built from.
const EventStockChanged = "inventory.stock.changed.v1"

// Service is the catalog service.
type Service struct {
	cfg      Config
	db       *store.DB
	log      *slog.Logger
	inbox    *inbox.Inbox
	products *cache.ReadThrough
	problems problem.Writer
}

// New builds the service on an open, migrated database (its own migrations and the
// inbox's) and seeds it.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	if deps.DB == nil || deps.Inbox == nil {
		return nil, errors.New("catalog: DB and Inbox are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 30 * time.Second
	}
	if deps.Cache == nil {
		deps.Cache = cache.NewMemory(0)
	}
	s := &Service{cfg: cfg, db: deps.DB, log: deps.Log, inbox: deps.Inbox,
		products: cache.NewReadThrough(deps.Cache, cfg.CacheTTL),
		problems: problem.Writer{Log: deps.Log, RequestID: telemetry.RequestID}}
	s.products.OnError = func(err error) { deps.Log.Warn("product cache failing; reading the database", "error", err) }
	if err := s.seed(ctx); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return s, nil
}

func (s *Service) seed(ctx context.Context) error {
	var products []seedProduct
	if err := json.Unmarshal(seedProducts, &products); err != nil {
		return fmt.Errorf("seed data: %w", err)
	}
	now := store.Millis(s.cfg.Now())
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		added := int64(0)
		for _, p := range products {
			res, err := tx.ExecContext(ctx,
				`INSERT INTO products (id, sku, name, description, category, price_minor, currency, created_at, updated_at)
				 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (id) DO NOTHING`,
				p.ID, p.SKU, p.Name, p.Description, p.Category, p.PriceMinor, p.Currency, now)
			if err != nil {
				return fmt.Errorf("seed %s: %w", p.ID, err)
			}
			n, _ := res.RowsAffected()
			added += n
		}
		if added > 0 {
			s.log.Info("catalog seeded", "products", added)
		}
		return nil
	})
}

// Run has no background work yet; it waits for ctx.
func (s *Service) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Handler serves the catalog API.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/products", s.list)
	mux.HandleFunc("GET /v1/products/{id}", s.get)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.problems.Write(w, r, problem.New(problem.NotFound, "no route %s %s", r.Method, r.URL.Path))
	})
	return mux
}

var categoryPattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

func (s *Service) list(w http.ResponseWriter, r *http.Request) {
	page, err := rest.ParsePage(r, DefaultPageSize, MaxPageSize)
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	category := r.URL.Query().Get("category")
	if category != "" && !categoryPattern.MatchString(category) {
		s.problems.Write(w, r, problem.InvalidField("category", "is not a category name"))
		return
	}
	rows, err := s.db.QueryContext(r.Context(),
		`SELECT `+productColumns+` FROM products p LEFT JOIN availability a ON a.product_id = p.id
		 WHERE p.id > $1 AND ($2 = '' OR p.category = $2)
		 ORDER BY p.id LIMIT $3`, page.After, category, page.Limit+1)
	if err != nil {
		s.problems.Write(w, r, fmt.Errorf("list products: %w", err))
		return
	}
	defer rows.Close()
	out := rest.Page[Product]{Items: make([]Product, 0, page.Limit)}
	for rows.Next() {
		p, err := scanProduct(rows)
		if err != nil {
			s.problems.Write(w, r, fmt.Errorf("list products: %w", err))
			return
		}
		out.Items = append(out.Items, p)
	}
	if err := rows.Err(); err != nil {
		s.problems.Write(w, r, fmt.Errorf("list products: %w", err))
		return
	}
	if len(out.Items) > page.Limit {
		out.Items = out.Items[:page.Limit]
		out.NextCursor = rest.EncodeCursor(out.Items[page.Limit-1].ID)
	}
	rest.WriteCacheableValue(w, r, out, CacheControl)
}

func (s *Service) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if len(id) > 64 {
		s.problems.Write(w, r, problem.New(problem.NotFound, "no product with id %q", truncate(id, 64)))
		return
	}
	body, hit, err := s.products.Get(r.Context(), productKey(id), func(ctx context.Context) ([]byte, error) {
		p, err := scanProduct(s.db.QueryRowContext(ctx, `SELECT `+productColumns+` FROM products p LEFT JOIN availability a ON a.product_id = p.id WHERE p.id = $1`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return nil, problem.New(problem.NotFound, "no product with id %q", id)
		}
		if err != nil {
			return nil, fmt.Errorf("get product: %w", err)
		}
		b, err := json.Marshal(p)
		return append(b, '\n'), err
	})
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	if hit {
		w.Header().Set("X-Cache", "hit")
	} else {
		w.Header().Set("X-Cache", "miss")
	}
	rest.WriteCacheable(w, r, body, CacheControl) // body is shared with the cache's other readers: only read
}

func productKey(id string) string { return "catalog:product:" + id }

// OnStockChanged applies an inventory.stock.changed.v1 event to the availability
// view, once (inbox), keeping the newest level, then drops the product's cached read.
func (s *Service) OnStockChanged(ctx context.Context, msg *bus.Message) error {
	var d struct {
		ProductID string `json:"product_id"`
		Available int64  `json:"available"`
		Reserved  int64  `json:"reserved"`
		Sold      int64  `json:"sold"`
	}
	if err := msg.Event.DecodeData(&d); err != nil {
		return bus.Permanent(err)
	}
	_, err := s.inbox.Handle(ctx, "catalog", msg, func(ctx context.Context, tx *sql.Tx, msg *bus.Message) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO availability (product_id, available, reserved, sold, as_of, event_id) VALUES ($1, $2, $3, $4, $5, $6)
			 ON CONFLICT (product_id) DO UPDATE SET available = excluded.available, reserved = excluded.reserved,
			   sold = excluded.sold, as_of = excluded.as_of, event_id = excluded.event_id
			 WHERE availability.as_of <= excluded.as_of`,
			d.ProductID, d.Available, d.Reserved, d.Sold, store.Millis(msg.Event.Time), msg.Event.ID)
		return err
	})
	if err != nil {
		return err
	}
	if err := s.products.Invalidate(ctx, productKey(d.ProductID)); err != nil {
		s.log.WarnContext(ctx, "product cache invalidation failed; the entry expires by itself", "product_id", d.ProductID, "error", err)
	}
	return nil
}

const productColumns = `p.id, p.sku, p.name, p.description, p.category, p.price_minor, p.currency, a.available`

type scanner interface{ Scan(...any) error }

func scanProduct(row scanner) (Product, error) {
	var (
		p         Product
		available sql.NullInt64
	)
	if err := row.Scan(&p.ID, &p.SKU, &p.Name, &p.Description, &p.Category, &p.PriceMinor, &p.Currency, &available); err != nil {
		return Product{}, err
	}
	if available.Valid {
		p.Available = &available.Int64
	}
	p.Price = commerce.Decimal(p.PriceMinor, p.Currency)
	return p, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
