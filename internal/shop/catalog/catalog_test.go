package catalog_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/api/openapi"
	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/cache"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/inbox"
	"github.com/switchyard/switchyard/internal/shop/catalog"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/store/storetest"
	"github.com/switchyard/switchyard/telemetry"
	"github.com/switchyard/switchyard/testkit/contract"
)

type page struct {
	Items      []catalog.Product `json:"items"`
	NextCursor string            `json:"next_cursor"`
}

func serve(t *testing.T, dbURL string) string {
	t.Helper()
	_, url := start(t, dbURL)
	return url
}

func start(t *testing.T, dbURL string) (*catalog.Service, string) {
	t.Helper()
	return startWith(t, dbURL, nil)
}

func startWith(t *testing.T, dbURL string, c cache.Cache) (*catalog.Service, string) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, store.Config{URL: dbURL, Migrations: catalog.Migrations()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx, inbox.Migrations(), nil); err != nil {
		t.Fatal(err)
	}
	in, err := inbox.New(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := catalog.New(ctx, catalog.Config{}, catalog.Deps{DB: db, Log: telemetry.Discard(), Inbox: in, Cache: c})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return svc, srv.URL
}

func stockChanged(t *testing.T, product string, available int64, at time.Time) *bus.Message {
	t.Helper()
	e, err := event.New(context.Background(), "/switchyard/inventory", catalog.EventStockChanged, product,
		map[string]any{"product_id": product, "available": available, "reserved": 0, "sold": 0, "reason": "reserved"})
	if err != nil {
		t.Fatal(err)
	}
	e.Time = at
	return &bus.Message{Event: e, Attempt: 1}
}

// Availability follows inventory's events: once each, newest first, and a cached
// product read is dropped when its stock changes.
func TestAvailabilityFollowsStockEvents(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, dbURL string) {
		svc, base := start(t, dbURL)
		var p catalog.Product
		get(t, base+"/v1/products/prod-kbd-001", &p)
		if p.Available != nil {
			t.Fatalf("availability before any event: %d", *p.Available)
		}
		now := time.Now()
		newer := stockChanged(t, "prod-kbd-001", 7, now)
		for range 2 { // a redelivery changes nothing
			if err := svc.OnStockChanged(context.Background(), newer); err != nil {
				t.Fatal(err)
			}
		}
		// An older event arriving late does not win.
		if err := svc.OnStockChanged(context.Background(), stockChanged(t, "prod-kbd-001", 9, now.Add(-time.Second))); err != nil {
			t.Fatal(err)
		}
		p = catalog.Product{}
		get(t, base+"/v1/products/prod-kbd-001", &p) // cached now
		if p.Available == nil || *p.Available != 7 {
			t.Fatalf("availability %v, want 7", p.Available)
		}
		if err := svc.OnStockChanged(context.Background(), stockChanged(t, "prod-kbd-001", 0, now.Add(time.Second))); err != nil {
			t.Fatal(err)
		}
		p = catalog.Product{}
		get(t, base+"/v1/products/prod-kbd-001", &p)
		if p.Available == nil || *p.Available != 0 {
			t.Errorf("after a newer event the read says %v: the cache was not invalidated", p.Available)
		}
		var page struct{ Items []catalog.Product }
		get(t, base+"/v1/products?category=keyboards", &page)
		if page.Items[0].Available == nil || *page.Items[0].Available != 0 {
			t.Errorf("the list shows %v", page.Items[0].Available)
		}
	})
}

func get(t *testing.T, u string, v any) int {
	t.Helper()
	resp, err := contract.Client(t, openapi.Files, "catalog.yaml", false).Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		json.Unmarshal(b, v)
	}
	return resp.StatusCode
}

