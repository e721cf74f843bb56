package orders

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/internal/shop/commerce"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rest"
	"github.com/switchyard/switchyard/store"
)

// Limits on an order.
const (
	MaxItems    = 50
	MaxQuantity = 100
)

// ItemRequest is a line of an order as placed.
type ItemRequest struct {
	ProductID string `json:"product_id"`
	Quantity  int    `json:"quantity"`
}

// PaymentRequest carries the card an order is paid with.
type PaymentRequest struct {
	CardNumber string `json:"card_number"`
}

// PlaceRequest is the body of POST /v{1,2}/orders.
type PlaceRequest struct {
	Items   []ItemRequest   `json:"items"`
	Payment *PaymentRequest `json:"payment"`
}

func (r *PlaceRequest) validate() error {
	if len(r.Items) == 0 || len(r.Items) > MaxItems {
		return problem.InvalidField("items", "want 1 to %d items", MaxItems)
	}
	seen := map[string]bool{}
	for i, it := range r.Items {
		if it.ProductID == "" || len(it.ProductID) > 64 {
			return problem.InvalidField(fmt.Sprintf("items[%d].product_id", i), "is required, at most 64 characters")
		}
		if seen[it.ProductID] {
			return problem.InvalidField(fmt.Sprintf("items[%d].product_id", i), "repeats an earlier line; put the whole quantity on one line")
		}
		seen[it.ProductID] = true
		if it.Quantity < 1 || it.Quantity > MaxQuantity {
			return problem.InvalidField(fmt.Sprintf("items[%d].quantity", i), "want 1 to %d", MaxQuantity)
		}
	}
	if r.Payment == nil {
		return problem.InvalidField("payment", "is required")
	}
	if !commerce.ValidCardNumber(r.Payment.CardNumber) {
		return problem.InvalidField("payment.card_number", "want 12 to 19 digits passing the Luhn check")
	}
	return nil
}

// validKey reports whether k is a usable Idempotency-Key: 1 to 64 visible ASCII
// characters.
func validKey(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for i := range len(k) {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

func (s *Service) place(w http.ResponseWriter, r *http.Request, v version) {
	ctx := r.Context()
	p, _ := authn.PrincipalFrom(ctx)
	key := r.Header.Get("Idempotency-Key")
	if !validKey(key) {
		s.problems.Write(w, r, problem.InvalidField("Idempotency-Key",
			"send 1 to 64 visible ASCII characters, the same with every retry, so that a retried order is placed once"))
		return
	}
	var req PlaceRequest
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
		s.replay(w, r, v, existing, hash)
		return
	}
	if err := s.checkCustomer(ctx, p); err != nil {
		s.problems.Write(w, r, err)
		return
	}
	lines, err := s.price(ctx, req.Items)
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	id, _ := uuid.NewV7()
	now := s.cfg.Now().UTC().Truncate(time.Millisecond)
	o := &Order{
		ID: id.String(), CustomerID: p.Subject, Status: StatusPending, Lines: lines,
		Currency: lines[0].Currency, CardLast4: req.Payment.CardNumber[len(req.Payment.CardNumber)-4:],
		CreatedAt: now, UpdatedAt: now,
		History: []Change{{Status: StatusPending, At: now}},
	}
	for _, l := range lines {
		o.Total += l.UnitPrice * int64(l.Quantity)
	}
	flow := Flow{OrderID: o.ID, CustomerID: o.CustomerID, Total: o.Total, Currency: o.Currency, Card: req.Payment.CardNumber}
	for _, l := range lines {
		flow.Items = append(flow.Items, ItemRequest{ProductID: l.ProductID, Quantity: l.Quantity})
	}
	err = s.saga.Start(ctx, o.ID, flow, func(tx *sql.Tx) error { return s.insert(ctx, tx, o, key, hash) })
	if store.IsUniqueViolation(err) {
		// A concurrent request with the same key won; answer as it did.
		existing, err := s.byKey(ctx, p.Subject, key)
		if err != nil || existing == nil {
			s.problems.Write(w, r, fmt.Errorf("load the order after a key conflict: %w", err))
			return
		}
		s.replay(w, r, v, existing, hash)
		return
	}
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	w.Header().Set("Location", "/"+v.String()+"/orders/"+o.ID)
	rest.Write(w, http.StatusCreated, v.render(o))
}

// replay answers a repeated key: the response the order was created with for the
// same body (its current state is a GET away), a 422 for another body.
func (s *Service) replay(w http.ResponseWriter, r *http.Request, v version, o *Order, hash string) {
	if o.requestHash != hash {
		s.problems.Write(w, r, problem.New(problem.Unprocessable, "this Idempotency-Key was used for a different order; use a new key"))
		return
	}
	w.Header().Set("Location", "/"+v.String()+"/orders/"+o.ID)
	w.Header().Set("Idempotent-Replayed", "true")
	rest.Write(w, http.StatusCreated, v.render(o.asCreated()))
}

// checkCustomer asks users for the customer's record, presenting the customer's own
// token beside this service's credentials. A customer in good standing is
// remembered for the lookup TTL.
func (s *Service) checkCustomer(ctx context.Context, p *authn.Principal) error {
	_, _, err := s.lookups.Get(ctx, "customer:"+p.Subject, func(ctx context.Context) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.deps.UsersURL+"/v1/users/"+url.PathEscape(p.Subject), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+p.Token)
		resp, err := s.deps.Users.Do(req)
		if err != nil {
			return nil, fmt.Errorf("check the customer: %w", err)
		}
		defer resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK:
			return []byte{1}, nil
		case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusUnauthorized:
			return nil, problem.New(problem.Forbidden, "the customer's account is not active")
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
			return nil, &problem.Error{Kind: problem.Unavailable, Detail: "users is unavailable; try again", RetryAfter: time.Second}
		default:
			return nil, fmt.Errorf("check the customer: users answered %s", resp.Status)
		}
	})
	return err
}

