// Package booking is the bookings service of the bookings example: it takes a
// booking and sees it through its saga —
//
//	hold_seats (seats, REST)  →  charge_card (the pivot)  →  sell_seats (seats)
//
// — or, when the show is sold out or the card declines, gives the seats back and
// cancels the booking with the reason. The booking, its saga and its events are
// written in the service's own database: the booking row and the saga's start in
// one transaction, each step's outcome with the booking's status and its event
// (through the outbox) in another.
package booking

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/outbox"
	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rest"
	"github.com/switchyard/switchyard/rpc"
	"github.com/switchyard/switchyard/saga"
	"github.com/switchyard/switchyard/server"
	"github.com/switchyard/switchyard/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Event types bookings publishes.
const (
	EventConfirmed = "bookings.booking.confirmed.v1"
	EventCancelled = "bookings.booking.cancelled.v1"
)

// Booking statuses.
const (
	StatusPending   = "PENDING"
	StatusConfirmed = "CONFIRMED"
	StatusCancelled = "CANCELLED"
	StatusOnHold    = "ON_HOLD" // its saga is stuck: a person must look
)

// CardDeclined is the test card the simulated charge always declines.
const CardDeclined = "4000000000000002"

// PricePerSeat is what a seat costs, in minor units.
const PricePerSeat = 4500

// Settings are the service's own options (services.bookings.settings).
type Settings struct {
	// SagaDeadline bounds a booking from its start to the charge [10s].
	SagaDeadline config.Duration `yaml:"saga_deadline"`
}

func settings(declared *config.Service) (Settings, error) {
	s := Settings{SagaDeadline: config.Duration(10 * time.Second)}
	if err := declared.Settings.Decode(&s); err != nil {
		return s, err
	}
	if d := s.SagaDeadline.Std(); d < time.Second || d > time.Hour {
		return s, declared.Settings.Invalid("saga_deadline", "want 1s to 1h")
	}
	return s, nil
}

// Platform is the bookings service as the platform builds and runs it: seats over
// REST under the policy switchyard.yaml declares, its events through the outbox,
// and the booking saga on its own database.
func Platform() platform.Service {
	return platform.Service{Name: "bookings", Build: build, Sagas: func(declared *config.Service) ([]platform.SagaInfo, error) {
		st, err := settings(declared)
		if err != nil {
			return nil, err
		}
		d := (&service{}).flow(st)
		return []platform.SagaInfo{{Name: d.Name, Deadline: d.Deadline, Steps: d.Describe()}}, nil
	}}
}

func build(ctx context.Context, p *platform.Process) (*platform.Component, error) {
	st, err := settings(p.Declared)
	if err != nil {
		return nil, err
	}
	own, _ := fs.Sub(migrations, "migrations")
	db, err := p.Database(ctx, own)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx, saga.Migrations(), p.Log); err != nil {
		return nil, err
	}
	ob, err := p.Outbox(ctx, db)
	if err != nil {
		return nil, err
	}
	seats, err := p.Client(ctx, "seats")
	if err != nil {
		return nil, err
	}
	s := &service{db: db, outbox: ob, seats: seats, log: p.Log, problems: problem.Writer{Log: p.Log}}
	s.saga, err = saga.New(db, s.flow(st), saga.Config[Flow]{
		OnTransition: s.onTransition, Log: p.Log, Tracer: p.Tracing.Tracer("bookings/saga"), Metrics: p.Metrics.Registry,
	})
	if err != nil {
		return nil, err
	}
	p.Go(s.saga.Run)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/bookings", s.book)
	mux.HandleFunc("GET /v1/bookings/{id}", s.get)
	return &platform.Component{Handler: mux, Checks: map[string]server.Check{"database": db.PingContext}}, nil
}

type service struct {
	db       *store.DB
	outbox   *outbox.Outbox
	seats    *rpc.Client
	saga     *saga.Orchestrator[Flow]
	log      *slog.Logger
	problems problem.Writer
}

