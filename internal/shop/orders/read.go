package orders

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rest"
	"github.com/switchyard/switchyard/store"
)

// Line is a priced line of an order.
type Line struct {
	ProductID string `json:"product_id"`
	Name      string `json:"name"`
	Quantity  int    `json:"quantity"`
	// UnitPrice is in the currency's minor units.
	UnitPrice int64  `json:"unit_price_minor"`
	Currency  string `json:"currency"`
}

// Change is an entry of an order's status history.
type Change struct {
	Status string
	Reason string
	At     time.Time
}

// Order is an order as stored; versions render it.
type Order struct {
	ID         string
	CustomerID string
	Status     string
	Reason     string
	Lines      []Line
	Total      int64
	Currency   string
	CardLast4  string
	History    []Change
	CreatedAt  time.Time
	UpdatedAt  time.Time

	requestHash string
}

// asCreated is the order as its creating request answered it.
func (o *Order) asCreated() *Order {
	c := *o
	c.Status, c.Reason, c.UpdatedAt = StatusPending, "", o.CreatedAt
	c.History = []Change{{Status: StatusPending, At: o.CreatedAt}}
	return &c
}

const orderColumns = `id, customer_id, status, reason, items, request_hash, total_minor, currency, card_last4, created_at, updated_at`

type scanner interface{ Scan(...any) error }

func scanOrder(row scanner) (*Order, error) {
	var (
		o                Order
		items            string
		created, updated int64
	)
	if err := row.Scan(&o.ID, &o.CustomerID, &o.Status, &o.Reason, &items, &o.requestHash, &o.Total, &o.Currency,
		&o.CardLast4, &created, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(items), &o.Lines); err != nil {
		return nil, fmt.Errorf("order %s lines: %w", o.ID, err)
	}
	o.CreatedAt, o.UpdatedAt = store.Time(created), store.Time(updated)
	return &o, nil
}

func (s *Service) byKey(ctx context.Context, customer, key string) (*Order, error) {
	o, err := scanOrder(s.deps.DB.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE customer_id = $1 AND idempotency_key = $2`, customer, key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return o, err
}

// byID reads a customer's order with its history; another customer's order does
// not exist for them.
func (s *Service) byID(ctx context.Context, customer, id string) (*Order, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, errNoOrder
	}
	o, err := scanOrder(s.deps.DB.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1 AND customer_id = $2`, id, customer))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoOrder
	}
	if err != nil {
		return nil, err
	}
	rows, err := s.deps.DB.QueryContext(ctx, `SELECT status, reason, at FROM order_history WHERE order_id = $1 ORDER BY seq`, id)
	if err != nil {
		return nil, fmt.Errorf("order %s history: %w", id, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			c  Change
			at int64
		)
		if err := rows.Scan(&c.Status, &c.Reason, &at); err != nil {
			return nil, fmt.Errorf("order %s history: %w", id, err)
		}
		c.At = store.Time(at)
		o.History = append(o.History, c)
	}
	return o, rows.Err()
}

var errNoOrder = problem.New(problem.NotFound, "no such order")

// maxWait caps Prefer: wait.
const maxWait = 10 * time.Second

// get serves one order. With Prefer: wait=N it waits up to N seconds (at most 10)
// for the order to reach a final status: a long poll instead of a polling loop.
func (s *Service) get(w http.ResponseWriter, r *http.Request, v version) {
	ctx := r.Context()
	p, _ := authn.PrincipalFrom(ctx)
	id := r.PathValue("id")
	o, err := s.byID(ctx, p.Subject, id)
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	if wait := preferWait(r.Header.Get("Prefer")); wait > 0 && !Terminal(o.Status) {
		w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(int(wait/time.Second)))
		finished := s.saga.Finished(id)
		timeout := time.NewTimer(wait)
		defer timeout.Stop()
		poll := time.NewTicker(250 * time.Millisecond) // when another instance runs the saga
		defer poll.Stop()
	waiting:
		for {
			select {
			case <-finished:
				break waiting
			case <-timeout.C:
				break waiting
			case <-ctx.Done():
				return
			case <-poll.C:
				var status string
				if err := s.deps.DB.QueryRowContext(ctx, `SELECT status FROM orders WHERE id = $1`, id).Scan(&status); err == nil && Terminal(status) {
					break waiting
				}
			}
		}
		if o, err = s.byID(ctx, p.Subject, id); err != nil {
			s.problems.Write(w, r, err)
			return
		}
	}
	rest.Write(w, http.StatusOK, v.render(o))
}

// preferWait reads wait=N from a Prefer header (RFC 7240), capped at maxWait.
func preferWait(h string) time.Duration {
	for pref := range strings.SplitSeq(h, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(pref), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "wait") {
			continue
		}
		n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(val), `"`))
		if err != nil || n <= 0 {
			return 0
		}
		return min(time.Duration(n)*time.Second, maxWait)
	}
	return 0
}

// Page sizes of GET /v{1,2}/orders.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// list serves the caller's own orders, newest first, a page at a time.
func (s *Service) list(w http.ResponseWriter, r *http.Request, v version) {
	ctx := r.Context()
	p, _ := authn.PrincipalFrom(ctx)
	page, err := rest.ParsePage(r, DefaultPageSize, MaxPageSize)
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	before := page.After // ids are UUIDv7: newest first is descending id
	if before == "" {
		before = "~" // sorts after every id
	}
	rows, err := s.deps.DB.QueryContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE customer_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`,
		p.Subject, before, page.Limit+1)
	if err != nil {
		s.problems.Write(w, r, fmt.Errorf("list orders: %w", err))
		return
	}
	defer rows.Close()
	out := rest.Page[any]{Items: make([]any, 0, page.Limit)}
	var last string
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			s.problems.Write(w, r, fmt.Errorf("list orders: %w", err))
			return
		}
		if len(out.Items) == page.Limit {
			out.NextCursor = rest.EncodeCursor(last)
			break
		}
		out.Items = append(out.Items, v.render(o))
		last = o.ID
	}
	if err := rows.Err(); err != nil {
		s.problems.Write(w, r, fmt.Errorf("list orders: %w", err))
		return
	}
	rest.Write(w, http.StatusOK, out)
}
