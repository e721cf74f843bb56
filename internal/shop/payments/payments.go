// Package payments is the payment service of the reference shop: it charges
// customers' cards for orders through a Provider (a simulated one by default),
// served over gRPC (api/proto/switchyard/payments/v1).
//
// Money never moves on a guess. Every provider call is bracketed by database
// states: a payment is AUTHORIZING before the provider is asked to hold money and
// CAPTURING before it is asked to take it, so a crash at any point leaves a state
// that the next call (a retry of the same order) finishes rather than repeats, and
// a void racing a capture finds the capture in progress and refuses. Each change
// publishes its event through the outbox in the transaction that makes it.
//
// Idempotency: Authorize by the caller's idempotency key (the first outcome is
// returned again; the same key for a different request is refused); Capture, Void
// and Refund by the payment's state. An order has at most one payment, so it can
// never be charged twice.
package payments

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	paymentsv1 "github.com/switchyard/switchyard/api/gen/switchyard/payments/v1"
	"github.com/switchyard/switchyard/api/gen/switchyard/payments/v1/paymentsv1connect"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/shop/commerce"
	"github.com/switchyard/switchyard/outbox"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the payments database's schema migrations, for store.Open.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrations, "migrations")
	return sub
}

// Event types payments publishes.
const (
	EventAuthorized = "payments.payment.authorized.v1"
	EventDeclined   = "payments.payment.declined.v1"
	EventCaptured   = "payments.payment.captured.v1"
	EventVoided     = "payments.payment.voided.v1"
	EventRefunded   = "payments.payment.refunded.v1"
)

const source = "/switchyard/payments"

// Payment statuses, as stored.
const (
	statusAuthorizing = "AUTHORIZING"
	statusAuthorized  = "AUTHORIZED"
	statusDeclined    = "DECLINED"
	statusCapturing   = "CAPTURING"
	statusCaptured    = "CAPTURED"
	statusVoided      = "VOIDED"
	statusRefunding   = "REFUNDING"
	statusRefunded    = "REFUNDED"
)

// Config configures the payments service.
type Config struct {
	// Now returns the current time [time.Now].
	Now func() time.Time
}

// Service is the payments service.
type Service struct {
	cfg      Config
	db       *store.DB
	outbox   *outbox.Outbox
	provider Provider
	log      *slog.Logger
}

var _ paymentsv1connect.PaymentServiceHandler = (*Service)(nil)

// Deps are the payments service's collaborators.
type Deps struct {
	// DB is the service's database, migrated (its own migrations and the outbox's).
	DB *store.DB
	// Outbox carries the payment events. Required.
	Outbox *outbox.Outbox
	// Provider charges the cards (NewSimulator here). Required.
	Provider Provider
	Log      *slog.Logger
}

// New builds the service.
func New(_ context.Context, cfg Config, deps Deps) (*Service, error) {
	if deps.DB == nil || deps.Outbox == nil || deps.Provider == nil {
		return nil, errors.New("payments: a database, an outbox and a provider are required")
	}
	db, ob, provider, log := deps.DB, deps.Outbox, deps.Provider, deps.Log
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, db: db, outbox: ob, provider: provider, log: log}, nil
}

// payment is a stored payment.
type payment struct {
	id, orderID, customerID string
	amount                  int64
	currency                string
	status                  string
	declineReason           string
	cardLast4               string
	providerRef             string
	key, requestHash        string
	captured, refunded      int64
}

const paymentColumns = `id, order_id, customer_id, amount, currency, status, decline_reason, card_last4, provider_ref, idempotency_key, request_hash, captured, refunded`

type scanner interface{ Scan(...any) error }

func scanPayment(row scanner) (*payment, error) {
	var p payment
	err := row.Scan(&p.id, &p.orderID, &p.customerID, &p.amount, &p.currency, &p.status, &p.declineReason,
		&p.cardLast4, &p.providerRef, &p.key, &p.requestHash, &p.captured, &p.refunded)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load payment: %w", err)
	}
	return &p, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func byOrder(ctx context.Context, q querier, orderID string) (*payment, error) {
	return scanPayment(q.QueryRowContext(ctx, `SELECT `+paymentColumns+` FROM payments WHERE order_id = $1`, orderID))
}

func byKey(ctx context.Context, q querier, key string) (*payment, error) {
	return scanPayment(q.QueryRowContext(ctx, `SELECT `+paymentColumns+` FROM payments WHERE idempotency_key = $1`, key))
}

