package orders

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"connectrpc.com/connect"

	inventoryv1 "github.com/switchyard/switchyard/api/gen/switchyard/inventory/v1"
	paymentsv1 "github.com/switchyard/switchyard/api/gen/switchyard/payments/v1"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rpc"
	"github.com/switchyard/switchyard/saga"
	"github.com/switchyard/switchyard/store"
)

// Flow is the order saga's data, saved with each step.
type Flow struct {
	OrderID    string        `json:"order_id"`
	CustomerID string        `json:"customer_id"`
	Items      []ItemRequest `json:"items"`
	Total      int64         `json:"total_minor"`
	Currency   string        `json:"currency"`
	// Card is the card number, kept only until the payment is authorized (a retry
	// after a crash needs it) and erased in the same transaction that records the
	// authorization.
	Card string `json:"card,omitempty"`
}

// Saga steps, by name.
const (
	stepReserve   = "reserve_stock"
	stepAuthorize = "authorize_payment"
	stepCapture   = "capture_payment"
	stepCommit    = "commit_stock"
)

// flow is the order saga: hold the stock, authorize the payment, take the money
// (the pivot: from there the order only goes forward), commit the stock.
func (s *Service) flow() saga.Definition[Flow] {
	return saga.Definition[Flow]{
		Name:     "order",
		Deadline: s.cfg.Settings.SagaDeadline.Std(),
		Steps: []saga.Step[Flow]{
			{Name: stepReserve, Do: s.reserve, Undo: s.release,
				About: "inventory.ReserveStock holds every line's stock (all or none)", UndoAbout: "inventory.ReleaseReservation gives it back"},
			{Name: stepAuthorize, Do: s.authorize, Undo: s.void,
				About: "payments.Authorize puts a hold on the card; a decline fails the order", UndoAbout: "payments.Void lifts the hold"},
			{Name: stepCapture, Do: s.capture, Pivot: true, Unrecorded: true,
				About: "payments.Capture takes the money; from here the order only goes forward"},
			{Name: stepCommit, Do: s.commit,
				About: "inventory.CommitReservation turns the hold into a sale; the order is CONFIRMED"},
		},
	}
}

// idempotent marks a gRPC request as safe to retry: every call the saga makes is
// idempotent by order id, and the key tells the client stack so.
func idempotent[T any](msg *T, orderID string) *connect.Request[T] {
	req := connect.NewRequest(msg)
	req.Header().Set("Idempotency-Key", orderID)
	return req
}

func (s *Service) reserve(ctx context.Context, f *Flow) error {
	items := make([]*inventoryv1.Item, len(f.Items))
	for i, it := range f.Items {
		items[i] = &inventoryv1.Item{ProductId: it.ProductID, Quantity: int32(it.Quantity)}
	}
	_, err := s.deps.Inventory.ReserveStock(ctx, idempotent(&inventoryv1.ReserveStockRequest{OrderId: f.OrderID, Items: items}, f.OrderID))
	if err = rpc.FromConnect(err); problem.KindOf(err) == problem.Conflict {
		return saga.Fail("out of stock: %s", problem.From(err).Detail)
	}
	return err
}

func (s *Service) release(ctx context.Context, f *Flow) error {
	_, err := s.deps.Inventory.ReleaseReservation(ctx, idempotent(&inventoryv1.ReleaseReservationRequest{OrderId: f.OrderID}, f.OrderID))
	return rpc.FromConnect(err)
}

func (s *Service) authorize(ctx context.Context, f *Flow) error {
	resp, err := s.deps.Payments.Authorize(ctx, idempotent(&paymentsv1.AuthorizeRequest{
		OrderId: f.OrderID, CustomerId: f.CustomerID, CardNumber: f.Card, IdempotencyKey: "order:" + f.OrderID,
		Amount: &paymentsv1.Money{MinorUnits: f.Total, Currency: f.Currency},
	}, f.OrderID))
	if err = rpc.FromConnect(err); err != nil {
		if problem.KindOf(err) == problem.Conflict || problem.KindOf(err) == problem.Invalid {
			return saga.Fail("payment refused: %s", problem.From(err).Detail)
		}
		return err
	}
	if p := resp.Msg.GetPayment(); p.GetStatus() == paymentsv1.PaymentStatus_PAYMENT_STATUS_DECLINED {
		return saga.Fail("payment declined: %s", p.GetDeclineReason())
	}
	f.Card = ""
	return nil
}

