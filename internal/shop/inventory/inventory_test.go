package inventory_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	"github.com/switchyard/switchyard/api/events"
	inventoryv1 "github.com/switchyard/switchyard/api/gen/switchyard/inventory/v1"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/shop/inventory"
	"github.com/switchyard/switchyard/outbox"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/store/storetest"
	"github.com/switchyard/switchyard/telemetry"
)

func open(t *testing.T, url string) (*inventory.Service, *store.DB) {
	t.Helper()
	db, err := store.Open(context.Background(), store.Config{URL: url, Migrations: inventory.Migrations()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background(), outbox.Migrations(), nil); err != nil {
		t.Fatal(err)
	}
	reg, err := event.NewRegistry(events.Schemas)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.New(db, outbox.Config{Name: "inventory", Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := inventory.New(context.Background(), inventory.Config{}, inventory.Deps{DB: db, Outbox: ob, Log: telemetry.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	return svc, db
}

// outboxed counts the events of a type waiting in the outbox about subject.
func outboxed(t *testing.T, db *store.DB, typ, subject string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM outbox WHERE type = $1 AND subject = $2`, typ, subject).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEveryChangeIsAnnouncedInTheSameTransaction(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		svc, db := open(t, url)
		if n := outboxed(t, db, inventory.EventStockChanged, scarce); n != 1 {
			t.Errorf("seeding announced %d stock levels of %s, want 1", n, scarce)
		}
		reserve(svc, "o1", item(scarce, 2))
		svc.CommitReservation(context.Background(), connect.NewRequest(&inventoryv1.CommitReservationRequest{OrderId: "o1"}))
		reserve(svc, "o2", item(scarce, 1))
		svc.ReleaseReservation(context.Background(), connect.NewRequest(&inventoryv1.ReleaseReservationRequest{OrderId: "o2"}))
		reserve(svc, "o3", item(scarce, 100)) // short: nothing happens, nothing is announced
		for typ, want := range map[string]int{inventory.EventStockReserved: 1, inventory.EventStockCommitted: 1} {
			if n := outboxed(t, db, typ, "o1"); n != want {
				t.Errorf("%s about o1: %d, want %d", typ, n, want)
			}
		}
		if n := outboxed(t, db, inventory.EventStockReleased, "o2"); n != 1 {
			t.Errorf("released about o2: %d", n)
		}
		if n := outboxed(t, db, inventory.EventStockReserved, "o3"); n != 0 {
			t.Errorf("a rejected reservation was announced")
		}
		// Seed + reserve + commit + reserve + release of the scarce product.
		if n := outboxed(t, db, inventory.EventStockChanged, scarce); n != 5 {
			t.Errorf("%d stock changes of %s announced, want 5", n, scarce)
		}
		var payload string
		db.QueryRow(`SELECT payload FROM outbox WHERE type = $1 AND subject = $2 ORDER BY seq DESC LIMIT 1`, inventory.EventStockChanged, scarce).Scan(&payload)
		if !strings.Contains(payload, `"available":3`) || !strings.Contains(payload, `"sold":2`) || !strings.Contains(payload, `"reason":"released"`) {
			t.Errorf("last change of %s: %s", scarce, payload)
		}
	})
}

func reserve(svc *inventory.Service, order string, items ...*inventoryv1.Item) (*inventoryv1.Reservation, error) {
	resp, err := svc.ReserveStock(context.Background(), connect.NewRequest(&inventoryv1.ReserveStockRequest{OrderId: order, Items: items}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.Reservation, nil
}

func item(id string, q int32) *inventoryv1.Item { return &inventoryv1.Item{ProductId: id, Quantity: q} }

func stock(t *testing.T, svc *inventory.Service, id string) *inventoryv1.Stock {
	t.Helper()
	resp, err := svc.GetStock(context.Background(), connect.NewRequest(&inventoryv1.GetStockRequest{ProductIds: []string{id}}))
	if err != nil || len(resp.Msg.Stock) != 1 {
		t.Fatalf("GetStock(%s) = %v, %v", id, resp, err)
	}
	return resp.Msg.Stock[0]
}

const scarce = "prod-mon-002" // seeded with 5

func TestReserveCommitAndReleaseAreIdempotentByOrder(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		svc, _ := open(t, url)
		ctx := context.Background()
		r, err := reserve(svc, "o1", item(scarce, 2), item("prod-kbd-001", 1))
		if err != nil || r.State != inventoryv1.ReservationState_RESERVATION_STATE_HELD {
			t.Fatalf("reserve: %v %v", r, err)
		}
		if _, err := reserve(svc, "o1", item(scarce, 2), item("prod-kbd-001", 1)); err != nil {
			t.Fatalf("repeat reserve: %v", err)
		}
		if s := stock(t, svc, scarce); s.Available != 3 || s.Reserved != 2 {
			t.Fatalf("after a reserve and its repeat: %+v", s)
		}
		for range 2 {
			if _, err := svc.CommitReservation(ctx, connect.NewRequest(&inventoryv1.CommitReservationRequest{OrderId: "o1"})); err != nil {
				t.Fatalf("commit: %v", err)
			}
		}
		if s := stock(t, svc, scarce); s.Available != 3 || s.Reserved != 0 || s.Sold != 2 {
			t.Fatalf("after commit twice: %+v", s)
		}
		_, err = svc.ReleaseReservation(ctx, connect.NewRequest(&inventoryv1.ReleaseReservationRequest{OrderId: "o1"}))
		if problem.KindOf(err) != problem.Conflict {
			t.Errorf("releasing a committed reservation: %v", err)
		}

		reserve(svc, "o2", item(scarce, 1))
		for range 2 {
			if _, err := svc.ReleaseReservation(ctx, connect.NewRequest(&inventoryv1.ReleaseReservationRequest{OrderId: "o2"})); err != nil {
				t.Fatalf("release: %v", err)
			}
		}
		if s := stock(t, svc, scarce); s.Available != 3 || s.Reserved != 0 {
			t.Fatalf("after release twice: %+v", s)
		}
	})
}

func TestAShortReservationHoldsNothingAndRepeatsItsAnswer(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		svc, _ := open(t, url)
		for range 2 {
			_, err := reserve(svc, "big", item("prod-kbd-001", 1), item(scarce, 6))
			if problem.KindOf(err) != problem.Conflict || !strings.Contains(err.Error(), scarce+" (5 available)") {
				t.Fatalf("short reserve: %v", err)
			}
		}
		if s := stock(t, svc, "prod-kbd-001"); s.Reserved != 0 || s.Available != 1000 {
			t.Errorf("an all-or-nothing reservation held part: %+v", s)
		}
	})
}

// A release that overtakes its reserve (a compensation racing a retry) must win.
func TestAReleaseBeforeTheReserveLeavesNothingHeld(t *testing.T) {
	t.Parallel()
	svc, _ := open(t, storetest.Targets(t)[0].URL)
	if _, err := svc.ReleaseReservation(context.Background(), connect.NewRequest(&inventoryv1.ReleaseReservationRequest{OrderId: "late"})); err != nil {
		t.Fatal(err)
	}
	r, err := reserve(svc, "late", item(scarce, 1))
	if err != nil || r.State != inventoryv1.ReservationState_RESERVATION_STATE_RELEASED {
		t.Fatalf("late reserve: %v %v", r, err)
	}
	if s := stock(t, svc, scarce); s.Available != 5 || s.Reserved != 0 {
		t.Errorf("a late reserve held stock for a released order: %+v", s)
	}
}

// Stock never goes negative however many orders race for it, and each order's
// outcome is all or nothing.
func TestConcurrentReservationsNeverOversell(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		svc, _ := open(t, url)
		const orders = 40
		var wg sync.WaitGroup
		var mu sync.Mutex
		held, short := 0, 0
		for i := range orders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := reserve(svc, fmt.Sprintf("race-%d", i), item(scarce, 1), item("prod-kbd-001", 1))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					held++
				case problem.KindOf(err) == problem.Conflict:
					short++
				default:
					t.Errorf("order %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		s := stock(t, svc, scarce)
		k := stock(t, svc, "prod-kbd-001")
		if held != 5 || short != orders-5 || s.Available != 0 || s.Reserved != 5 || k.Reserved != 5 {
			t.Errorf("held %d, short %d; scarce %+v; keyboard %+v", held, short, s, k)
		}
	})
}

func TestConcurrentRepeatsOfOneOrderHoldOnce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		svc, _ := open(t, url)
		var wg sync.WaitGroup
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := reserve(svc, "same", item(scarce, 2)); err != nil {
					t.Errorf("repeat: %v", err)
				}
			}()
		}
		wg.Wait()
		if s := stock(t, svc, scarce); s.Reserved != 2 {
			t.Errorf("reserved %d, want 2", s.Reserved)
		}
	})
}

func TestBadReservationsAreInvalid(t *testing.T) {
	t.Parallel()
	svc, _ := open(t, storetest.Targets(t)[0].URL)
	for name, req := range map[string]*inventoryv1.ReserveStockRequest{
		"no order":      {Items: []*inventoryv1.Item{item(scarce, 1)}},
		"no items":      {OrderId: "o"},
		"zero quantity": {OrderId: "o", Items: []*inventoryv1.Item{item(scarce, 0)}},
		"huge quantity": {OrderId: "o", Items: []*inventoryv1.Item{item(scarce, 5000)}},
		"no product":    {OrderId: "o", Items: []*inventoryv1.Item{item("", 1)}},
	} {
		if _, err := svc.ReserveStock(context.Background(), connect.NewRequest(req)); problem.KindOf(err) != problem.Invalid {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := reserve(svc, "ghost", item("prod-nope", 1)); problem.KindOf(err) != problem.Conflict || !strings.Contains(err.Error(), "unknown product") {
		t.Errorf("unknown product: %v", err)
	}
}

func TestASeedQuantitySetting(t *testing.T) {
	t.Parallel()
	url := storetest.Targets(t)[0].URL
	db, err := store.Open(context.Background(), store.Config{URL: url, Migrations: inventory.Migrations()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.Migrate(context.Background(), outbox.Migrations(), nil)
	reg, _ := event.NewRegistry(events.Schemas)
	ob, _ := outbox.New(db, outbox.Config{Name: "inventory", Registry: reg})
	if _, err := inventory.New(context.Background(), inventory.Config{Settings: inventory.Settings{SeedQuantity: 50_000}}, inventory.Deps{DB: db, Outbox: ob, Log: telemetry.Discard()}); err != nil {
		t.Fatal(err)
	}
	var low, high int64
	db.QueryRow(`SELECT min(available), max(initial) FROM stock`).Scan(&low, &high)
	if low != 50_000 || high != 50_000 {
		t.Errorf("stock from %d to %d, want every product at 50000", low, high)
	}
}
