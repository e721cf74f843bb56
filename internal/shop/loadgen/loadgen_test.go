package loadgen_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/shop/check"
	"github.com/switchyard/switchyard/internal/shop/loadgen"
	"github.com/switchyard/switchyard/internal/shop/shoptest"
)

func TestALoadRunLeavesTheInvariantsIntact(t *testing.T) {
	t.Parallel()
	shop := shoptest.Start(t, shoptest.Options{})
	var accepted, progress bytes.Buffer
	sum, err := loadgen.Run(context.Background(), loadgen.Config{
		UsersURL: shop.URL("users"), CatalogURL: shop.URL("catalog"), OrdersURL: shop.URL("orders"),
		Rate: 50, Duration: 2 * time.Second, Customers: 4, Declines: 0.2,
		Accepted: &accepted, Progress: &progress, ProgressEvery: 500 * time.Millisecond, Seed: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sum.Write(&out)
	t.Logf("\n%s", out.String())
	if sum.Scheduled != 100 || sum.Accepted != 100 || sum.Failed != 0 || sum.Unfinished != 0 {
		t.Errorf("summary %+v: want 100 scheduled and accepted, all finished", sum)
	}
	if sum.Outcomes["CONFIRMED"] == 0 || sum.Reasons["payment declined"] == 0 {
		t.Errorf("outcomes %v, reasons %v: want confirmations and declines", sum.Outcomes, sum.Reasons)
	}
	if sum.P50 <= 0 || sum.P99 < sum.P50 {
		t.Errorf("latencies p50 %v p99 %v", sum.P50, sum.P99)
	}
	if !strings.Contains(progress.String(), "accepted") || strings.Contains(progress.String(), "\r") {
		t.Errorf("want progress lines of their own (no terminal, no \\r): %q", progress.String())
	}
	ids := strings.Fields(accepted.String())
	if len(ids) != 100 {
		t.Fatalf("%d accepted ids recorded", len(ids))
	}
	src := check.Sources{Orders: shop.DB("orders"), Inventory: shop.DB("inventory"), Payments: shop.DB("payments"),
		Accepted: ids}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rep, err := check.Run(context.Background(), src)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the load: %+v", rep.Results)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestBadConfigurationIsRefused(t *testing.T) {
	t.Parallel()
	if _, err := loadgen.Run(context.Background(), loadgen.Config{}); err == nil {
		t.Error("no URLs accepted")
	}
	if _, err := loadgen.Run(context.Background(), loadgen.Config{UsersURL: "x", CatalogURL: "x", OrdersURL: "x", Declines: 2}); err == nil || !strings.Contains(err.Error(), "declines") {
		t.Errorf("declines of 2: %v", err)
	}
}