func (p *payment) proto() *paymentsv1.Payment {
	status := paymentsv1.PaymentStatus_PAYMENT_STATUS_UNSPECIFIED
	switch p.status {
	case statusAuthorized, statusCapturing:
		// Capturing is authorized until the provider confirms the capture.
		status = paymentsv1.PaymentStatus_PAYMENT_STATUS_AUTHORIZED
	case statusDeclined:
		status = paymentsv1.PaymentStatus_PAYMENT_STATUS_DECLINED
	case statusCaptured, statusRefunding:
		status = paymentsv1.PaymentStatus_PAYMENT_STATUS_CAPTURED
	case statusVoided:
		status = paymentsv1.PaymentStatus_PAYMENT_STATUS_VOIDED
	case statusRefunded:
		status = paymentsv1.PaymentStatus_PAYMENT_STATUS_REFUNDED
	}
	return &paymentsv1.Payment{
		Id: p.id, OrderId: p.orderID, CustomerId: p.customerID,
		Amount: &paymentsv1.Money{MinorUnits: p.amount, Currency: p.currency},
		Status: status, DeclineReason: p.declineReason, CardLast4: p.cardLast4, ProviderRef: p.providerRef,
	}
}

// publish records, in tx, the event of a payment reaching a status.
func (s *Service) publish(ctx context.Context, tx *sql.Tx, typ string, p *payment) error {
	data := map[string]any{
		"payment_id": p.id, "order_id": p.orderID, "customer_id": p.customerID,
		"amount": map[string]any{"minor_units": p.amount, "currency": p.currency},
		"status": p.status,
	}
	if p.status == statusDeclined {
		data["reason"] = p.declineReason
	}
	e, err := event.New(ctx, source, typ, p.orderID, data)
	if err != nil {
		return err
	}
	return s.outbox.Add(ctx, tx, e)
}

// move changes a payment's status from one to another, with the event of the new
// status (typ, when not empty), in one transaction; moved is false when the
// payment was no longer in from.
func (s *Service) move(ctx context.Context, p *payment, from, to, typ string, set string, args ...any) (moved bool, err error) {
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		q := `UPDATE payments SET status = $1, updated_at = $2` + set + ` WHERE id = $3 AND status = $4`
		res, err := tx.ExecContext(ctx, q, append([]any{to, store.Millis(s.cfg.Now()), p.id, from}, args...)...)
		if err != nil {
			return fmt.Errorf("payment %s %s→%s: %w", p.id, from, to, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		moved, p.status = true, to
		if typ == "" {
			return nil
		}
		return s.publish(ctx, tx, typ, p)
	})
	return moved, err
}

func providerError(op string, err error) error {
	if errors.Is(err, ErrProviderFailed) {
		return &problem.Error{Kind: problem.Unavailable, Detail: op + ": the payment provider failed; try again with the same key", RetryAfter: 100 * time.Millisecond}
	}
	return fmt.Errorf("%s: %w", op, err)
}

func validOrderID(id string) error {
	if id == "" || len(id) > 64 {
		return problem.InvalidField("order_id", "is required, at most 64 characters")
	}
	return nil
}

func validateAuthorize(m *paymentsv1.AuthorizeRequest) error {
	if err := validOrderID(m.GetOrderId()); err != nil {
		return err
	}
	if len(m.GetCustomerId()) > 64 {
		return problem.InvalidField("customer_id", "at most 64 characters")
	}
	if m.GetAmount().GetMinorUnits() <= 0 || m.GetAmount().GetMinorUnits() > 100_000_000_00 {
		return problem.InvalidField("amount.minor_units", "want more than 0 and at most 100000000000")
	}
	if !commerce.ValidCurrency(m.GetAmount().GetCurrency()) {
		return problem.InvalidField("amount.currency", "want an ISO 4217 code such as EUR")
	}
	if !commerce.ValidCardNumber(m.GetCardNumber()) {
		return problem.InvalidField("card_number", "want 12 to 19 digits passing the Luhn check")
	}
	if k := m.GetIdempotencyKey(); k == "" || len(k) > 64 {
		return problem.InvalidField("idempotency_key", "is required, at most 64 characters")
	}
	return nil
}

// Authorize implements paymentsv1connect.PaymentServiceHandler.
func (s *Service) Authorize(ctx context.Context, req *connect.Request[paymentsv1.AuthorizeRequest]) (*connect.Response[paymentsv1.AuthorizeResponse], error) {
	m := req.Msg
	if err := validateAuthorize(m); err != nil {
		return nil, err
	}
	p, err := s.begin(ctx, m)
	if err != nil {
		return nil, err
	}
	if p.status == statusAuthorizing {
		if err := s.authorize(ctx, p, m.GetCardNumber()); err != nil {
			return nil, err
		}
	}
	if p.status == statusVoided && p.providerRef == "" {
		return nil, problem.New(problem.Conflict, "order %s's payment was voided before it was authorized", p.orderID)
	}
	return connect.NewResponse(&paymentsv1.AuthorizeResponse{Payment: p.proto()}), nil
}