func TestPagingWalksEveryProductOnce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, dbURL string) {
		base := serve(t, dbURL)
		seen := map[string]bool{}
		cursor := ""
		pages := 0
		for {
			var p page
			u := base + "/v1/products?limit=7"
			if cursor != "" {
				u += "&cursor=" + url.QueryEscape(cursor)
			}
			if code := get(t, u, &p); code != 200 {
				t.Fatalf("GET %s: %d", u, code)
			}
			pages++
			if len(p.Items) > 7 {
				t.Fatalf("page of %d items with limit 7", len(p.Items))
			}
			for _, it := range p.Items {
				if seen[it.ID] {
					t.Fatalf("%s seen twice", it.ID)
				}
				seen[it.ID] = true
			}
			if p.NextCursor == "" {
				break
			}
			cursor = p.NextCursor
		}
		if len(seen) != 24 || pages != 4 {
			t.Errorf("walked %d products in %d pages, want 24 in 4", len(seen), pages)
		}
	})
}

func TestAProductByID(t *testing.T) {
	t.Parallel()
	base := serve(t, storetest.Targets(t)[0].URL)
	var p catalog.Product
	if code := get(t, base+"/v1/products/prod-kbd-001", &p); code != 200 {
		t.Fatalf("status %d", code)
	}
	if p.Name != "Mechanical Keyboard 75%" || p.Price != "139.00" || p.Currency != "EUR" {
		t.Errorf("product = %+v", p)
	}
	if code := get(t, base+"/v1/products/nope", nil); code != 404 {
		t.Errorf("unknown product: %d", code)
	}
}

func TestCategoryFilter(t *testing.T) {
	t.Parallel()
	base := serve(t, storetest.Targets(t)[0].URL)
	var p page
	get(t, base+"/v1/products?category=mice&limit=100", &p)
	if len(p.Items) != 4 {
		t.Errorf("%d mice, want 4", len(p.Items))
	}
	for _, it := range p.Items {
		if it.Category != "mice" {
			t.Errorf("%s in the mice page", it.Category)
		}
	}
}

func TestBadListParametersAre400(t *testing.T) {
	t.Parallel()
	base := serve(t, storetest.Targets(t)[0].URL)
	for _, q := range []string{"limit=0", "limit=101", "limit=-1", "limit=abc", "cursor=garbage", "category=DROP%20TABLE", "category=" + strings.Repeat("a", 40)} {
		var body map[string]any
		if code := get(t, base+"/v1/products?"+q, &body); code != 400 {
			t.Errorf("%s: status %d", q, code)
		}
	}
}

func TestSeedingTwiceAddsNothing(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, dbURL string) {
		serve(t, dbURL)
		base := serve(t, dbURL) // a second start re-runs the seed
		var p page
		get(t, base+"/v1/products?limit=100", &p)
		if len(p.Items) != 24 {
			t.Errorf("%d products after two seedings", len(p.Items))
		}
	})
}

// Replicas sharing Redis share invalidations: a stock event handled by one drops
// the product the other cached.
func TestReplicasOnRedisShareInvalidations(t *testing.T) {
	t.Parallel()
	url := os.Getenv("SWITCHYARD_TEST_REDIS")
	if url == "" {
		t.Skip("SWITCHYARD_TEST_REDIS unset: no Redis to share")
	}
	dbURL := storetest.Targets(t)[0].URL
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "sytest:" + hex.EncodeToString(b) + ":"
	replica := func() (*catalog.Service, string) {
		r, err := cache.NewRedis(context.Background(), url, prefix)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return startWith(t, dbURL, r)
	}
	_, aURL := replica()
	bSvc, _ := replica()
	var p catalog.Product
	get(t, aURL+"/v1/products/prod-kbd-002", &p) // cached in Redis by a
	if err := bSvc.OnStockChanged(context.Background(), stockChanged(t, "prod-kbd-002", 3, time.Now())); err != nil {
		t.Fatal(err)
	}
	p = catalog.Product{}
	get(t, aURL+"/v1/products/prod-kbd-002", &p)
	if p.Available == nil || *p.Available != 3 {
		t.Errorf("replica a serves %v after replica b's event: the shared cache kept a stale entry", p.Available)
	}
}
