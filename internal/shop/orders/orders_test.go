package orders_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/shop/commerce"
	"github.com/switchyard/switchyard/internal/shop/orders"
	"github.com/switchyard/switchyard/internal/shop/shoptest"
	"github.com/switchyard/switchyard/store/storetest"
)

const (
	headphones = "prod-aud-001" // 129.00 EUR, 1000 in stock
	scarce     = "prod-mon-002" // 5 in stock
)

// each runs fn against a shop on SQLite and, when SWITCHYARD_TEST_POSTGRES names a
// server, on PostgreSQL (a database per service).
func each(t *testing.T, opt shoptest.Options, fn func(t *testing.T, shop *shoptest.Shop)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, shoptest.Start(t, opt)) })
	if server := os.Getenv(storetest.PostgresEnv); server != "" {
		t.Run("postgres", func(t *testing.T) {
			o := opt
			o.Database = func(string) string { return storetest.PostgresDatabase(t, server) }
			fn(t, shoptest.Start(t, o))
		})
	}
}

func history(body map[string]any) []string {
	var out []string
	for _, c := range body["status_history"].([]any) {
		out = append(out, c.(map[string]any)["status"].(string))
	}
	return out
}

func TestAnOrderIsConfirmedWithinTwoSeconds(t *testing.T) {
	t.Parallel()
	each(t, shoptest.Options{}, func(t *testing.T, shop *shoptest.Shop) {
		ann := shop.Customer("ann")
		begun := time.Now()
		r := shop.Order(ann, "k1", commerce.CardApproved, shoptest.Item(headphones, 2))
		if r.Code != http.StatusCreated || r.Body["status"] != orders.StatusPending {
			t.Fatalf("place: %d %s", r.Code, r.Raw)
		}
		id := r.Body["id"].(string)
		if r.Header.Get("Location") != "/v2/orders/"+id {
			t.Errorf("Location %q", r.Header.Get("Location"))
		}
		total := r.Body["total"].(map[string]any)
		if total["minor_units"] != 25800.0 || total["currency"] != "EUR" {
			t.Errorf("total %v, want 2 × 129.00 EUR from the catalog", total)
		}
		done := shop.Await(ann, id, 5*time.Second)
		took := time.Since(begun)
		if done.Body["status"] != orders.StatusConfirmed {
			t.Fatalf("order ended %v (%v)", done.Body["status"], done.Body["reason"])
		}
		t.Logf("confirmed %v after placing", took.Round(time.Millisecond))
		if took > 2*time.Second {
			t.Errorf("confirmed after %v, want within 2s", took)
		}
		want := []string{orders.StatusPending, orders.StatusReserved, orders.StatusAuthorized, orders.StatusConfirmed}
		if got := history(done.Body); !slices.Equal(got, want) {
			t.Errorf("history %v, want %v", got, want)
		}
		if done.Body["payment"].(map[string]any)["card_last4"] != "4242" {
			t.Errorf("payment %v", done.Body["payment"])
		}
		if a, res, sold := shop.Stock(headphones); a != 998 || res != 0 || sold != 2 {
			t.Errorf("stock after confirming: %d available, %d reserved, %d sold", a, res, sold)
		}
		var status string
		var captured int64
		shop.DB("payments").QueryRow(`SELECT status, captured FROM payments WHERE order_id = $1`, id).Scan(&status, &captured)
		if status != "CAPTURED" || captured != 25800 {
			t.Errorf("payment %s, captured %d", status, captured)
		}
		for _, typ := range []string{orders.EventPlaced, orders.EventConfirmed} {
			var n int
			shop.DB("orders").QueryRow(`SELECT count(*) FROM outbox WHERE type = $1 AND subject = $2`, typ, id).Scan(&n)
			if n != 1 {
				t.Errorf("%d %s events in the outbox, want 1", n, typ)
			}
		}
		var card int
		shop.DB("orders").QueryRow(`SELECT count(*) FROM sagas WHERE data LIKE '%4242424242424242%'`).Scan(&card)
		if card != 0 {
			t.Error("the card number outlived its authorization in the saga's data")
		}

		// v1: decimal money, and told it is deprecated.
		v1 := shop.Do("GET", "orders", "/v1/orders/"+id, ann.Token, nil, nil)
		if v1.Body["total"] != "258.00" || v1.Body["currency"] != "EUR" || v1.Body["status"] != orders.StatusConfirmed {
			t.Errorf("v1 order: %s", v1.Raw)
		}
		if v1.Header.Get("Deprecation") != "@1793491200" || v1.Header.Get("Sunset") != "Tue, 01 Jun 2027 00:00:00 GMT" ||
			!strings.Contains(v1.Header.Get("Link"), `rel="successor-version"`) {
			t.Errorf("v1 headers: %v", v1.Header)
		}
		if r.Header.Get("Deprecation") != "" {
			t.Error("v2 says it is deprecated")
		}
	})
}

