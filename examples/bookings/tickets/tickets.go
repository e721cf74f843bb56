// Package tickets is the tickets service of the bookings example: it issues one
// ticket per seat of every confirmed booking, from bookings' events.
//
// Its consumer is inbox-backed: the tickets of an event and the record that the
// event was handled are written in one transaction, so however often the broker
// delivers an event, its tickets are issued once.
package tickets

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"net/http"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rest"
	"github.com/switchyard/switchyard/server"
	"github.com/switchyard/switchyard/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// EventConfirmed is the event tickets are issued from.
const EventConfirmed = "bookings.booking.confirmed.v1"

// Platform is the tickets service as the platform builds and runs it.
func Platform() platform.Service {
	return platform.Service{Name: "tickets", Build: func(ctx context.Context, p *platform.Process) (*platform.Component, error) {
		own, _ := fs.Sub(migrations, "migrations")
		db, err := p.Database(ctx, own)
		if err != nil {
			return nil, err
		}
		in, err := p.Inbox(ctx, db)
		if err != nil {
			return nil, err
		}
		if err := p.Consume(bus.Subscription{Types: []string{EventConfirmed}}, in.Wrap("tickets", issue)); err != nil {
			return nil, err
		}
		s := &service{db: db, problems: problem.Writer{Log: p.Log}}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /v1/tickets", s.list)
		return &platform.Component{Handler: mux, Checks: map[string]server.Check{"database": db.PingContext}}, nil
	}}
}

// issue writes a confirmed booking's tickets, in the inbox's transaction.
func issue(ctx context.Context, tx *sql.Tx, m *bus.Message) error {
	var d struct {
		BookingID string `json:"booking_id"`
		Show      string `json:"show"`
		Seats     int    `json:"seats"`
	}
	if err := m.Event.DecodeData(&d); err != nil {
		return bus.Permanent(err)
	}
	for seat := 1; seat <= d.Seats; seat++ {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tickets (id, booking_id, show_id, seat, issued_at) VALUES ($1, $2, $3, $4, $5)`,
			fmt.Sprintf("%s-%d", d.BookingID, seat), d.BookingID, d.Show, seat, store.Millis(m.Event.Time)); err != nil {
			return err
		}
	}
	return nil
}

type service struct {
	db       *store.DB
	problems problem.Writer
}

// Ticket is one seat's ticket.
type Ticket struct {
	ID      string `json:"id"`
	Booking string `json:"booking_id"`
	Show    string `json:"show"`
	Seat    int    `json:"seat"`
}

// list answers a booking's tickets: GET /v1/tickets?booking=<id>.
func (s *service) list(w http.ResponseWriter, r *http.Request) {
	booking := r.URL.Query().Get("booking")
	if booking == "" || len(booking) > 64 {
		s.problems.Write(w, r, problem.InvalidField("booking", "want a booking id"))
		return
	}
	rows, err := s.db.QueryContext(r.Context(), `SELECT id, booking_id, show_id, seat FROM tickets WHERE booking_id = $1 ORDER BY seat`, booking)
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	defer rows.Close()
	out := []Ticket{}
	for rows.Next() {
		var t Ticket
		if err := rows.Scan(&t.ID, &t.Booking, &t.Show, &t.Seat); err != nil {
			s.problems.Write(w, r, err)
			return
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		s.problems.Write(w, r, err)
		return
	}
	rest.Write(w, http.StatusOK, map[string]any{"tickets": out})
}
