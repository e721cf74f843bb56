package payments_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"connectrpc.com/connect"

	"github.com/switchyard/switchyard/api/events"
	paymentsv1 "github.com/switchyard/switchyard/api/gen/switchyard/payments/v1"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/shop/commerce"
	"github.com/switchyard/switchyard/internal/shop/payments"
	"github.com/switchyard/switchyard/outbox"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/store/storetest"
	"github.com/switchyard/switchyard/telemetry"
)

func open(t *testing.T, url string, p payments.Provider) (*payments.Service, *store.DB) {
	t.Helper()
	db, err := store.Open(context.Background(), store.Config{URL: url, Migrations: payments.Migrations()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background(), outbox.Migrations(), nil); err != nil {
		t.Fatal(err)
	}
	reg, err := event.NewRegistry(events.Schemas)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.New(db, outbox.Config{Name: "payments", Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	if p == nil {
		p = payments.NewSimulator(payments.SimulatorSettings{})
	}
	svc, err := payments.New(context.Background(), payments.Config{}, payments.Deps{DB: db, Outbox: ob, Provider: p, Log: telemetry.Discard()})
	if err != nil {
		t.Fatal(err)
	}
	return svc, db
}

func authorizeReq(order, card, key string, amount int64) *connect.Request[paymentsv1.AuthorizeRequest] {
	return connect.NewRequest(&paymentsv1.AuthorizeRequest{
		OrderId: order, CustomerId: "cust-1", CardNumber: card, IdempotencyKey: key,
		Amount: &paymentsv1.Money{MinorUnits: amount, Currency: "EUR"},
	})
}

func authorize(svc *payments.Service, order, card string) (*paymentsv1.Payment, error) {
	resp, err := svc.Authorize(context.Background(), authorizeReq(order, card, "key-"+order, 1299))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetPayment(), nil
}

func outboxed(t *testing.T, db *store.DB, typ, subject string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM outbox WHERE type = $1 AND subject = $2`, typ, subject).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTestCardsAnswerTheSameEveryTime(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		svc, db := open(t, url, nil)
		for card, want := range map[string]struct {
			status paymentsv1.PaymentStatus
			reason string
			event  string
		}{
			commerce.CardApproved:          {paymentsv1.PaymentStatus_PAYMENT_STATUS_AUTHORIZED, "", payments.EventAuthorized},
			commerce.CardDeclined:          {paymentsv1.PaymentStatus_PAYMENT_STATUS_DECLINED, "card declined", payments.EventDeclined},
			commerce.CardInsufficientFunds: {paymentsv1.PaymentStatus_PAYMENT_STATUS_DECLINED, "insufficient funds", payments.EventDeclined},
		} {
			order := "order-" + card
			p, err := authorize(svc, order, card)
			if err != nil {
				t.Fatalf("%s: %v", card, err)
			}
			if p.GetStatus() != want.status || p.GetDeclineReason() != want.reason {
				t.Errorf("%s: %v %q, want %v %q", card, p.GetStatus(), p.GetDeclineReason(), want.status, want.reason)
			}
			if p.GetCardLast4() != card[len(card)-4:] || p.GetAmount().GetMinorUnits() != 1299 {
				t.Errorf("%s: payment %v", card, p)
			}
			if n := outboxed(t, db, want.event, order); n != 1 {
				t.Errorf("%s: %d %s events, want 1", card, n, want.event)
			}
		}
		_, err := authorize(svc, "order-fails", commerce.CardProviderFails)
		if problem.KindOf(err) != problem.Unavailable {
			t.Errorf("a failing provider: %v, want unavailable", err)
		}
		var stored string
		db.QueryRow(`SELECT status FROM payments WHERE order_id = 'order-fails'`).Scan(&stored)
		if stored != "AUTHORIZING" {
			t.Errorf("after a provider failure the payment is %q, want AUTHORIZING (a retry finishes it)", stored)
		}
	})
}

func TestAuthorizeIsIdempotentByKey(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		svc, db := open(t, url, payments.NewSimulator(payments.SimulatorSettings{Latency: config.Duration(2e6)}))
		// Fifty concurrent retries of one authorization: one payment, one event.
		var wg sync.WaitGroup
		ids := make([]string, 50)
		errs := make([]error, 50)
		for i := range ids {
			wg.Go(func() {
				resp, err := svc.Authorize(context.Background(), authorizeReq("o-1", commerce.CardApproved, "k-1", 500))
				if err == nil {
					ids[i] = resp.Msg.GetPayment().GetId()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i := range ids {
			if errs[i] != nil || ids[i] != ids[0] {
				t.Fatalf("retry %d: %q, %v; want payment %s", i, ids[i], errs[i], ids[0])
			}
		}
		if n := outboxed(t, db, payments.EventAuthorized, "o-1"); n != 1 {
			t.Errorf("%d authorized events, want 1", n)
		}

		_, err := svc.Authorize(context.Background(), authorizeReq("o-1", commerce.CardApproved, "k-1", 501))
		if problem.KindOf(err) != problem.Invalid || problem.From(err).Detail == "" {
			t.Errorf("same key, other amount: %v, want invalid", err)
		}
		_, err = svc.Authorize(context.Background(), authorizeReq("o-1", commerce.CardApproved, "k-2", 500))
		if problem.KindOf(err) != problem.Conflict {
			t.Errorf("second payment for an order: %v, want conflict", err)
		}
	})
}

func capture(svc *payments.Service, order string) (*paymentsv1.Payment, error) {
	resp, err := svc.Capture(context.Background(), connect.NewRequest(&paymentsv1.CaptureRequest{OrderId: order}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetPayment(), nil
}

func void(svc *payments.Service, order string) (*paymentsv1.Payment, error) {
	resp, err := svc.Void(context.Background(), connect.NewRequest(&paymentsv1.VoidRequest{OrderId: order}))
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetPayment(), nil
}

func TestCaptureVoidAndRefundFollowThePaymentsState(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		svc, db := open(t, url, nil)
		authorize(svc, "paid", commerce.CardApproved)
		for range 2 {
			p, err := capture(svc, "paid")
			if err != nil || p.GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_CAPTURED {
				t.Fatalf("capture: %v %v", p, err)
			}
		}
		if n := outboxed(t, db, payments.EventCaptured, "paid"); n != 1 {
			t.Errorf("%d captured events after two captures, want 1", n)
		}
		if _, err := void(svc, "paid"); problem.KindOf(err) != problem.Conflict {
			t.Errorf("void of a captured payment: %v, want conflict", err)
		}
		var captured int64
		db.QueryRow(`SELECT captured FROM payments WHERE order_id = 'paid'`).Scan(&captured)
		if captured != 1299 {
			t.Errorf("captured %d, want 1299", captured)
		}
		resp, err := svc.Refund(context.Background(), connect.NewRequest(&paymentsv1.RefundRequest{OrderId: "paid"}))
		if err != nil || resp.Msg.GetPayment().GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_REFUNDED {
			t.Fatalf("refund: %v %v", resp, err)
		}

		authorize(svc, "dropped", commerce.CardApproved)
		for range 2 {
			if p, err := void(svc, "dropped"); err != nil || p.GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_VOIDED {
				t.Fatalf("void: %v %v", p, err)
			}
		}
		if n := outboxed(t, db, payments.EventVoided, "dropped"); n != 1 {
			t.Errorf("%d voided events after two voids, want 1", n)
		}
		if _, err := capture(svc, "dropped"); problem.KindOf(err) != problem.Conflict {
			t.Errorf("capture of a voided payment: %v, want conflict", err)
		}

		authorize(svc, "refused", commerce.CardDeclined)
		if _, err := capture(svc, "refused"); problem.KindOf(err) != problem.Conflict {
			t.Errorf("capture of a declined payment: %v, want conflict", err)
		}
		if p, err := void(svc, "refused"); err != nil || p.GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_DECLINED {
			t.Errorf("void of a declined payment: %v %v, want it unchanged", p, err)
		}
		if _, err := capture(svc, "nobody"); problem.KindOf(err) != problem.NotFound {
			t.Errorf("capture of an unknown order: %v, want not found", err)
		}
	})
}

func TestAVoidBeforeTheAuthorizationRefusesIt(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		svc, db := open(t, url, nil)
		if p, err := void(svc, "late"); err != nil || p.GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_VOIDED {
			t.Fatalf("void with no payment: %v %v", p, err)
		}
		if _, err := authorize(svc, "late", commerce.CardApproved); problem.KindOf(err) != problem.Conflict {
			t.Errorf("authorization after the void: %v, want conflict", err)
		}
		var held int
		db.QueryRow(`SELECT count(*) FROM payments WHERE order_id = 'late' AND status <> 'VOIDED'`).Scan(&held)
		if held != 0 {
			t.Errorf("the late authorization held money")
		}
	})
}

// gate is the simulator with a pause in Authorize, to place a void inside it.
type gate struct {
	*payments.Simulator
	entered, release chan struct{}
	mu               sync.Mutex
	voided           []string
}

func (g *gate) Authorize(ctx context.Context, c payments.Charge) (payments.Authorization, error) {
	close(g.entered)
	<-g.release
	return g.Simulator.Authorize(ctx, c)
}

func (g *gate) Void(ctx context.Context, ref string) error {
	g.mu.Lock()
	g.voided = append(g.voided, ref)
	g.mu.Unlock()
	return g.Simulator.Void(ctx, ref)
}

func TestAVoidDuringTheAuthorizationGivesTheHoldBack(t *testing.T) {
	t.Parallel()
	g := &gate{Simulator: payments.NewSimulator(payments.SimulatorSettings{}), entered: make(chan struct{}), release: make(chan struct{})}
	svc, _ := open(t, storetest.Targets(t)[0].URL, g)
	done := make(chan error, 1)
	go func() {
		_, err := authorize(svc, "racing", commerce.CardApproved)
		done <- err
	}()
	<-g.entered
	if p, err := void(svc, "racing"); err != nil || p.GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_VOIDED {
		t.Fatalf("void during authorization: %v %v", p, err)
	}
	close(g.release)
	if err := <-done; problem.KindOf(err) != problem.Conflict {
		t.Errorf("the authorization overtaken by a void: %v, want conflict", err)
	}
	if len(g.voided) != 1 || g.voided[0] == "" {
		t.Errorf("provider voids: %v, want the late hold given back once", g.voided)
	}
	if _, err := capture(svc, "racing"); problem.KindOf(err) != problem.Conflict {
		t.Errorf("capture after all that: %v, want conflict", err)
	}
}

func TestARetryFinishesAnAuthorizationTheProviderFailed(t *testing.T) {
	t.Parallel()
	flaky := &failing{Simulator: payments.NewSimulator(payments.SimulatorSettings{}), failures: 1}
	svc, _ := open(t, storetest.Targets(t)[0].URL, flaky)
	if _, err := authorize(svc, "o", commerce.CardApproved); problem.KindOf(err) != problem.Unavailable {
		t.Fatalf("first try: %v, want unavailable", err)
	}
	p, err := authorize(svc, "o", commerce.CardApproved)
	if err != nil || p.GetStatus() != paymentsv1.PaymentStatus_PAYMENT_STATUS_AUTHORIZED {
		t.Fatalf("retry: %v %v", p, err)
	}
}

type failing struct {
	*payments.Simulator
	failures int
}

func (f *failing) Authorize(ctx context.Context, c payments.Charge) (payments.Authorization, error) {
	if f.failures > 0 {
		f.failures--
		return payments.Authorization{}, fmt.Errorf("%w: connection reset", payments.ErrProviderFailed)
	}
	return f.Simulator.Authorize(ctx, c)
}

func TestBadRequestsNameTheField(t *testing.T) {
	t.Parallel()
	svc, _ := open(t, storetest.Targets(t)[0].URL, nil)
	for field, m := range map[string]*paymentsv1.AuthorizeRequest{
		"order_id":           {CustomerId: "c", CardNumber: commerce.CardApproved, IdempotencyKey: "k", Amount: &paymentsv1.Money{MinorUnits: 1, Currency: "EUR"}},
		"amount.minor_units": {OrderId: "o", CardNumber: commerce.CardApproved, IdempotencyKey: "k", Amount: &paymentsv1.Money{MinorUnits: 0, Currency: "EUR"}},
		"amount.currency":    {OrderId: "o", CardNumber: commerce.CardApproved, IdempotencyKey: "k", Amount: &paymentsv1.Money{MinorUnits: 1, Currency: "eur"}},
		"card_number":        {OrderId: "o", CardNumber: "4242424242424241", IdempotencyKey: "k", Amount: &paymentsv1.Money{MinorUnits: 1, Currency: "EUR"}},
		"idempotency_key":    {OrderId: "o", CardNumber: commerce.CardApproved, Amount: &paymentsv1.Money{MinorUnits: 1, Currency: "EUR"}},
	} {
		_, err := svc.Authorize(context.Background(), connect.NewRequest(m))
		var pe *problem.Error
		if !errors.As(err, &pe) || pe.Kind != problem.Invalid || len(pe.Fields) != 1 || pe.Fields[0].Name != field {
			t.Errorf("%s: %v, want an invalid-field problem naming it", field, err)
		}
	}
}
