// Package edge holds the shop's endpoints that live in the gateway because no single
// service can answer them: today, an order's summary, gathered from four services
// in parallel.
package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"connectrpc.com/connect"

	paymentsv1 "github.com/switchyard/switchyard/api/gen/switchyard/payments/v1"
	"github.com/switchyard/switchyard/api/gen/switchyard/payments/v1/paymentsv1connect"
	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rpc"
)

// SummaryPattern is the summary's route.
const SummaryPattern = "GET /api/v1/orders/{id}/summary"

// Summary answers GET /api/v1/orders/{id}/summary: the order (from orders), its
// payment (payments, over gRPC), its items with their product data (catalog) and
// what the customer has been told about it (notifications). The order is fetched
// with the caller's own token, so orders decides whether the caller may see it; the
// other parts are fetched at the same time but shown only once it has said yes.
// A part that fails or runs out of time is left out and named in "warnings".
type Summary struct {
	Orders, Catalog, Notifications *http.Client
	// OrdersURL, CatalogURL and NotificationsURL are the base URLs the clients expect.
	OrdersURL, CatalogURL, NotificationsURL string
	Payments                                paymentsv1connect.PaymentServiceClient
	// PartTimeout bounds each part [1s].
	PartTimeout time.Duration
	Problems    problem.Writer
}

// Route is the summary's gateway route.
func (s *Summary) Route() gateway.Route {
	return gateway.Route{Pattern: SummaryPattern, Auth: gateway.AuthRequired, Timeout: 3 * time.Second, Handler: s}
}

// Answer is the summary document.
type Answer struct {
	OrderID       string            `json:"order_id"`
	Order         json.RawMessage   `json:"order"`
	Payment       *Payment          `json:"payment,omitempty"`
	Items         []Item            `json:"items"`
	Notifications *Notifications    `json:"notifications,omitempty"`
	Warnings      []gateway.Warning `json:"warnings"`
}

// Payment is what the summary shows of the payment.
type Payment struct {
	Status        string `json:"status"`
	MinorUnits    int64  `json:"minor_units"`
	Currency      string `json:"currency"`
	CardLast4     string `json:"card_last4,omitempty"`
	DeclineReason string `json:"decline_reason,omitempty"`
}

// Item is an order line with the product as the catalog shows it now.
type Item struct {
	ProductID string          `json:"product_id"`
	Quantity  int             `json:"quantity"`
	Product   json.RawMessage `json:"product,omitempty"`
}

// Notifications is what the customer was told about the order.
type Notifications struct {
	Count  int    `json:"count"`
	Latest string `json:"latest_status,omitempty"`
}

func (s *Summary) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, ok := authn.PrincipalFrom(r.Context())
	if !ok {
		s.Problems.Write(w, r, problem.New(problem.Unauthenticated, "sign in to see an order"))
		return
	}
	id := r.PathValue("id")
	if id == "" || len(id) > 64 || strings.ContainsAny(id, "/?#%") {
		s.Problems.Write(w, r, problem.InvalidField("id", "not an order id"))
		return
	}
	timeout := s.PartTimeout
	if timeout <= 0 {
		timeout = time.Second
	}
	var order json.RawMessage
	orderErr := make(chan error, 1)
	go func() {
		err := s.getJSON(r.Context(), s.Orders, s.OrdersURL+"/v2/orders/"+url.PathEscape(id), p.Token, &order)
		orderErr <- err
	}()
	parts, warnings := gateway.Gather(r.Context(),
		gateway.Part{Name: "payment", Timeout: timeout, Fetch: func(ctx context.Context) (any, error) {
			res, err := s.Payments.GetPayment(ctx, connect.NewRequest(&paymentsv1.GetPaymentRequest{OrderId: id}))
			if err != nil {
				return nil, rpc.FromConnect(err)
			}
			pay := res.Msg.GetPayment()
			return &Payment{Status: strings.TrimPrefix(pay.GetStatus().String(), "PAYMENT_STATUS_"),
				MinorUnits: pay.GetAmount().GetMinorUnits(), Currency: pay.GetAmount().GetCurrency(),
				CardLast4: pay.GetCardLast4(), DeclineReason: pay.GetDeclineReason()}, nil
		}},
		gateway.Part{Name: "notifications", Timeout: timeout, Fetch: func(ctx context.Context) (any, error) {
			var page struct {
				Items []struct {
					OrderID string `json:"order_id"`
					Status  string `json:"status"`
				} `json:"items"`
			}
			u := s.NotificationsURL + "/v1/notifications?order_id=" + url.QueryEscape(id)
			if err := s.getJSON(ctx, s.Notifications, u, p.Token, &page); err != nil {
				return nil, err
			}
			n := &Notifications{}
			for _, it := range page.Items {
				if it.OrderID == id {
					n.Count++
					n.Latest = it.Status
				}
			}
			return n, nil
		}},
	)
	if err := <-orderErr; err != nil {
		// Without the order there is no summary, and nothing else may be shown: the
		// order is what says the caller may see the rest.
		s.Problems.Write(w, r, err)
		return
	}
	ans := Answer{OrderID: id, Order: order, Warnings: warnings}
	if v, ok := parts["payment"].(*Payment); ok {
		ans.Payment = v
	}
	if v, ok := parts["notifications"].(*Notifications); ok {
		ans.Notifications = v
	}
	var lines struct {
		Items []struct {
			ProductID string `json:"product_id"`
			Quantity  int    `json:"quantity"`
		} `json:"items"`
	}
	_ = json.Unmarshal(order, &lines) // orders' own document; a missing list is an empty one
	itemParts := make([]gateway.Part, len(lines.Items))
	for i, l := range lines.Items {
		itemParts[i] = gateway.Part{Name: fmt.Sprintf("items[%d].product", i), Timeout: timeout, Fetch: func(ctx context.Context) (any, error) {
			var product json.RawMessage
			err := s.getJSON(ctx, s.Catalog, s.CatalogURL+"/v1/products/"+url.PathEscape(l.ProductID), "", &product)
			return product, err
		}}
	}
	products, more := gateway.Gather(r.Context(), itemParts...)
	ans.Warnings = append(ans.Warnings, more...)
	ans.Items = make([]Item, len(lines.Items))
	for i, l := range lines.Items {
		ans.Items[i] = Item{ProductID: l.ProductID, Quantity: l.Quantity}
		if v, ok := products[itemParts[i].Name].(json.RawMessage); ok {
			ans.Items[i].Product = v
		}
	}
	if ans.Warnings == nil {
		ans.Warnings = []gateway.Warning{}
	}
	gateway.WriteJSON(w, http.StatusOK, ans)
}

// maxPart bounds a part's body.
const maxPart = 1 << 20

// getJSON fetches u with the caller's token and decodes the answer; a problem
// answer becomes a problem.Error of the same kind.
func (s *Summary) getJSON(ctx context.Context, c *http.Client, u, token string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPart))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return problemOf(resp.StatusCode, body)
	}
	return json.Unmarshal(body, v)
}

// problemOf turns an upstream's problem answer into an error of the same kind.
func problemOf(status int, body []byte) error {
	var d problem.Details
	_ = json.Unmarshal(body, &d)
	if d.Detail == "" {
		d.Detail = http.StatusText(status)
	}
	kind := problem.KindForStatus(status)
	if status >= 500 {
		kind = problem.Unavailable // whatever broke there, the summary's source is unavailable
	}
	return &problem.Error{Kind: kind, Detail: d.Detail}
}
