// Package check verifies the shop's cross-service invariants from the services'
// own data — orders', inventory's and payments' databases, read directly, and
// every outbox — after any run, including runs with injected faults:
//
//   - every accepted order exists, and nothing refers to an order that does not;
//   - CONFIRMED ⇔ payment captured in full and stock committed;
//   - CANCELLED ⇒ no net charge, no hold left, reservation released;
//   - no order charged twice, or for another amount than its total;
//   - per product, initial = available + reserved + sold, with reserved and sold
//     equal to what held and committed reservations say;
//   - no saga unfinished past its deadline, none stuck, every order in flight has
//     a saga running.
//
// (`switchyard check` adds the toolkit's own invariants to these: every outbox
// drained, no saga stuck or past its deadline, whatever the application.)
//
// Orders still in flight are held to what they have done so far, not to an
// outcome. It is a shop package, not a service: it imports none; it reads their
// tables, which is what an auditor does.
package check

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/switchyard/switchyard/store"
)

// Sources are the databases and facts a check reads.
type Sources struct {
	// Payments is nil when payments runs as a simulation: it keeps no ledger, and
	// what the invariants say of charges is not checked.
	Orders, Inventory, Payments *store.DB
	// Accepted are order ids clients were told were accepted (load records them).
	Accepted []string
	// Now is the time of the check [time.Now].
	Now time.Time
	// Grace is how far past its deadline a saga may still be finishing (a taken-over
	// saga, a retry in progress) before it counts as unfinished [10s].
	Grace time.Duration
}

// Result is one invariant's outcome.
type Result struct {
	Name string
	// Checked counts what was examined.
	Checked int
	// Violations describe each breach, for people.
	Violations []string
}

// Report is the outcome of a check.
type Report struct {
	Results []Result
	// Orders counts orders by status.
	Orders map[string]int
}

// OK reports whether every invariant holds.
func (r *Report) OK() bool {
	for _, res := range r.Results {
		if len(res.Violations) > 0 {
			return false
		}
	}
	return true
}

type order struct {
	status   string
	total    int64
	currency string
}

type payment struct {
	created            time.Time
	status             string
	amount             int64
	captured, refunded int64
	marker             bool
}

type item struct {
	ProductID string `json:"product_id"`
	Quantity  int64  `json:"quantity"`
}

type reservation struct {
	created time.Time
	state   string
	items   []item
}

type stock struct{ available, reserved, sold, initial int64 }

type activeSaga struct {
	status   string
	deadline time.Time
}

// terminal order statuses; every other status is in flight.
var terminal = map[string]bool{"CONFIRMED": true, "CANCELLED": true, "ON_HOLD": true}

// Run reads the sources and checks every invariant.
func Run(ctx context.Context, src Sources) (*Report, error) {
	if src.Now.IsZero() {
		src.Now = time.Now()
	}
	if src.Grace <= 0 {
		src.Grace = 10 * time.Second
	}
	// Orders first: anything the other services did for an order already exists
	// in the order's own record, so reading the others later cannot find effects
	// of orders this read has not seen.
	begun := time.Now()
	orders, sagas, err := readOrders(ctx, src.Orders)
	if err != nil {
		return nil, err
	}
	var payments map[string]payment
	ledger := src.Payments != nil
	if ledger {
		if payments, err = readPayments(ctx, src.Payments); err != nil {
			return nil, err
		}
	}
	reservations, stocks, err := readInventory(ctx, src.Inventory)
	if err != nil {
		return nil, err
	}
	rep := &Report{Orders: map[string]int{}}
	for _, o := range orders {
		rep.Orders[o.status]++
	}
	rep.Results = append(rep.Results,
		existence(src.Accepted, begun, orders, payments, reservations),
		confirmed(orders, payments, reservations, ledger),
		cancelled(orders, payments, reservations),
		charges(orders, payments, ledger),
		conservation(stocks, reservations),
		unfinished(src, orders, sagas),
	)
	return rep, nil
}

// recent is how close to the read of the orders a payment or reservation may have
// been made and still belong to an order that read could not see (a margin for
// clocks of different machines).
const recent = 2 * time.Second

func existence(accepted []string, ordersRead time.Time, orders map[string]order, payments map[string]payment, reservations map[string]reservation) Result {
	r := Result{Name: "every accepted order exists; nothing refers to a missing order"}
	for _, id := range accepted {
		r.Checked++
		if _, ok := orders[id]; !ok {
			r.Violations = append(r.Violations, fmt.Sprintf("order %s was accepted but does not exist", id))
		}
	}
	for id, p := range payments {
		if p.created.After(ordersRead.Add(-recent)) {
			continue // possibly for an order placed after orders were read
		}
		r.Checked++
		if _, ok := orders[id]; !ok {
			r.Violations = append(r.Violations, fmt.Sprintf("a payment refers to order %s, which does not exist", id))
		}
	}
	for id, res := range reservations {
		if res.created.After(ordersRead.Add(-recent)) {
			continue
		}
		r.Checked++
		if _, ok := orders[id]; !ok {
			r.Violations = append(r.Violations, fmt.Sprintf("a reservation refers to order %s, which does not exist", id))
		}
	}
	slices.Sort(r.Violations)
	return r
}

