package check_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/shop/check"
	"github.com/switchyard/switchyard/internal/shop/commerce"
	"github.com/switchyard/switchyard/internal/shop/shoptest"
)

func sources(shop *shoptest.Shop, accepted ...string) check.Sources {
	return check.Sources{
		Orders: shop.DB("orders"), Inventory: shop.DB("inventory"), Payments: shop.DB("payments"),
		Accepted: accepted,
	}
}

// until runs the check until it passes (the outboxes drain as the relays run).
func until(t *testing.T, src check.Sources) *check.Report {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rep, err := check.Run(context.Background(), src)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() || time.Now().After(deadline) {
			return rep
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func report(rep *check.Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "orders %v\n", rep.Orders)
	for _, r := range rep.Results {
		fmt.Fprintf(&b, "%s (%d checked): %s\n", r.Name, r.Checked, strings.Join(r.Violations, "; "))
	}
	return b.String()
}

func TestTheInvariantsHoldAfterRealOrdersAndCatchEachBreach(t *testing.T) {
	t.Parallel()
	shop := shoptest.Start(t, shoptest.Options{})
	ann := shop.Customer("ann")
	var ids []string
	for i, card := range []string{commerce.CardApproved, commerce.CardApproved, commerce.CardDeclined, commerce.CardApproved} {
		items := []string{"prod-aud-001", "prod-kbd-001", "prod-aud-001", "prod-mon-002"}
		qty := []int{2, 1, 1, 9} // the last is more than the 5 in stock
		r := shop.Order(ann, string(rune('a'+i)), card, shoptest.Item(items[i], qty[i]))
		ids = append(ids, r.Body["id"].(string))
	}
	for _, id := range ids {
		shop.Await(ann, id, 5*time.Second)
	}
	rep := until(t, sources(shop, ids...))
	if !rep.OK() {
		t.Fatalf("after real orders:\n%s", report(rep))
	}
	if rep.Orders["CONFIRMED"] != 2 || rep.Orders["CANCELLED"] != 2 {
		t.Errorf("orders %v, want 2 confirmed and 2 cancelled", rep.Orders)
	}
	t.Logf("\n%s", report(rep))

	// Each breach, one at a time, is found and named.
	confirmedID, declinedID := ids[0], ids[2]
	for name, c := range map[string]struct {
		db, breach, undo string
		want             string
	}{
		"charged after cancelling": {"payments", `UPDATE payments SET captured = amount WHERE order_id = '` + declinedID + `'`,
			`UPDATE payments SET captured = 0 WHERE order_id = '` + declinedID + `'`, "is CANCELLED but 12900 is charged"},
		"confirmed but not committed": {"inventory", `UPDATE reservations SET state = 'held' WHERE order_id = '` + confirmedID + `'`,
			`UPDATE reservations SET state = 'committed' WHERE order_id = '` + confirmedID + `'`, "is CONFIRMED but its reservation is held"},
		"stock from nowhere": {"inventory", `UPDATE stock SET available = available + 1 WHERE product_id = 'prod-kbd-001'`,
			`UPDATE stock SET available = available - 1 WHERE product_id = 'prod-kbd-001'`, "prod-kbd-001: 1000 available + 0 reserved + 1 sold ≠ 1000 initial"},
		"wrong amount": {"payments", `UPDATE payments SET amount = amount + 1, captured = captured + 1 WHERE order_id = '` + confirmedID + `'`,
			`UPDATE payments SET amount = amount - 1, captured = captured - 1 WHERE order_id = '` + confirmedID + `'`, "totals 25800 but its payment is for 25801"},
	} {
		db := shop.DB(c.db)
		if _, err := db.Exec(c.breach); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rep, err := check.Run(context.Background(), sources(shop, ids...))
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() || !strings.Contains(report(rep), c.want) {
			t.Errorf("%s: not reported as %q:\n%s", name, c.want, report(rep))
		}
		if c.undo != "" {
			db.Exec(c.undo)
		}
	}

	// An accepted order that is missing, and a saga stuck past its deadline.
	src := sources(shop, append(ids, "01a20000-0000-7000-8000-00000000dead")...)
	shop.DB("orders").Exec(`UPDATE orders SET status = 'PAYMENT_AUTHORIZED' WHERE id = $1`, ids[1])
	shop.DB("orders").Exec(`UPDATE sagas SET status = 'running', deadline = 0 WHERE id = $1`, ids[1])
	rep, _ = check.Run(context.Background(), src)
	for _, want := range []string{"order 01a20000-0000-7000-8000-00000000dead was accepted but does not exist", "'s saga is still running"} {
		if !strings.Contains(report(rep), want) {
			t.Errorf("not reported: %q\n%s", want, report(rep))
		}
	}
}