func TestADeclinedCardCancelsTheOrderAndGivesTheStockBack(t *testing.T) {
	t.Parallel()
	each(t, shoptest.Options{}, func(t *testing.T, shop *shoptest.Shop) {
		bob := shop.Customer("bob")
		r := shop.Order(bob, "k1", commerce.CardDeclined, shoptest.Item(headphones, 3))
		done := shop.Await(bob, r.Body["id"].(string), 5*time.Second)
		if done.Body["status"] != orders.StatusCancelled || done.Body["reason"] != "payment declined: card declined" {
			t.Fatalf("order %v %q", done.Body["status"], done.Body["reason"])
		}
		want := []string{orders.StatusPending, orders.StatusReserved, orders.StatusCancelling, orders.StatusCancelled}
		if got := history(done.Body); !slices.Equal(got, want) {
			t.Errorf("history %v, want %v", got, want)
		}
		if a, res, sold := shop.Stock(headphones); a != 1000 || res != 0 || sold != 0 {
			t.Errorf("stock after cancelling: %d available, %d reserved, %d sold", a, res, sold)
		}
		var n int
		shop.DB("orders").QueryRow(`SELECT count(*) FROM outbox WHERE type = $1`, orders.EventCancelled).Scan(&n)
		if n != 1 {
			t.Errorf("%d cancelled events, want 1", n)
		}
	})
}

func TestAnOrderBeyondTheStockIsCancelled(t *testing.T) {
	t.Parallel()
	shop := shoptest.Start(t, shoptest.Options{})
	cat := shop.Customer("cat")
	r := shop.Order(cat, "k1", commerce.CardApproved, shoptest.Item(headphones, 1), shoptest.Item(scarce, 6))
	done := shop.Await(cat, r.Body["id"].(string), 5*time.Second)
	if done.Body["status"] != orders.StatusCancelled || !strings.HasPrefix(done.Body["reason"].(string), "out of stock: insufficient stock: "+scarce+" (5 available)") {
		t.Fatalf("order %v %q", done.Body["status"], done.Body["reason"])
	}
	if a, _, _ := shop.Stock(headphones); a != 1000 {
		t.Errorf("%d headphones available, want all 1000 (all or nothing)", a)
	}
	var payments int
	shop.DB("payments").QueryRow(`SELECT count(*) FROM payments WHERE status NOT IN ('VOIDED', 'DECLINED')`).Scan(&payments)
	if payments != 0 {
		t.Errorf("an out-of-stock order holds a payment")
	}
}

func TestAnOrderPastItsDeadlineIsCompensated(t *testing.T) {
	t.Parallel()
	opt := shoptest.Options{Settings: map[string]map[string]any{"orders": {"saga_deadline": "1s", "lookup_ttl": "1s"}}}
	shop := shoptest.Start(t, opt)
	dan := shop.Customer("dan")
	r := shop.Order(dan, "k1", commerce.CardProviderFails, shoptest.Item(headphones, 1))
	done := shop.Await(dan, r.Body["id"].(string), 10*time.Second)
	if done.Body["status"] != orders.StatusCancelled || !strings.Contains(done.Body["reason"].(string), "authorize_payment") || !strings.HasPrefix(done.Body["reason"].(string), "timed out") {
		t.Fatalf("order %v %q", done.Body["status"], done.Body["reason"])
	}
	if a, res, _ := shop.Stock(headphones); a != 1000 || res != 0 {
		t.Errorf("stock after the timeout: %d available, %d reserved", a, res)
	}
	var status string
	shop.DB("payments").QueryRow(`SELECT status FROM payments WHERE order_id = $1`, r.Body["id"]).Scan(&status)
	if status != "VOIDED" {
		t.Errorf("payment %q after the timeout, want VOIDED (so a late authorization holds nothing)", status)
	}
}