// begin finds the payment of an authorization's key, or records a new one as
// AUTHORIZING.
func (s *Service) begin(ctx context.Context, m *paymentsv1.AuthorizeRequest) (*payment, error) {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d\x00%s\x00%s", m.GetOrderId(), m.GetCustomerId(),
		m.GetAmount().GetMinorUnits(), m.GetAmount().GetCurrency(), m.GetCardNumber()))
	hash := hex.EncodeToString(sum[:])
	for range 2 {
		var p *payment
		err := s.db.InTx(ctx, func(tx *sql.Tx) error {
			var err error
			if p, err = byKey(ctx, tx, m.GetIdempotencyKey()); err != nil || p != nil {
				return err
			}
			if p, err = byOrder(ctx, tx, m.GetOrderId()); err != nil || p != nil {
				return err
			}
			id, _ := uuid.NewV7()
			card := m.GetCardNumber()
			p = &payment{
				id: id.String(), orderID: m.GetOrderId(), customerID: m.GetCustomerId(),
				amount: m.GetAmount().GetMinorUnits(), currency: m.GetAmount().GetCurrency(),
				status: statusAuthorizing, cardLast4: card[len(card)-4:], key: m.GetIdempotencyKey(), requestHash: hash,
			}
			now := store.Millis(s.cfg.Now())
			_, err = tx.ExecContext(ctx, `INSERT INTO payments (id, order_id, customer_id, amount, currency, status, card_last4, idempotency_key, request_hash, created_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)`,
				p.id, p.orderID, p.customerID, p.amount, p.currency, p.status, p.cardLast4, p.key, p.requestHash, now)
			return err
		})
		if store.IsUniqueViolation(err) {
			continue // a concurrent call for the key or the order won; read what it wrote
		}
		if err != nil {
			return nil, fmt.Errorf("begin authorization: %w", err)
		}
		marker := p.status == statusVoided && p.providerRef == ""
		switch {
		case p.key == m.GetIdempotencyKey() && p.requestHash != hash:
			return nil, problem.InvalidField("idempotency_key", "was used for a different authorization; use a new key")
		case p.key != m.GetIdempotencyKey() && !marker:
			return nil, problem.New(problem.Conflict, "order %s already has a payment", m.GetOrderId())
		}
		return p, nil
	}
	return nil, problem.New(problem.Conflict, "order %s's payment is being changed concurrently; try again", m.GetOrderId())
}

// authorize asks the provider to hold the payment's amount and records its answer.
func (s *Service) authorize(ctx context.Context, p *payment, card string) error {
	auth, err := s.provider.Authorize(ctx, Charge{Key: p.key, CardNumber: card, Amount: p.amount, Currency: p.currency})
	if err != nil {
		return providerError("authorize", err)
	}
	to, typ := statusAuthorized, EventAuthorized
	if !auth.Approved {
		to, typ = statusDeclined, EventDeclined
		p.declineReason = auth.DeclineReason
	}
	p.providerRef = auth.Ref
	moved, err := s.move(ctx, p, statusAuthorizing, to, typ, `, provider_ref = $5, decline_reason = $6`, auth.Ref, p.declineReason)
	if err != nil || moved {
		return err
	}
	// Someone moved it first: a concurrent retry recorded the same answer, or a void
	// came while the provider was deciding — then the hold it made goes back.
	current, err := byOrder(ctx, s.db, p.orderID)
	if err != nil {
		return err
	}
	*p = *current
	if p.status == statusVoided && auth.Approved {
		if err := s.provider.Void(context.WithoutCancel(ctx), auth.Ref); err != nil {
			s.log.WarnContext(ctx, "void of a late authorization failed; the hold expires at the provider", "order_id", p.orderID, "error", err)
		}
		return problem.New(problem.Conflict, "order %s's payment was voided while it was being authorized", p.orderID)
	}
	return nil
}

// Capture implements paymentsv1connect.PaymentServiceHandler.
func (s *Service) Capture(ctx context.Context, req *connect.Request[paymentsv1.CaptureRequest]) (*connect.Response[paymentsv1.CaptureResponse], error) {
	p, err := s.load(ctx, req.Msg.GetOrderId())
	if err != nil {
		return nil, err
	}
	if p.status == statusAuthorized {
		if _, err := s.move(ctx, p, statusAuthorized, statusCapturing, "", ""); err != nil {
			return nil, err
		}
		if p, err = s.load(ctx, p.orderID); err != nil {
			return nil, err
		}
	}
	switch p.status {
	case statusCapturing:
		if err := s.provider.Capture(ctx, p.providerRef, p.amount); err != nil {
			return nil, providerError("capture", err)
		}
		if _, err := s.move(ctx, p, statusCapturing, statusCaptured, EventCaptured, `, captured = $5`, p.amount); err != nil {
			return nil, err
		}
		p.captured = p.amount
	case statusCaptured, statusRefunding, statusRefunded:
	default:
		return nil, problem.New(problem.Conflict, "order %s's payment is %s and cannot be captured", p.orderID, p.status)
	}
	return connect.NewResponse(&paymentsv1.CaptureResponse{Payment: p.proto()}), nil
}

