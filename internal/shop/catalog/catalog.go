// Package catalog is the product service of the reference shop: the products and
// prices shoppers browse. Reads are public.
//
// Products are seeded from data in the repository (seed/products.json) when the
// service starts: new seed entries are added, existing rows are left as they are.
// Lists are paginated by an opaque cursor over the product id, at most 100 a page.
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

// Product is an item for sale.
type Product struct {
	ID          string `json:"id"`
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Category    string `json:"category"`
	// Price is a decimal string in the currency's major unit ("129.00").
	Price    string `json:"price"`
	Currency string `json:"currency"`

	priceMinor int64
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
	// Now returns the current time [time.Now].
	Now func() time.Time
}

// Service is the catalog service.
type Service struct {
	cfg      Config
	db       *store.DB
	log      *slog.Logger
	problems problem.Writer
}

// New builds the service on an open, migrated database and seeds it.
func New(ctx context.Context, cfg Config, db *store.DB, log *slog.Logger) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{cfg: cfg, db: db, log: log, problems: problem.Writer{Log: log, RequestID: telemetry.RequestID}}
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
		`SELECT `+productColumns+` FROM products
		 WHERE id > $1 AND ($2 = '' OR category = $2)
		 ORDER BY id LIMIT $3`, page.After, category, page.Limit+1)
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
	rest.Write(w, http.StatusOK, out)
}

func (s *Service) get(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	p, err := scanProduct(s.db.QueryRowContext(r.Context(), `SELECT `+productColumns+` FROM products WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		s.problems.Write(w, r, problem.New(problem.NotFound, "no product with id %q", truncate(id, 64)))
		return
	}
	if err != nil {
		s.problems.Write(w, r, fmt.Errorf("get product: %w", err))
		return
	}
	rest.Write(w, http.StatusOK, p)
}

const productColumns = `id, sku, name, description, category, price_minor, currency`

type scanner interface{ Scan(...any) error }

func scanProduct(row scanner) (Product, error) {
	var p Product
	if err := row.Scan(&p.ID, &p.SKU, &p.Name, &p.Description, &p.Category, &p.priceMinor, &p.Currency); err != nil {
		return Product{}, err
	}
	p.Price = formatMinor(p.priceMinor)
	return p, nil
}

// formatMinor renders minor units of a two-decimal currency as a decimal string.
func formatMinor(minor int64) string {
	return fmt.Sprintf("%d.%02d", minor/100, minor%100)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
