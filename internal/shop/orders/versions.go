package orders

import (
	"strconv"
	"time"

	"github.com/switchyard/switchyard/internal/shop/commerce"
)

// version is an API version; each renders orders its own way.
type version int

const (
	v1 version = 1
	v2 version = 2
)

func (v version) String() string { return "v" + strconv.Itoa(int(v)) }

func (v version) render(o *Order) any {
	if v == v1 {
		return renderV1(o)
	}
	return renderV2(o)
}

// OrderV1 is an order in the v1 API: money as decimal strings.
type OrderV1 struct {
	ID         string    `json:"id"`
	CustomerID string    `json:"customer_id"`
	Status     string    `json:"status"`
	Reason     string    `json:"reason,omitempty"`
	Items      []ItemV1  `json:"items"`
	Total      string    `json:"total"`
	Currency   string    `json:"currency"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// ItemV1 is a line in the v1 API.
type ItemV1 struct {
	ProductID string `json:"product_id"`
	Quantity  int    `json:"quantity"`
	UnitPrice string `json:"unit_price"`
}

func renderV1(o *Order) OrderV1 {
	out := OrderV1{ID: o.ID, CustomerID: o.CustomerID, Status: o.Status, Reason: o.Reason,
		Total: commerce.Decimal(o.Total, o.Currency), Currency: o.Currency, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
		Items: make([]ItemV1, len(o.Lines))}
	for i, l := range o.Lines {
		out.Items[i] = ItemV1{ProductID: l.ProductID, Quantity: l.Quantity, UnitPrice: commerce.Decimal(l.UnitPrice, l.Currency)}
	}
	return out
}

// Money is an amount in the v2 API: integer minor units and the currency.
type Money struct {
	MinorUnits int64  `json:"minor_units"`
	Currency   string `json:"currency"`
}

// OrderV2 is an order in the v2 API.
type OrderV2 struct {
	ID            string         `json:"id"`
	CustomerID    string         `json:"customer_id"`
	Status        string         `json:"status"`
	Reason        string         `json:"reason,omitempty"`
	Items         []ItemV2       `json:"items"`
	Total         Money          `json:"total"`
	Payment       PaymentV2      `json:"payment"`
	StatusHistory []StatusChange `json:"status_history,omitempty"`
	CreatedAt     time.Time      `json:"created_at"`
	UpdatedAt     time.Time      `json:"updated_at"`
}

// ItemV2 is a priced line in the v2 API.
type ItemV2 struct {
	ProductID string `json:"product_id"`
	Name      string `json:"name"`
	Quantity  int    `json:"quantity"`
	UnitPrice Money  `json:"unit_price"`
	LineTotal Money  `json:"line_total"`
}

// PaymentV2 is what the v2 API shows of the card.
type PaymentV2 struct {
	CardLast4 string `json:"card_last4"`
}

// StatusChange is an entry of the v2 status history.
type StatusChange struct {
	Status string    `json:"status"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

func renderV2(o *Order) OrderV2 {
	out := OrderV2{ID: o.ID, CustomerID: o.CustomerID, Status: o.Status, Reason: o.Reason,
		Total: Money{o.Total, o.Currency}, Payment: PaymentV2{CardLast4: o.CardLast4},
		CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt, Items: make([]ItemV2, len(o.Lines))}
	for i, l := range o.Lines {
		out.Items[i] = ItemV2{ProductID: l.ProductID, Name: l.Name, Quantity: l.Quantity,
			UnitPrice: Money{l.UnitPrice, l.Currency}, LineTotal: Money{l.UnitPrice * int64(l.Quantity), l.Currency}}
	}
	for _, c := range o.History {
		out.StatusHistory = append(out.StatusHistory, StatusChange(c))
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