// charged reports what a payment has taken and not given back.
func (p payment) net() int64 { return p.captured - p.refunded }

func confirmed(orders map[string]order, payments map[string]payment, reservations map[string]reservation, ledger bool) Result {
	r := Result{Name: "CONFIRMED ⇔ payment captured and stock committed"}
	if !ledger {
		r.Name = "CONFIRMED ⇔ stock committed (payments is simulated: no ledger to hold captures to)"
	}
	for id, o := range orders {
		p, hasPay := payments[id]
		res, hasRes := reservations[id]
		if o.status == "CONFIRMED" {
			r.Checked++
			if ledger && (!hasPay || p.captured != o.total) {
				r.Violations = append(r.Violations, fmt.Sprintf("order %s is CONFIRMED but its payment is %s", id, describePayment(p, hasPay)))
			}
			if !hasRes || res.state != "committed" {
				r.Violations = append(r.Violations, fmt.Sprintf("order %s is CONFIRMED but its reservation is %s", id, describeReservation(res, hasRes)))
			}
			continue
		}
		// The other way: money taken or stock sold only for a confirmed order, or one
		// whose saga is still going forward.
		if terminal[o.status] {
			if hasPay && p.net() > 0 && o.status != "ON_HOLD" {
				r.Checked++
				r.Violations = append(r.Violations, fmt.Sprintf("order %s is %s but %d was captured", id, o.status, p.net()))
			}
			if hasRes && res.state == "committed" && o.status != "ON_HOLD" {
				r.Checked++
				r.Violations = append(r.Violations, fmt.Sprintf("order %s is %s but its stock was committed", id, o.status))
			}
		}
	}
	slices.Sort(r.Violations)
	return r
}

func cancelled(orders map[string]order, payments map[string]payment, reservations map[string]reservation) Result {
	r := Result{Name: "CANCELLED ⇒ no net charge, no hold, reservation released"}
	for id, o := range orders {
		if o.status != "CANCELLED" {
			continue
		}
		r.Checked++
		if p, ok := payments[id]; ok {
			switch {
			case p.net() != 0:
				r.Violations = append(r.Violations, fmt.Sprintf("order %s is CANCELLED but %d is charged", id, p.net()))
			case p.status == "AUTHORIZED" || p.status == "AUTHORIZING" || p.status == "CAPTURING":
				r.Violations = append(r.Violations, fmt.Sprintf("order %s is CANCELLED but its payment is still %s", id, p.status))
			}
		}
		if res, ok := reservations[id]; ok && (res.state == "held" || res.state == "committed") {
			r.Violations = append(r.Violations, fmt.Sprintf("order %s is CANCELLED but its reservation is %s", id, res.state))
		}
	}
	slices.Sort(r.Violations)
	return r
}

func charges(orders map[string]order, payments map[string]payment, ledger bool) Result {
	r := Result{Name: "no order charged twice or for another amount"}
	if !ledger {
		r.Name += " — not checked: payments is simulated and keeps no ledger"
	}
	for id, p := range payments {
		if p.marker {
			continue
		}
		r.Checked++
		o, ok := orders[id]
		if !ok {
			continue // reported as a missing order
		}
		if p.amount != o.total {
			r.Violations = append(r.Violations, fmt.Sprintf("order %s totals %d but its payment is for %d", id, o.total, p.amount))
		}
		if p.captured > p.amount || p.refunded > p.captured {
			r.Violations = append(r.Violations, fmt.Sprintf("order %s: %d captured and %d refunded of %d", id, p.captured, p.refunded, p.amount))
		}
	}
	slices.Sort(r.Violations)
	return r
}

func conservation(stocks map[string]stock, reservations map[string]reservation) Result {
	r := Result{Name: "per product: initial = available + reserved + sold, as reservations say"}
	held, sold := map[string]int64{}, map[string]int64{}
	for _, res := range reservations {
		for _, it := range res.items {
			switch res.state {
			case "held":
				held[it.ProductID] += it.Quantity
			case "committed":
				sold[it.ProductID] += it.Quantity
			}
		}
	}
	for id, s := range stocks {
		r.Checked++
		if s.available+s.reserved+s.sold != s.initial {
			r.Violations = append(r.Violations, fmt.Sprintf("%s: %d available + %d reserved + %d sold ≠ %d initial", id, s.available, s.reserved, s.sold, s.initial))
		}
		if s.reserved != held[id] || s.sold != sold[id] {
			r.Violations = append(r.Violations, fmt.Sprintf("%s: %d reserved and %d sold, but reservations hold %d and sold %d", id, s.reserved, s.sold, held[id], sold[id]))
		}
	}
	slices.Sort(r.Violations)
	return r
}