func TestOneIdempotencyKeyPlacesOneOrderWhateverTheRetries(t *testing.T) {
	t.Parallel()
	each(t, shoptest.Options{}, func(t *testing.T, shop *shoptest.Shop) {
		eve := shop.Customer("eve")
		const n = 50
		bodies := make([][]byte, n)
		codes := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				r := shop.Order(eve, "same-key", commerce.CardApproved, shoptest.Item(headphones, 1))
				bodies[i], codes[i] = r.Raw, r.Code
			})
		}
		wg.Wait()
		for i := range n {
			if codes[i] != http.StatusCreated || !bytes.Equal(bodies[i], bodies[0]) {
				t.Fatalf("response %d: %d %s\nresponse 0: %d %s", i, codes[i], bodies[i], codes[0], bodies[0])
			}
		}
		var count int
		shop.DB("orders").QueryRow(`SELECT count(*) FROM orders`).Scan(&count)
		if count != 1 {
			t.Fatalf("%d orders for one key, want 1", count)
		}
		var first map[string]any
		_ = json.Unmarshal(bodies[0], &first)
		shop.Await(eve, first["id"].(string), 5*time.Second)
		// A replay after the order moved on still answers as the first response did.
		if r := shop.Order(eve, "same-key", commerce.CardApproved, shoptest.Item(headphones, 1)); !bytes.Equal(r.Raw, bodies[0]) ||
			r.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("a later replay: %s, want the first response", r.Raw)
		}
		if r := shop.Order(eve, "same-key", commerce.CardApproved, shoptest.Item(headphones, 2)); r.Code != http.StatusUnprocessableEntity {
			t.Errorf("same key, another body: %d %s, want 422", r.Code, r.Raw)
		}
		// Keys belong to their customer.
		fay := shop.Customer("fay")
		if r := shop.Order(fay, "same-key", commerce.CardApproved, shoptest.Item(headphones, 1)); r.Code != http.StatusCreated || r.Body["id"] == first["id"] {
			t.Errorf("another customer's same key: %d %s", r.Code, r.Raw)
		}
	})
}

func TestCustomersSeeOnlyTheirOwnOrders(t *testing.T) {
	t.Parallel()
	shop := shoptest.Start(t, shoptest.Options{})
	gus, hal := shop.Customer("gus"), shop.Customer("hal")
	var ids []string
	for i := range 5 {
		r := shop.Order(gus, fmt.Sprint("k", i), commerce.CardApproved, shoptest.Item(headphones, 1))
		ids = append(ids, r.Body["id"].(string))
	}
	shop.Order(hal, "h1", commerce.CardApproved, shoptest.Item(headphones, 1))
	for _, v := range []string{"v1", "v2"} {
		if r := shop.Do("GET", "orders", "/"+v+"/orders/"+ids[0], hal.Token, nil, nil); r.Code != http.StatusNotFound {
			t.Errorf("%s: hal reads gus's order: %d %s", v, r.Code, r.Raw)
		}
	}
	// Gus's list: newest first, two at a time, none of hal's.
	var seen []string
	path := "/v2/orders?limit=2"
	for pages := 0; path != ""; pages++ {
		r := shop.Do("GET", "orders", path, gus.Token, nil, nil)
		if r.Code != http.StatusOK || pages > 3 {
			t.Fatalf("list: %d %s", r.Code, r.Raw)
		}
		for _, it := range r.Body["items"].([]any) {
			seen = append(seen, it.(map[string]any)["id"].(string))
		}
		path = ""
		if c, ok := r.Body["next_cursor"].(string); ok {
			path = "/v2/orders?limit=2&cursor=" + c
		}
	}
	want := slices.Clone(ids)
	slices.Reverse(want)
	if !slices.Equal(seen, want) {
		t.Errorf("gus's list %v, want his five newest first %v", seen, want)
	}
	if r := shop.Do("GET", "orders", "/v1/orders", hal.Token, nil, nil); len(r.Body["items"].([]any)) != 1 {
		t.Errorf("hal's list: %s", r.Raw)
	}
}

