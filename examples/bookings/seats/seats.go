// Package seats is the seats service of the bookings example: the seats of each
// show, held for a booking while it is paid for, then sold, or given back.
//
// Holding, releasing and selling are for the services that declare seats as their
// dependency (their service token is checked); every operation is idempotent by
// booking id, so a caller may retry it freely. Anyone may list the shows.
package seats

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/http"

	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rest"
	"github.com/switchyard/switchyard/server"
	"github.com/switchyard/switchyard/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Platform is the seats service as the platform builds and runs it.
func Platform() platform.Service {
	return platform.Service{Name: "seats", Build: func(ctx context.Context, p *platform.Process) (*platform.Component, error) {
		own, _ := fs.Sub(migrations, "migrations")
		db, err := p.Database(ctx, own)
		if err != nil {
			return nil, err
		}
		callers, err := p.Callers()
		if err != nil {
			return nil, err
		}
		s := &service{db: db, problems: problem.Writer{Log: p.Log}}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /v1/shows", s.shows)
		internal := func(h http.HandlerFunc) http.Handler { return callers.RequireService(s.problems.Write, h) }
		mux.Handle("POST /v1/holds", internal(s.hold))
		mux.Handle("DELETE /v1/holds/{booking}", internal(s.release))
		mux.Handle("POST /v1/holds/{booking}/sell", internal(s.sell))
		return &platform.Component{Handler: mux, Checks: map[string]server.Check{"database": db.PingContext}}, nil
	}}
}

type service struct {
	db       *store.DB
	problems problem.Writer
}

// Show is a show and its seats.
type Show struct {
	ID        string `json:"id"`
	Title     string `json:"title"`
	Capacity  int    `json:"capacity"`
	Available int    `json:"available"`
}

func (s *service) shows(w http.ResponseWriter, r *http.Request) {
	rows, err := s.db.QueryContext(r.Context(), `SELECT id, title, capacity, capacity - held - sold FROM shows ORDER BY id`)
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	defer rows.Close()
	out := []Show{}
	for rows.Next() {
		var sh Show
		if err := rows.Scan(&sh.ID, &sh.Title, &sh.Capacity, &sh.Available); err != nil {
			s.problems.Write(w, r, err)
			return
		}
		out = append(out, sh)
	}
	if err := rows.Err(); err != nil {
		s.problems.Write(w, r, err)
		return
	}
	rest.Write(w, http.StatusOK, map[string]any{"shows": out})
}

// HoldRequest asks for seats of a show for a booking.
type HoldRequest struct {
	BookingID string `json:"booking_id"`
	Show      string `json:"show"`
	Seats     int    `json:"seats"`
}

// Hold is a booking's hold, as it stands.
type Hold struct {
	BookingID string `json:"booking_id"`
	Show      string `json:"show"`
	Seats     int    `json:"seats"`
	State     string `json:"state"`
}

// errSoldOut refuses a hold the show cannot seat.
var errSoldOut = errors.New("sold out")

func (s *service) hold(w http.ResponseWriter, r *http.Request) {
	var req HoldRequest
	if err := rest.Decode(w, r, &req, 4<<10); err != nil {
		s.problems.Write(w, r, err)
		return
	}
	switch {
	case req.BookingID == "" || len(req.BookingID) > 64:
		s.problems.Write(w, r, problem.InvalidField("booking_id", "want 1 to 64 characters"))
		return
	case req.Seats < 1 || req.Seats > 10:
		s.problems.Write(w, r, problem.InvalidField("seats", "want 1 to 10, got %d", req.Seats))
		return
	}
	var h Hold
	err := s.db.InTx(r.Context(), func(tx *sql.Tx) error {
		// The same booking again gets the same answer.
		err := tx.QueryRowContext(r.Context(), `SELECT booking_id, show_id, seats, state FROM holds WHERE booking_id = $1`, req.BookingID).
			Scan(&h.BookingID, &h.Show, &h.Seats, &h.State)
		if err == nil {
			if h.State == "released" {
				return problem.New(problem.Conflict, "booking %s was given up", req.BookingID)
			}
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		res, err := tx.ExecContext(r.Context(), `UPDATE shows SET held = held + $1 WHERE id = $2 AND capacity - held - sold >= $1`, req.Seats, req.Show)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var exists int
			if err := tx.QueryRowContext(r.Context(), `SELECT count(*) FROM shows WHERE id = $1`, req.Show).Scan(&exists); err != nil {
				return err
			}
			if exists == 0 {
				return problem.New(problem.NotFound, "no show %q", req.Show)
			}
			return &problem.Error{Kind: problem.Conflict, Detail: fmt.Sprintf("%s: not %d seats left", req.Show, req.Seats), Err: errSoldOut}
		}
		h = Hold{BookingID: req.BookingID, Show: req.Show, Seats: req.Seats, State: "held"}
		_, err = tx.ExecContext(r.Context(), `INSERT INTO holds (booking_id, show_id, seats, state) VALUES ($1, $2, $3, 'held')`, req.BookingID, req.Show, req.Seats)
		return err
	})
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	rest.Write(w, http.StatusCreated, h)
}

// release gives a booking's held seats back; releasing what was never held leaves
// a marker, so that the hold, arriving late, is refused.
func (s *service) release(w http.ResponseWriter, r *http.Request) {
	booking := r.PathValue("booking")
	err := s.db.InTx(r.Context(), func(tx *sql.Tx) error {
		var show, state string
		var seats int
		err := tx.QueryRowContext(r.Context(), `SELECT show_id, seats, state FROM holds WHERE booking_id = $1`, booking).Scan(&show, &seats, &state)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(r.Context(), `INSERT INTO holds (booking_id, show_id, seats, state) VALUES ($1, '', 0, 'released')`, booking)
			return err
		case err != nil:
			return err
		case state == "sold":
			return problem.New(problem.Conflict, "booking %s's seats are sold", booking)
		case state == "released":
			return nil
		}
		if _, err := tx.ExecContext(r.Context(), `UPDATE shows SET held = held - $1 WHERE id = $2`, seats, show); err != nil {
			return err
		}
		_, err = tx.ExecContext(r.Context(), `UPDATE holds SET state = 'released' WHERE booking_id = $1`, booking)
		return err
	})
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// sell turns a booking's held seats into sold ones.
func (s *service) sell(w http.ResponseWriter, r *http.Request) {
	booking := r.PathValue("booking")
	err := s.db.InTx(r.Context(), func(tx *sql.Tx) error {
		var show, state string
		var seats int
		err := tx.QueryRowContext(r.Context(), `SELECT show_id, seats, state FROM holds WHERE booking_id = $1`, booking).Scan(&show, &seats, &state)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return problem.New(problem.NotFound, "no hold for booking %s", booking)
		case err != nil:
			return err
		case state == "sold":
			return nil
		case state == "released":
			return problem.New(problem.Conflict, "booking %s was given up", booking)
		}
		if _, err := tx.ExecContext(r.Context(), `UPDATE shows SET held = held - $1, sold = sold + $1 WHERE id = $2`, seats, show); err != nil {
			return err
		}
		_, err = tx.ExecContext(r.Context(), `UPDATE holds SET state = 'sold' WHERE booking_id = $1`, booking)
		return err
	})
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	rest.Write(w, http.StatusOK, map[string]string{"booking_id": booking, "state": "sold"})
}
