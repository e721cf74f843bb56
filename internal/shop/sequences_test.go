package shop_test

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/shop/commerce"
	"github.com/switchyard/switchyard/internal/shop/orders"
	"github.com/switchyard/switchyard/internal/shop/shoptest"
	"github.com/switchyard/switchyard/observe"
	"github.com/switchyard/switchyard/platform/platformtest"
	"github.com/switchyard/switchyard/testkit/sequence"
)

// The shop's three flows through its public API each hold to the conversation in
// testdata/sequences: who calls whom, in what order, which events go to whom.
// A change to any of them shows here as the lines that differ (go test
// ./internal/shop -run TestTheShopsFlowsKeepTheirSequences -sequence.update
// rewrites them, for review).
func TestTheShopsFlowsKeepTheirSequences(t *testing.T) {
	for _, flow := range []struct {
		name, card string
		item       orders.ItemRequest
		status     string
	}{
		{"checkout", commerce.CardApproved, shoptest.Item("prod-aud-001", 1), orders.StatusConfirmed},
		{"declined-card", commerce.CardDeclined, shoptest.Item("prod-aud-001", 1), orders.StatusCancelled},
		{"out-of-stock", commerce.CardApproved, shoptest.Item("prod-mon-002", 6), orders.StatusCancelled}, // 5 in stock
	} {
		t.Run(flow.name, func(t *testing.T) {
			shop := shoptest.Start(t, shoptest.Options{Gateway: true})
			ann := shop.Customer("ann")
			id, header := platformtest.Traced()
			header.Set("Idempotency-Key", "k1")
			r := shop.Do("POST", "gateway", "/api/v2/orders", ann.Token,
				orders.PlaceRequest{Items: []orders.ItemRequest{flow.item}, Payment: &orders.PaymentRequest{CardNumber: flow.card}}, header)
			if r.Code != http.StatusCreated {
				t.Fatalf("place: %d %s", r.Code, r.Raw)
			}
			if done := shop.Await(ann, r.Body["id"].(string), 10*time.Second); done.Body["status"] != flow.status {
				t.Fatalf("the order ended %v, want %s", done.Body["status"], flow.status)
			}
			sequence.Golden(t, filepath.Join("testdata", "sequences", flow.name+".mmd"), func() observe.Trace { return shop.Trace(id) })
		})
	}
}