func (s *Service) void(ctx context.Context, f *Flow) error {
	_, err := s.deps.Payments.Void(ctx, idempotent(&paymentsv1.VoidRequest{OrderId: f.OrderID}, f.OrderID))
	return rpc.FromConnect(err)
}

func (s *Service) capture(ctx context.Context, f *Flow) error {
	_, err := s.deps.Payments.Capture(ctx, idempotent(&paymentsv1.CaptureRequest{OrderId: f.OrderID}, f.OrderID))
	if err = rpc.FromConnect(err); problem.KindOf(err) == problem.Conflict {
		return saga.Fail("payment could not be captured: %s", problem.From(err).Detail)
	}
	return err
}

func (s *Service) commit(ctx context.Context, f *Flow) error {
	_, err := s.deps.Inventory.CommitReservation(ctx, idempotent(&inventoryv1.CommitReservationRequest{OrderId: f.OrderID}, f.OrderID))
	return rpc.FromConnect(err)
}

// onTransition keeps the order in step with its saga: status, history and events
// change in the transaction that records the saga's transition.
func (s *Service) onTransition(ctx context.Context, tx *sql.Tx, t saga.Transition[Flow]) error {
	f := t.Data
	switch t.Change {
	case saga.ChangeStepDone:
		switch t.Step {
		case stepReserve:
			return s.setStatus(ctx, tx, f.OrderID, StatusReserved, "", t)
		case stepAuthorize:
			return s.setStatus(ctx, tx, f.OrderID, StatusAuthorized, "", t)
		}
	case saga.ChangeCompensating:
		return s.setStatus(ctx, tx, f.OrderID, StatusCancelling, t.Reason, t)
	case saga.ChangeDone:
		if err := s.setStatus(ctx, tx, f.OrderID, StatusConfirmed, "", t); err != nil {
			return err
		}
		return s.emit(ctx, tx, EventConfirmed, f.OrderID, map[string]any{
			"order_id": f.OrderID, "customer_id": f.CustomerID,
			"total": map[string]any{"minor_units": f.Total, "currency": f.Currency},
		})
	case saga.ChangeCompensated:
		if err := s.setStatus(ctx, tx, f.OrderID, StatusCancelled, t.Reason, t); err != nil {
			return err
		}
		return s.emit(ctx, tx, EventCancelled, f.OrderID, map[string]any{
			"order_id": f.OrderID, "customer_id": f.CustomerID, "reason": t.Reason,
		})
	case saga.ChangeStuck:
		s.deps.Log.ErrorContext(ctx, "order needs a person: its saga cannot finish", "order_id", f.OrderID, "reason", t.Reason)
		return s.setStatus(ctx, tx, f.OrderID, StatusOnHold, t.Reason, t)
	}
	return nil
}

func (s *Service) setStatus(ctx context.Context, tx *sql.Tx, id, status, reason string, t saga.Transition[Flow]) error {
	if _, err := tx.ExecContext(ctx, `UPDATE orders SET status = $1, reason = $2, updated_at = $3 WHERE id = $4`,
		status, reason, store.Millis(t.At), id); err != nil {
		return fmt.Errorf("order %s status: %w", id, err)
	}
	return s.history(ctx, tx, id, status, reason, t.At)
}

func (s *Service) history(ctx context.Context, tx *sql.Tx, id, status, reason string, at time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO order_history (order_id, seq, status, reason, at)
		VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM order_history WHERE order_id = $1), $2, $3, $4)`,
		id, status, reason, store.Millis(at))
	if err != nil {
		return fmt.Errorf("order %s history: %w", id, err)
	}
	return nil
}

func (s *Service) emit(ctx context.Context, tx *sql.Tx, typ, orderID string, data map[string]any) error {
	e, err := event.New(ctx, source, typ, orderID, data)
	if err != nil {
		return err
	}
	return s.deps.Outbox.Add(ctx, tx, e)
}