func TestBadRequestsAreRefusedWithAProblem(t *testing.T) {
	t.Parallel()
	shop := shoptest.Start(t, shoptest.Options{})
	ida := shop.Customer("ida")
	good := orders.PlaceRequest{Items: []orders.ItemRequest{shoptest.Item(headphones, 1)}, Payment: &orders.PaymentRequest{CardNumber: commerce.CardApproved}}
	key := http.Header{"Idempotency-Key": {"k"}}
	for name, c := range map[string]struct {
		token  string
		header http.Header
		body   any
		code   int
		field  string
	}{
		"no token":        {"", key, good, 401, ""},
		"forged token":    {ida.Token[:len(ida.Token)-4] + "AAAA", key, good, 401, ""},
		"no key":          {ida.Token, nil, good, 400, ""},
		"key too long":    {ida.Token, http.Header{"Idempotency-Key": {strings.Repeat("k", 65)}}, good, 400, ""},
		"no items":        {ida.Token, key, orders.PlaceRequest{Payment: good.Payment}, 400, "items"},
		"zero quantity":   {ida.Token, key, orders.PlaceRequest{Items: []orders.ItemRequest{shoptest.Item(headphones, 0)}, Payment: good.Payment}, 400, "items[0].quantity"},
		"repeated line":   {ida.Token, key, orders.PlaceRequest{Items: []orders.ItemRequest{shoptest.Item(headphones, 1), shoptest.Item(headphones, 1)}, Payment: good.Payment}, 400, "items[1].product_id"},
		"unknown product": {ida.Token, key, orders.PlaceRequest{Items: []orders.ItemRequest{shoptest.Item("prod-nope", 1)}, Payment: good.Payment}, 400, "items[0].product_id"},
		"no payment":      {ida.Token, key, orders.PlaceRequest{Items: good.Items}, 400, "payment"},
		"bad card":        {ida.Token, key, orders.PlaceRequest{Items: good.Items, Payment: &orders.PaymentRequest{CardNumber: "4242424242424241"}}, 400, "payment.card_number"},
		"unknown field":   {ida.Token, key, map[string]any{"items": good.Items, "payment": good.Payment, "coupon": "FREE"}, 400, ""},
		"huge body":       {ida.Token, key, map[string]any{"items": good.Items, "payment": good.Payment, "note": strings.Repeat("x", 70_000)}, 413, ""},
	} {
		r := shop.Do("POST", "orders", "/v2/orders", c.token, c.body, c.header)
		if r.Code != c.code || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
			t.Errorf("%s: %d %s, want a %d problem", name, r.Code, r.Raw, c.code)
			continue
		}
		if c.field != "" && !strings.Contains(string(r.Raw), `"`+c.field+`"`) {
			t.Errorf("%s: %s does not name %s", name, r.Raw, c.field)
		}
	}
	var n int
	shop.DB("orders").QueryRow(`SELECT count(*) FROM orders`).Scan(&n)
	if n != 0 {
		t.Errorf("bad requests left %d orders", n)
	}
	for path, code := range map[string]int{"/v2/orders/not-a-uuid": 404, "/v2/orders?limit=1000": 400, "/v2/orders?cursor=garbage": 400, "/v3/orders": 404} {
		if r := shop.Do("GET", "orders", path, ida.Token, nil, nil); r.Code != code {
			t.Errorf("GET %s: %d %s, want %d", path, r.Code, r.Raw, code)
		}
	}
}

func TestSettingsAreChecked(t *testing.T) {
	t.Parallel()
	load := func(settings string) config.Settings {
		cfg, err := config.Load("o.yaml", []byte("version: 1\nservices:\n  orders:\n    listen: 127.0.0.1:0\n    settings:\n"+settings), nil)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Service("orders").Settings
	}
	s, err := orders.DecodeSettings(load("      saga_deadline: 5s\n"))
	if err != nil || s.SagaDeadline.Std() != 5*time.Second || s.LookupTTL.Std() != 10*time.Second {
		t.Errorf("%+v %v", s, err)
	}
	for settings, want := range map[string]string{
		"      saga_deadline: 10ms\n":    "o.yaml:6:7: services.orders.settings.saga_deadline: want 1s to 1h",
		"      v1_sunset: next summer\n": "o.yaml:6:7: services.orders.settings.v1_sunset: want a date like 2027-06-01",
	} {
		if _, err := orders.DecodeSettings(load(settings)); err == nil || err.Error() != want {
			t.Errorf("%q: %v, want %s", settings, err, want)
		}
	}
}
