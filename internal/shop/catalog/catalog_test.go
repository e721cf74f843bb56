package catalog_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/api/openapi"
	"github.com/switchyard/switchyard/contract"
	"github.com/switchyard/switchyard/internal/shop/catalog"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/store/storetest"
	"github.com/switchyard/switchyard/telemetry"
)

type page struct {
	Items      []catalog.Product `json:"items"`
	NextCursor string            `json:"next_cursor"`
}

func serve(t *testing.T, dbURL string) string {
	t.Helper()
	db, err := store.Open(context.Background(), store.Config{URL: dbURL, Migrations: catalog.Migrations()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc, err := catalog.New(context.Background(), catalog.Config{}, db, telemetry.Discard())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
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