// product is what orders needs of a catalog product.
type product struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	PriceMinor int64  `json:"price_minor"`
	Currency   string `json:"currency"`
}

// price looks up each line's product in the catalog (in parallel, each remembered
// for the lookup TTL) and returns the priced lines.
func (s *Service) price(ctx context.Context, items []ItemRequest) ([]Line, error) {
	lines := make([]Line, len(items))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, it := range items {
		g.Go(func() error {
			raw, _, err := s.lookups.Get(gctx, "product:"+it.ProductID, func(ctx context.Context) ([]byte, error) {
				return s.fetchProduct(ctx, it.ProductID)
			})
			if err != nil {
				if problem.KindOf(err) == problem.NotFound {
					return problem.InvalidField(fmt.Sprintf("items[%d].product_id", i), "no product %q in the catalog", it.ProductID)
				}
				return err
			}
			var p product
			if err := json.Unmarshal(raw, &p); err != nil {
				return fmt.Errorf("catalog product %s: %w", it.ProductID, err)
			}
			lines[i] = Line{ProductID: p.ID, Name: p.Name, Quantity: it.Quantity, UnitPrice: p.PriceMinor, Currency: p.Currency}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, l := range lines {
		if l.Currency != lines[0].Currency {
			return nil, problem.InvalidField(fmt.Sprintf("items[%d].product_id", i), "is priced in %s, the order in %s; place separate orders", l.Currency, lines[0].Currency)
		}
	}
	return lines, nil
}

func (s *Service) fetchProduct(ctx context.Context, id string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.deps.CatalogURL+"/v1/products/"+url.PathEscape(id), nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.deps.Catalog.Do(req)
	if err != nil {
		return nil, fmt.Errorf("look up product %s: %w", id, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound:
		return nil, problem.New(problem.NotFound, "no product %s", id)
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return nil, &problem.Error{Kind: problem.Unavailable, Detail: "the catalog is unavailable; try again", RetryAfter: time.Second}
	default:
		return nil, fmt.Errorf("look up product %s: catalog answered %s", id, resp.Status)
	}
	var p product
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 64<<10)).Decode(&p); err != nil {
		return nil, fmt.Errorf("look up product %s: %w", id, err)
	}
	if p.ID != id || p.PriceMinor < 0 || len(p.Currency) != 3 {
		return nil, fmt.Errorf("look up product %s: the catalog answered an unusable product", id)
	}
	return json.Marshal(p)
}

// insert writes a new order, its first status and its placed event, in the saga's
// transaction.
func (s *Service) insert(ctx context.Context, tx *sql.Tx, o *Order, key, hash string) error {
	raw, _ := json.Marshal(o.Lines)
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO orders (id, customer_id, status, reason, items, idempotency_key, request_hash, total_minor, currency, card_last4, created_at, updated_at)
		 VALUES ($1, $2, $3, '', $4, $5, $6, $7, $8, $9, $10, $10)`,
		o.ID, o.CustomerID, o.Status, string(raw), key, hash, o.Total, o.Currency, o.CardLast4, store.Millis(o.CreatedAt)); err != nil {
		return err
	}
	if err := s.history(ctx, tx, o.ID, StatusPending, "", o.CreatedAt); err != nil {
		return err
	}
	items := make([]map[string]any, len(o.Lines))
	for i, l := range o.Lines {
		items[i] = map[string]any{"product_id": l.ProductID, "quantity": l.Quantity, "unit_price_minor": l.UnitPrice}
	}
	return s.emit(ctx, tx, EventPlaced, o.ID, map[string]any{
		"order_id": o.ID, "customer_id": o.CustomerID, "items": items,
		"total": map[string]any{"minor_units": o.Total, "currency": o.Currency},
	})
}
