package users

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/store"
)

// TokenResponse is what login and refresh return (RFC 6749 section 5.1).
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

const refreshPrefix = "rt_"

var errBadRefresh = problem.New(problem.Unauthenticated, "the refresh token is not valid; sign in again")

// issue signs an access token for u and stores a new refresh token in family (a new
// family when empty), inside tx.
func (s *Service) issue(ctx context.Context, tx *sql.Tx, u *User, family string) (TokenResponse, error) {
	now := s.cfg.Now()
	key, err := s.keys.signer()
	if err != nil {
		return TokenResponse{}, err
	}
	jti, _ := uuid.NewV7()
	claims := authn.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.cfg.Issuer,
			Audience:  jwt.ClaimStrings{s.cfg.Audience},
			Subject:   u.ID,
			ID:        jti.String(),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.AccessTTL)),
		},
		Roles: u.Roles,
	}
	access, err := authn.SignAccessToken(key.kid, key.priv, claims)
	if err != nil {
		return TokenResponse{}, err
	}

	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	refresh := refreshPrefix + base64.RawURLEncoding.EncodeToString(raw)
	if family == "" {
		f, _ := uuid.NewV7()
		family = f.String()
	}
	_, err = tx.ExecContext(ctx,
		`INSERT INTO refresh_tokens (token_hash, user_id, family_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		hashToken(refresh), u.ID, family, store.Millis(now), store.Millis(now.Add(s.cfg.RefreshTTL)))
	if err != nil {
		return TokenResponse{}, fmt.Errorf("store refresh token: %w", err)
	}
	return TokenResponse{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer", ExpiresIn: int(s.cfg.AccessTTL / time.Second)}, nil
}

func hashToken(t string) string {
	sum := sha256.Sum256([]byte(t))
	return hex.EncodeToString(sum[:])
}

// rotate exchanges a refresh token for a new pair. A token is good once: presenting
// an already-rotated token means it leaked, so its whole family is revoked.
func (s *Service) rotate(ctx context.Context, refresh string) (TokenResponse, error) {
	if !strings.HasPrefix(refresh, refreshPrefix) || len(refresh) > 128 {
		return TokenResponse{}, errBadRefresh
	}
	h := hashToken(refresh)
	now := store.Millis(s.cfg.Now())
	var (
		resp    TokenResponse
		reused  bool
		family  string
		userID  string
		expires int64
		revoked sql.NullInt64
	)
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT user_id, family_id, expires_at, revoked_at FROM refresh_tokens WHERE token_hash = $1`, h).
			Scan(&userID, &family, &expires, &revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return errBadRefresh
		}
		if err != nil {
			return fmt.Errorf("load refresh token: %w", err)
		}
		if revoked.Valid {
			reused = true
			return nil
		}
		if expires <= now {
			return errBadRefresh
		}
		res, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL`, now, h)
		if err != nil {
			return fmt.Errorf("revoke refresh token: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			reused = true // a concurrent refresh won: treat this one as a replay
			return nil
		}
		u, err := accounts{s.db}.byIDTx(ctx, tx, userID)
		if err != nil {
			return err
		}
		resp, err = s.issue(ctx, tx, u, family)
		return err
	})
	if err != nil {
		return TokenResponse{}, err
	}
	if reused {
		if err := s.revokeFamily(ctx, family); err != nil {
			return TokenResponse{}, err
		}
		s.log.Warn("refresh token reused; its family is revoked", "user_id", userID, "family", family)
		return TokenResponse{}, errBadRefresh
	}
	return resp, nil
}

// revoke ends the family of a refresh token (logout). Unknown tokens are ignored.
func (s *Service) revoke(ctx context.Context, refresh string) error {
	var family string
	err := s.db.QueryRowContext(ctx, `SELECT family_id FROM refresh_tokens WHERE token_hash = $1`, hashToken(refresh)).Scan(&family)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load refresh token: %w", err)
	}
	return s.revokeFamily(ctx, family)
}

// revokeFamily ends every refresh token of a family, and every access token issued
// with them as far as introspection and userinfo are concerned.
func (s *Service) revokeFamily(ctx context.Context, family string) error {
	if family == "" {
		return nil
	}
	now := store.Millis(s.cfg.Now())
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL`, now, family); err != nil {
			return fmt.Errorf("revoke token family: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE access_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL`, now, family); err != nil {
			return fmt.Errorf("revoke token family: %w", err)
		}
		return nil
	})
}

// pruneTokens deletes refresh and access tokens expired for more than a day, and
// authorization requests older than a day.
func (s *Service) pruneTokens(ctx context.Context) error {
	before := store.Millis(s.cfg.Now().Add(-24 * time.Hour))
	for _, q := range []string{
		`DELETE FROM refresh_tokens WHERE expires_at < $1`,
		`DELETE FROM access_tokens WHERE expires_at < $1`,
		`DELETE FROM auth_requests WHERE created_at < $1`,
	} {
		if _, err := s.db.ExecContext(ctx, q, before); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
	}
	return nil
}
