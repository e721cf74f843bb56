package users

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/store"
)

// User is a registered account.
type User struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Roles     []string  `json:"roles"`
	CreatedAt time.Time `json:"created_at"`

	passwordHash string
}

// normalizeEmail trims and lower-cases an address and checks it is a plain
// addr-spec (no display name, no comments) of at most 254 characters whose domain
// has a dot.
func normalizeEmail(raw string) (string, error) {
	email := strings.ToLower(strings.TrimSpace(raw))
	bad := func() error { return problem.InvalidField("email", "is not a valid email address") }
	if email == "" {
		return "", problem.InvalidField("email", "is required")
	}
	if len(email) > 254 || !utf8.ValidString(email) || strings.IndexFunc(email, unicode.IsControl) >= 0 {
		return "", bad()
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Name != "" || addr.Address != email {
		return "", bad()
	}
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" || len(local) > 64 || !strings.Contains(domain, ".") || strings.HasSuffix(domain, ".") || strings.HasPrefix(domain, ".") {
		return "", bad()
	}
	return email, nil
}

func checkName(raw string) (string, error) {
	name := strings.TrimSpace(raw)
	switch n := utf8.RuneCountInString(name); {
	case !utf8.ValidString(name):
		return "", problem.InvalidField("name", "must be valid UTF-8")
	case n == 0:
		return "", problem.InvalidField("name", "is required")
	case n > 100:
		return "", problem.InvalidField("name", "use at most 100 characters")
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return "", problem.InvalidField("name", "must not contain control characters")
	}
	return name, nil
}

// accounts stores users.
type accounts struct{ db *store.DB }

var errEmailTaken = problem.New(problem.Conflict, "an account with this email already exists")

func (a accounts) create(ctx context.Context, u *User) error {
	_, err := a.db.ExecContext(ctx,
		`INSERT INTO users (id, email, name, password_hash, roles, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)`,
		u.ID, u.Email, u.Name, u.passwordHash, strings.Join(u.Roles, ","), store.Millis(u.CreatedAt))
	if store.IsUniqueViolation(err) {
		return errEmailTaken
	}
	if err != nil {
		return fmt.Errorf("insert user: %w", err)
	}
	return nil
}

const userColumns = `id, email, name, password_hash, roles, created_at`

func scanUser(row *sql.Row) (*User, error) {
	var (
		u       User
		roles   string
		created int64
	)
	if err := row.Scan(&u.ID, &u.Email, &u.Name, &u.passwordHash, &roles, &created); err != nil {
		return nil, err
	}
	u.Roles = splitRoles(roles)
	u.CreatedAt = store.Time(created)
	return &u, nil
}

func splitRoles(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

var errNoUser = problem.New(problem.NotFound, "no such user")

func (a accounts) byEmail(ctx context.Context, email string) (*User, error) {
	u, err := scanUser(a.db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE email = $1`, email))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoUser
	}
	if err != nil {
		return nil, fmt.Errorf("load user by email: %w", err)
	}
	return u, nil
}

func (a accounts) byID(ctx context.Context, id string) (*User, error) {
	return a.byIDTx(ctx, a.db, id)
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (a accounts) byIDTx(ctx context.Context, q queryRower, id string) (*User, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, errNoUser
	}
	u, err := scanUser(q.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoUser
	}
	if err != nil {
		return nil, fmt.Errorf("load user: %w", err)
	}
	return u, nil
}

// grantRole adds role to the user with email (idempotent).
func (a accounts) grantRole(ctx context.Context, email, role string, now time.Time) error {
	return a.db.InTx(ctx, func(tx *sql.Tx) error {
		var roles string
		err := tx.QueryRowContext(ctx, `SELECT roles FROM users WHERE email = $1`, email).Scan(&roles)
		if errors.Is(err, sql.ErrNoRows) {
			return errNoUser
		}
		if err != nil {
			return err
		}
		list := splitRoles(roles)
		if slices.Contains(list, role) {
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE users SET roles = $1, updated_at = $2 WHERE email = $3`,
			strings.Join(append(list, role), ","), store.Millis(now), email)
		return err
	})
}