// Flow is the booking saga's data, saved with each step.
type Flow struct {
	BookingID string `json:"booking_id"`
	Show      string `json:"show"`
	Seats     int    `json:"seats"`
	Amount    int64  `json:"amount_minor"`
	// Card is kept only until it is charged.
	Card string `json:"card,omitempty"`
}

func (s *service) flow(st Settings) saga.Definition[Flow] {
	return saga.Definition[Flow]{
		Name:     "booking",
		Deadline: st.SagaDeadline.Std(),
		Steps: []saga.Step[Flow]{
			{Name: "hold_seats", Do: s.hold, Undo: s.release,
				About: "seats POST /v1/holds holds the seats", UndoAbout: "seats DELETE /v1/holds/{booking} gives them back"},
			{Name: "charge_card", Do: s.charge, Pivot: true,
				About: "charges the card (simulated); a decline cancels the booking"},
			{Name: "sell_seats", Do: s.sell,
				About: "seats POST /v1/holds/{booking}/sell; the booking is CONFIRMED"},
		},
	}
}

// call sends a request to seats through the rpc stack (discovery, the declared
// policy, service tokens, tracing). Every call of the saga is idempotent by
// booking id, and its Idempotency-Key lets the stack retry a POST. A refusal
// (4xx) ends the step with a reason; anything else is tried again.
func (s *service) call(ctx context.Context, method, path, booking string, body any) error {
	req, err := rest.NewRequest(ctx, method, s.seats.BaseURL()+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Idempotency-Key", booking)
	resp, err := s.seats.HTTPClient().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		return saga.Fail("%s", problem.FromResponse(resp).Detail)
	}
	if resp.StatusCode >= 500 {
		return fmt.Errorf("seats: %s", resp.Status)
	}
	return nil
}

func (s *service) hold(ctx context.Context, f *Flow) error {
	return s.call(ctx, http.MethodPost, "/v1/holds", f.BookingID, map[string]any{"booking_id": f.BookingID, "show": f.Show, "seats": f.Seats})
}

func (s *service) release(ctx context.Context, f *Flow) error {
	err := s.call(ctx, http.MethodDelete, "/v1/holds/"+f.BookingID, f.BookingID, nil)
	var refusal *saga.Failure
	if errors.As(err, &refusal) {
		return fmt.Errorf("release refused: %s", refusal.Reason) // a compensation must succeed: keep trying
	}
	return err
}

func (s *service) charge(_ context.Context, f *Flow) error {
	if f.Card == CardDeclined {
		return saga.Fail("card declined")
	}
	f.Card = ""
	return nil
}

func (s *service) sell(ctx context.Context, f *Flow) error {
	return s.call(ctx, http.MethodPost, "/v1/holds/"+f.BookingID+"/sell", f.BookingID, nil)
}

// onTransition keeps the booking in step with its saga: status and events change
// in the transaction that records the saga's transition.
func (s *service) onTransition(ctx context.Context, tx *sql.Tx, t saga.Transition[Flow]) error {
	f := t.Data
	switch t.Change {
	case saga.ChangeDone:
		return s.settle(ctx, tx, t, StatusConfirmed, EventConfirmed,
			map[string]any{"booking_id": f.BookingID, "show": f.Show, "seats": f.Seats, "amount_minor": f.Amount})
	case saga.ChangeCompensated:
		return s.settle(ctx, tx, t, StatusCancelled, EventCancelled,
			map[string]any{"booking_id": f.BookingID, "show": f.Show, "reason": t.Reason})
	case saga.ChangeStuck:
		return s.settle(ctx, tx, t, StatusOnHold, "", nil)
	}
	return nil
}