// Void implements paymentsv1connect.PaymentServiceHandler.
func (s *Service) Void(ctx context.Context, req *connect.Request[paymentsv1.VoidRequest]) (*connect.Response[paymentsv1.VoidResponse], error) {
	orderID := req.Msg.GetOrderId()
	if err := validOrderID(orderID); err != nil {
		return nil, err
	}
	for range 3 {
		p, err := byOrder(ctx, s.db, orderID)
		if err != nil {
			return nil, err
		}
		switch {
		case p == nil:
			p, err = s.marker(ctx, orderID)
			if store.IsUniqueViolation(err) {
				continue // the authorization arrived meanwhile
			}
			if err != nil {
				return nil, err
			}
		case p.status == statusAuthorizing:
			// The provider is deciding (or the process that asked died): the answer,
			// when it comes, finds the payment voided and gives the hold back.
			if moved, err := s.move(ctx, p, statusAuthorizing, statusVoided, "", ""); err != nil {
				return nil, err
			} else if !moved {
				continue
			}
		case p.status == statusAuthorized:
			// Voided here first, so a capture can no longer start; then the provider.
			if moved, err := s.move(ctx, p, statusAuthorized, statusVoided, EventVoided, ""); err != nil {
				return nil, err
			} else if !moved {
				continue
			}
			if err := s.provider.Void(ctx, p.providerRef); err != nil {
				s.log.WarnContext(ctx, "provider void failed; the hold expires at the provider", "order_id", orderID, "error", err)
			}
		case p.status == statusDeclined, p.status == statusVoided:
			// Nothing is held.
		default:
			return nil, problem.New(problem.Conflict, "order %s's payment is %s and cannot be voided; refund it", orderID, p.status)
		}
		return connect.NewResponse(&paymentsv1.VoidResponse{Payment: p.proto()}), nil
	}
	return nil, problem.New(problem.Conflict, "order %s's payment is being changed concurrently; try again", orderID)
}

// marker records that an order's payment was voided before any authorization.
func (s *Service) marker(ctx context.Context, orderID string) (*payment, error) {
	id, _ := uuid.NewV7()
	p := &payment{id: id.String(), orderID: orderID, status: statusVoided, currency: "XXX", key: "void:" + orderID}
	now := store.Millis(s.cfg.Now())
	_, err := s.db.ExecContext(ctx, `INSERT INTO payments (id, order_id, customer_id, amount, currency, status, idempotency_key, request_hash, created_at, updated_at)
		VALUES ($1, $2, '', 0, $3, $4, $5, '', $6, $6)`, p.id, p.orderID, p.currency, p.status, p.key, now)
	return p, err
}

// Refund implements paymentsv1connect.PaymentServiceHandler.
func (s *Service) Refund(ctx context.Context, req *connect.Request[paymentsv1.RefundRequest]) (*connect.Response[paymentsv1.RefundResponse], error) {
	p, err := s.load(ctx, req.Msg.GetOrderId())
	if err != nil {
		return nil, err
	}
	if p.status == statusCaptured {
		if _, err := s.move(ctx, p, statusCaptured, statusRefunding, "", ""); err != nil {
			return nil, err
		}
		if p, err = s.load(ctx, p.orderID); err != nil {
			return nil, err
		}
	}
	switch p.status {
	case statusRefunding:
		if err := s.provider.Refund(ctx, p.providerRef, p.captured); err != nil {
			return nil, providerError("refund", err)
		}
		if _, err := s.move(ctx, p, statusRefunding, statusRefunded, EventRefunded, `, refunded = $5`, p.captured); err != nil {
			return nil, err
		}
		p.refunded = p.captured
	case statusRefunded:
	default:
		return nil, problem.New(problem.Conflict, "order %s's payment is %s and cannot be refunded", p.orderID, p.status)
	}
	return connect.NewResponse(&paymentsv1.RefundResponse{Payment: p.proto()}), nil
}

// GetPayment implements paymentsv1connect.PaymentServiceHandler.
func (s *Service) GetPayment(ctx context.Context, req *connect.Request[paymentsv1.GetPaymentRequest]) (*connect.Response[paymentsv1.GetPaymentResponse], error) {
	p, err := s.load(ctx, req.Msg.GetOrderId())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&paymentsv1.GetPaymentResponse{Payment: p.proto()}), nil
}

func (s *Service) load(ctx context.Context, orderID string) (*payment, error) {
	if err := validOrderID(orderID); err != nil {
		return nil, err
	}
	p, err := byOrder(ctx, s.db, orderID)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, problem.New(problem.NotFound, "order %s has no payment", orderID)
	}
	return p, nil
}