func unfinished(src Sources, orders map[string]order, sagas map[string]activeSaga) Result {
	r := Result{Name: "no saga unfinished past its deadline or stuck; every order in flight has one"}
	for id, s := range sagas {
		r.Checked++
		switch {
		case s.status == "stuck":
			r.Violations = append(r.Violations, fmt.Sprintf("order %s's saga is stuck (order %s)", id, orders[id].status))
		case src.Now.After(s.deadline.Add(src.Grace)):
			r.Violations = append(r.Violations, fmt.Sprintf("order %s's saga is still %s %v past its deadline", id, s.status, src.Now.Sub(s.deadline).Round(time.Second)))
		}
	}
	for id, o := range orders {
		if terminal[o.status] {
			continue
		}
		r.Checked++
		if _, ok := sagas[id]; !ok {
			r.Violations = append(r.Violations, fmt.Sprintf("order %s is %s with no saga running", id, o.status))
		}
	}
	slices.Sort(r.Violations)
	return r
}

func describePayment(p payment, ok bool) string {
	if !ok {
		return "missing"
	}
	return fmt.Sprintf("%s with %d of %d captured", p.status, p.captured, p.amount)
}

func describeReservation(r reservation, ok bool) string {
	if !ok {
		return "missing"
	}
	return r.state
}

// readTx begins a read-only transaction: one consistent snapshot of a database.
func readTx(ctx context.Context, db *store.DB) (*sql.Tx, error) {
	opts := &sql.TxOptions{ReadOnly: true}
	if db.Dialect() == store.Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	return db.BeginTx(ctx, opts)
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// each runs query and calls scan for every row.
func each(ctx context.Context, q queryer, query string, scan func(*sql.Rows) error) error {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// readOrders reads orders and their unfinished sagas in one snapshot, so that an
// order and its saga are seen at the same moment.
func readOrders(ctx context.Context, db *store.DB) (map[string]order, map[string]activeSaga, error) {
	tx, err := readTx(ctx, db)
	if err != nil {
		return nil, nil, fmt.Errorf("orders: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	orders, sagas := map[string]order{}, map[string]activeSaga{}
	err = each(ctx, tx, `SELECT id, status, total_minor, currency FROM orders`, func(rows *sql.Rows) error {
		var (
			id string
			o  order
		)
		if err := rows.Scan(&id, &o.status, &o.total, &o.currency); err != nil {
			return err
		}
		orders[id] = o
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("orders: %w", err)
	}
	err = each(ctx, tx, `SELECT id, status, deadline FROM sagas WHERE status IN ('running', 'compensating', 'stuck')`, func(rows *sql.Rows) error {
		var (
			id       string
			s        activeSaga
			deadline int64
		)
		if err := rows.Scan(&id, &s.status, &deadline); err != nil {
			return err
		}
		s.deadline = store.Time(deadline)
		sagas[id] = s
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("sagas: %w", err)
	}
	return orders, sagas, nil
}

func readPayments(ctx context.Context, db *store.DB) (map[string]payment, error) {
	out := map[string]payment{}
	err := each(ctx, db, `SELECT order_id, status, amount, captured, refunded, provider_ref, created_at FROM payments`, func(rows *sql.Rows) error {
		var (
			id, ref string
			p       payment
			created int64
		)
		if err := rows.Scan(&id, &p.status, &p.amount, &p.captured, &p.refunded, &ref, &created); err != nil {
			return err
		}
		p.marker = p.status == "VOIDED" && ref == "" && p.amount == 0
		p.created = store.Time(created)
		out[id] = p
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("payments: %w", err)
	}
	return out, nil
}

// readInventory reads reservations and stock in one transaction: one consistent
// snapshot, whatever reservations are changing meanwhile.
func readInventory(ctx context.Context, db *store.DB) (map[string]reservation, map[string]stock, error) {
	reservations, stocks := map[string]reservation{}, map[string]stock{}
	tx, err := readTx(ctx, db)
	if err != nil {
		return nil, nil, fmt.Errorf("inventory: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	err = each(ctx, tx, `SELECT order_id, state, items, created_at FROM reservations`, func(rows *sql.Rows) error {
		var (
			id, items string
			r         reservation
			created   int64
		)
		if err := rows.Scan(&id, &r.state, &items, &created); err != nil {
			return err
		}
		if err := json.Unmarshal([]byte(items), &r.items); err != nil {
			return fmt.Errorf("reservation %s: %w", id, err)
		}
		r.created = store.Time(created)
		reservations[id] = r
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reservations: %w", err)
	}
	err = each(ctx, tx, `SELECT product_id, available, reserved, sold, initial FROM stock`, func(rows *sql.Rows) error {
		var (
			id string
			s  stock
		)
		if err := rows.Scan(&id, &s.available, &s.reserved, &s.sold, &s.initial); err != nil {
			return err
		}
		stocks[id] = s
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("stock: %w", err)
	}
	return reservations, stocks, nil
}