func (s *service) settle(ctx context.Context, tx *sql.Tx, t saga.Transition[Flow], status, eventType string, data map[string]any) error {
	if _, err := tx.ExecContext(ctx, `UPDATE bookings SET status = $1, reason = $2, updated_at = $3 WHERE id = $4`,
		status, t.Reason, store.Millis(t.At), t.Data.BookingID); err != nil {
		return err
	}
	if eventType == "" {
		return nil
	}
	e, err := event.New(ctx, "/bookings", eventType, t.Data.BookingID, data)
	if err != nil {
		return err
	}
	return s.outbox.Add(ctx, tx, e)
}

// BookRequest is a booking as a customer asks for it.
type BookRequest struct {
	Show  string `json:"show"`
	Seats int    `json:"seats"`
	Card  string `json:"card"`
}

// Booking is a booking as it stands.
type Booking struct {
	ID     string `json:"id"`
	Show   string `json:"show"`
	Seats  int    `json:"seats"`
	Amount int64  `json:"amount_minor"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

func (s *service) book(w http.ResponseWriter, r *http.Request) {
	var req BookRequest
	if err := rest.Decode(w, r, &req, 4<<10); err != nil {
		s.problems.Write(w, r, err)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	switch {
	case req.Show == "" || len(req.Show) > 64:
		s.problems.Write(w, r, problem.InvalidField("show", "want a show's id"))
		return
	case req.Seats < 1 || req.Seats > 10:
		s.problems.Write(w, r, problem.InvalidField("seats", "want 1 to 10, got %d", req.Seats))
		return
	case len(req.Card) < 12 || len(req.Card) > 19:
		s.problems.Write(w, r, problem.InvalidField("card", "want 12 to 19 digits"))
		return
	case len(key) > 64:
		s.problems.Write(w, r, problem.InvalidField("Idempotency-Key", "want at most 64 characters"))
		return
	}
	if key != "" {
		if b, err := s.byKey(r.Context(), key); err == nil {
			rest.Write(w, http.StatusOK, b) // the same booking again
			return
		}
	}
	id := event.NewID()
	b := Booking{ID: id, Show: req.Show, Seats: req.Seats, Amount: int64(req.Seats) * PricePerSeat, Status: StatusPending}
	now := time.Now()
	var keyArg any
	if key != "" {
		keyArg = key
	}
	err := s.saga.Start(r.Context(), id, Flow{BookingID: id, Show: req.Show, Seats: req.Seats, Amount: b.Amount, Card: req.Card},
		func(tx *sql.Tx) error {
			_, err := tx.ExecContext(r.Context(), `INSERT INTO bookings (id, show_id, seats, amount_minor, status, idempotency_key, created_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $7)`, id, req.Show, req.Seats, b.Amount, StatusPending, keyArg, store.Millis(now))
			return err
		})
	if err != nil {
		if key != "" {
			if b, err := s.byKey(r.Context(), key); err == nil {
				rest.Write(w, http.StatusOK, b) // a concurrent request with the key won
				return
			}
		}
		s.problems.Write(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/bookings/"+id)
	rest.Write(w, http.StatusCreated, b)
}

func (s *service) byKey(ctx context.Context, key string) (Booking, error) {
	var id string
	if err := s.db.QueryRowContext(ctx, `SELECT id FROM bookings WHERE idempotency_key = $1`, key).Scan(&id); err != nil {
		return Booking{}, err
	}
	return s.read(ctx, id)
}

func (s *service) read(ctx context.Context, id string) (Booking, error) {
	b := Booking{ID: id}
	err := s.db.QueryRowContext(ctx, `SELECT show_id, seats, amount_minor, status, reason FROM bookings WHERE id = $1`, id).
		Scan(&b.Show, &b.Seats, &b.Amount, &b.Status, &b.Reason)
	if errors.Is(err, sql.ErrNoRows) {
		return b, problem.New(problem.NotFound, "no booking %s", id)
	}
	return b, err
}

func (s *service) get(w http.ResponseWriter, r *http.Request) {
	b, err := s.read(r.Context(), r.PathValue("id"))
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	rest.Write(w, http.StatusOK, b)
}
