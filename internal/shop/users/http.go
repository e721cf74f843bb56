package users

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rest"
)

type registerRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

func (s *Service) register(w http.ResponseWriter, r *http.Request) {
	var req registerRequest
	if err := rest.Decode(w, r, &req, s.cfg.MaxBody); err != nil {
		s.problems.Write(w, r, err)
		return
	}
	email, err := normalizeEmail(req.Email)
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	name, err := checkName(req.Name)
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	if err := checkPassword(req.Password, email); err != nil {
		s.problems.Write(w, r, err)
		return
	}
	hash, err := s.hasher.Hash(r.Context(), req.Password)
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	id, _ := uuid.NewV7()
	u := &User{ID: id.String(), Email: email, Name: name, Roles: []string{}, CreatedAt: s.cfg.Now().UTC().Truncate(time.Millisecond), passwordHash: hash}
	if err := (accounts{s.db}).create(r.Context(), u); err != nil {
		s.problems.Write(w, r, err)
		return
	}
	s.registrations.Inc()
	s.log.InfoContext(r.Context(), "user registered", "user_id", u.ID)
	w.Header().Set("Location", "/v1/users/"+u.ID)
	rest.Write(w, http.StatusCreated, u)
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

var errBadLogin = problem.New(problem.Unauthenticated, "wrong email or password")

func (s *Service) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if err := rest.Decode(w, r, &req, s.cfg.MaxBody); err != nil {
		s.problems.Write(w, r, err)
		return
	}
	u, err := s.authenticate(r.Context(), req.Email, req.Password)
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	var resp TokenResponse
	err = s.db.InTx(r.Context(), func(tx *sql.Tx) error {
		var err error
		resp, err = s.issue(r.Context(), tx, u, "")
		return err
	})
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	s.logins.WithLabelValues("ok").Inc()
	w.Header().Set("Cache-Control", "no-store")
	rest.Write(w, http.StatusOK, resp)
}

// authenticate checks a password sign-in. Failures look the same whatever the
// cause, and take the same time: an unknown email is checked against no hash.
func (s *Service) authenticate(ctx context.Context, rawEmail, password string) (*User, error) {
	if len(password) > 4*maxPasswordLen {
		return nil, errBadLogin
	}
	email, _ := normalizeEmail(rawEmail) // an invalid email is simply not found
	u, err := accounts{s.db}.byEmail(ctx, email)
	if err != nil && !errors.Is(err, problem.ErrNotFound) {
		return nil, err
	}
	stored := ""
	if u != nil {
		stored = u.passwordHash
	}
	ok, err := s.hasher.Verify(ctx, password, stored)
	if err != nil {
		return nil, err
	}
	if !ok {
		s.logins.WithLabelValues("rejected").Inc()
		return nil, errBadLogin
	}
	return u, nil
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (s *Service) refresh(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	if err := rest.Decode(w, r, &req, s.cfg.MaxBody); err != nil {
		s.problems.Write(w, r, err)
		return
	}
	resp, err := s.rotate(r.Context(), req.RefreshToken)
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	rest.Write(w, http.StatusOK, resp)
}

func (s *Service) logout(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	if err := rest.Decode(w, r, &req, s.cfg.MaxBody); err != nil {
		s.problems.Write(w, r, err)
		return
	}
	if err := s.revoke(r.Context(), req.RefreshToken); err != nil {
		s.problems.Write(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Service) me(w http.ResponseWriter, r *http.Request) {
	p, _ := authn.PrincipalFrom(r.Context())
	u, err := accounts{s.db}.byID(r.Context(), p.Subject)
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	rest.Write(w, http.StatusOK, u)
}

// user returns an account to its owner or an admin; to anyone else it does not exist.
func (s *Service) user(w http.ResponseWriter, r *http.Request) {
	p, _ := authn.PrincipalFrom(r.Context())
	id := r.PathValue("id")
	if p.Subject != id && !p.HasRole("admin") {
		s.problems.Write(w, r, errNoUser)
		return
	}
	u, err := accounts{s.db}.byID(r.Context(), id)
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	rest.Write(w, http.StatusOK, u)
}

func (s *Service) jwks(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	rest.Write(w, http.StatusOK, s.keys.jwks())
}
