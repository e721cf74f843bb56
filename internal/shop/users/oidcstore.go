package users

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/switchyard/switchyard/store"
)

// authRequestTTL bounds an authorization request, sign-in and code exchange
// included (RFC 6749 section 4.1.2 advises codes of at most ten minutes).
const authRequestTTL = 10 * time.Minute

// storage is the provider's state in the users database: op.Storage, with the
// client_credentials grant. Every replica shares it.
type storage struct {
	s       *Service
	clients clients
	login   func(authRequestID string) string
}

var _ interface {
	op.Storage
	op.ClientCredentialsStorage
	op.CanSetUserinfoFromRequest
} = (*storage)(nil)

// authRequest is an authorization request as stored.
type authRequest struct {
	ID              string                   `json:"id"`
	ClientID        string                   `json:"client_id"`
	RedirectURI     string                   `json:"redirect_uri"`
	Scopes          []string                 `json:"scopes"`
	State           string                   `json:"state"`
	Nonce           string                   `json:"nonce"`
	ResponseType    oidc.ResponseType        `json:"response_type"`
	ResponseMode    oidc.ResponseMode        `json:"response_mode"`
	Challenge       string                   `json:"code_challenge"`
	ChallengeMethod oidc.CodeChallengeMethod `json:"code_challenge_method"`
	// LoginHint is the email the sign-in page starts with (the storefront sends
	// it after a sign-up); only a suggestion, never trusted.
	LoginHint string `json:"login_hint,omitempty"`

	userID   string
	authTime time.Time
	done     bool
}

func (a *authRequest) GetID() string         { return a.ID }
func (a *authRequest) GetACR() string        { return "" }
func (a *authRequest) GetAMR() []string      { return []string{"pwd"} }
func (a *authRequest) GetAudience() []string { return []string{a.ClientID} }
func (a *authRequest) GetAuthTime() time.Time {
	return a.authTime
}
func (a *authRequest) GetClientID() string { return a.ClientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.Challenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.Challenge, Method: a.ChallengeMethod}
}
func (a *authRequest) GetNonce() string                   { return a.Nonce }
func (a *authRequest) GetRedirectURI() string             { return a.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType { return a.ResponseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.ResponseMode }
func (a *authRequest) GetScopes() []string                { return a.Scopes }
func (a *authRequest) GetState() string                   { return a.State }
func (a *authRequest) GetSubject() string                 { return a.userID }
func (a *authRequest) Done() bool                         { return a.done }

// refreshGrant is what a refresh token stands for.
type refreshGrant struct {
	hash, family, userID, clientID string
	scopes                         []string
	authTime                       time.Time
}

func (r *refreshGrant) GetAMR() []string            { return []string{"pwd"} }
func (r *refreshGrant) GetAudience() []string       { return []string{r.clientID} }
func (r *refreshGrant) GetAuthTime() time.Time      { return r.authTime }
func (r *refreshGrant) GetClientID() string         { return r.clientID }
func (r *refreshGrant) GetScopes() []string         { return r.scopes }
func (r *refreshGrant) GetSubject() string          { return r.userID }
func (r *refreshGrant) SetCurrentScopes(s []string) { r.scopes = s }

// machineRequest is a client_credentials grant: the client acting for itself.
type machineRequest struct {
	clientID string
	scopes   []string
}

func (m *machineRequest) GetSubject() string    { return m.clientID }
func (m *machineRequest) GetAudience() []string { return []string{m.clientID} }
func (m *machineRequest) GetScopes() []string   { return m.scopes }

// Clients.

func (st *storage) client(ctx context.Context, id string) (op.Client, error) {
	c, err := st.clients.byID(ctx, id)
	if err != nil {
		return nil, err
	}
	return clientRef{Client: c, login: st.login}, nil
}

func (st *storage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	return st.client(ctx, id)
}

func (st *storage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	c, err := st.clients.byID(ctx, id)
	if err != nil {
		return err
	}
	if !c.checkSecret(secret) {
		return errors.New("wrong client secret")
	}
	return nil
}

func (st *storage) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	c, err := st.clients.byID(ctx, id)
	if err != nil {
		return nil, err
	}
	if !c.checkSecret(secret) || !slices.Contains(c.Grants, GrantClientCredentials) {
		return nil, errors.New("wrong client or secret, or a client without the client_credentials grant")
	}
	return clientRef{Client: c, login: st.login}, nil
}

func (st *storage) ClientCredentialsTokenRequest(ctx context.Context, id string, scopes []string) (op.TokenRequest, error) {
	c, err := st.clients.byID(ctx, id)
	if err != nil {
		return nil, err
	}
	for _, sc := range scopes {
		if !slices.Contains(c.Scopes, sc) {
			return nil, oidc.ErrInvalidScope().WithDescription("the client may not ask for the scope %s", sc)
		}
	}
	return &machineRequest{clientID: id, scopes: scopes}, nil
}

// Authorization requests.

func (st *storage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	c, err := st.clients.byID(ctx, req.ClientID)
	if err != nil {
		return nil, oidc.ErrInvalidClient().WithParent(err)
	}
	if req.CodeChallenge == "" && c.Public() {
		return nil, oidc.ErrInvalidRequest().WithDescription("a public client must use PKCE: send code_challenge and code_challenge_method=S256 (RFC 7636)")
	}
	if req.CodeChallenge != "" && req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256; plain is not accepted")
	}
	id, _ := uuid.NewV7()
	a := &authRequest{ID: id.String(), ClientID: req.ClientID, RedirectURI: req.RedirectURI, Scopes: req.Scopes, State: req.State,
		Nonce: req.Nonce, ResponseType: req.ResponseType, ResponseMode: req.ResponseMode,
		Challenge: req.CodeChallenge, ChallengeMethod: req.CodeChallengeMethod, LoginHint: loginHint(req.LoginHint)}
	raw, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	_, err = st.s.db.ExecContext(ctx, `INSERT INTO auth_requests (id, client_id, request, created_at) VALUES ($1, $2, $3, $4)`,
		a.ID, a.ClientID, string(raw), store.Millis(st.s.cfg.Now()))
	if err != nil {
		return nil, fmt.Errorf("store auth request: %w", err)
	}
	return a, nil
}

// loginHint keeps a login_hint that could be an email address, bounded.
func loginHint(h string) string {
	if len(h) > 254 || !strings.Contains(h, "@") {
		return ""
	}
	return h
}

var errNoAuthRequest = errors.New("no such authorization request, or it has expired")

// loadAuthRequest loads a request still in its lifetime, and whether its code
// was already exchanged.
func (st *storage) loadAuthRequest(ctx context.Context, where string, arg any) (*authRequest, bool, error) {
	var (
		raw, userID       string
		authTime, created int64
		done              bool
		exchanged         sql.NullInt64
	)
	err := st.s.db.QueryRowContext(ctx,
		`SELECT request, user_id, auth_time, done, created_at, exchanged_at FROM auth_requests WHERE `+where, arg).
		Scan(&raw, &userID, &authTime, &done, &created, &exchanged)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, errNoAuthRequest
	}
	if err != nil {
		return nil, false, fmt.Errorf("load auth request: %w", err)
	}
	if st.s.cfg.Now().Sub(store.Time(created)) > authRequestTTL {
		return nil, false, errNoAuthRequest
	}
	var a authRequest
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		return nil, false, fmt.Errorf("decode auth request: %w", err)
	}
	a.userID, a.done = userID, done
	if authTime > 0 {
		a.authTime = store.Time(authTime)
	}
	return &a, exchanged.Valid, nil
}

func (st *storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	a, exchanged, err := st.loadAuthRequest(ctx, "id = $1", id)
	if err != nil {
		return nil, err
	}
	if exchanged {
		return nil, errNoAuthRequest
	}
	return a, nil
}

// AuthRequestByCode finds the request a code was issued for. A code presented
// again after its exchange revokes every token it was exchanged for: someone
// else has it (RFC 6749 section 4.1.2).
func (st *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	if len(code) > 128 {
		return nil, errNoAuthRequest
	}
	a, exchanged, err := st.loadAuthRequest(ctx, "code_hash = $1", hashToken(code))
	if err != nil {
		return nil, err
	}
	if exchanged {
		if err := st.s.revokeFamily(ctx, a.ID); err != nil {
			return nil, err
		}
		st.s.log.WarnContext(ctx, "an authorization code was presented twice; what it was exchanged for is revoked", "client_id", a.ClientID)
		return nil, errors.New("the code was already used")
	}
	return a, nil
}

func (st *storage) SaveAuthCode(ctx context.Context, id, code string) error {
	_, err := st.s.db.ExecContext(ctx, `UPDATE auth_requests SET code_hash = $1 WHERE id = $2 AND code_hash IS NULL`, hashToken(code), id)
	return err
}

// DeleteAuthRequest is called once the code is exchanged: the request is kept,
// marked, so that a second use of its code is recognised.
func (st *storage) DeleteAuthRequest(ctx context.Context, id string) error {
	_, err := st.s.db.ExecContext(ctx, `UPDATE auth_requests SET exchanged_at = $1 WHERE id = $2`, store.Millis(st.s.cfg.Now()), id)
	return err
}

// signIn records who signed in for the request, before any consent.
func (st *storage) signIn(ctx context.Context, id, userID string) error {
	return st.update(ctx, `UPDATE auth_requests SET user_id = $1, auth_time = $2 WHERE id = $3 AND NOT done AND code_hash IS NULL`,
		userID, store.Millis(st.s.cfg.Now()), id)
}

// approve marks the signed-in request done: the provider may issue its code.
func (st *storage) approve(ctx context.Context, id string) error {
	return st.update(ctx, `UPDATE auth_requests SET done = TRUE WHERE id = $1 AND user_id <> '' AND NOT done AND code_hash IS NULL`, id)
}

func (st *storage) update(ctx context.Context, q string, args ...any) error {
	res, err := st.s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("update auth request: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return errNoAuthRequest
	}
	return nil
}

// Tokens.

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// grantOf says which grant a token request stands for, its client and the family
// its tokens belong to (an authorization request's id, or a refresh token's
// family).
func grantOf(req op.TokenRequest) (grant, clientID, family string) {
	switch r := req.(type) {
	case *authRequest:
		return GrantCode, r.ClientID, r.ID
	case *refreshGrant:
		return GrantRefresh, r.clientID, r.family
	case *machineRequest:
		return GrantClientCredentials, r.clientID, ""
	}
	return "", "", ""
}

func (st *storage) insertAccess(ctx context.Context, q execer, req op.TokenRequest) (string, time.Time, error) {
	grant, clientID, family := grantOf(req)
	if grant == "" {
		return "", time.Time{}, oidc.ErrUnsupportedGrantType()
	}
	id, _ := uuid.NewV7()
	expires := st.s.cfg.Now().Add(st.s.cfg.AccessTTL)
	_, err := q.ExecContext(ctx,
		`INSERT INTO access_tokens (id, subject, client_id, grant_type, scopes, family_id, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		id.String(), req.GetSubject(), clientID, grant, strings.Join(req.GetScopes(), " "), family, store.Millis(expires))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("store access token: %w", err)
	}
	return id.String(), expires, nil
}

func (st *storage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	return st.insertAccess(ctx, st.s.db, req)
}

// CreateAccessAndRefreshTokens issues an access token and a refresh token; given
// the refresh token being exchanged, it is used up in the same transaction, and
// if another exchange used it first, the whole family is revoked.
func (st *storage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	_, clientID, family := grantOf(req)
	var (
		accessID, refresh string
		expires           time.Time
		reused            bool
	)
	now := st.s.cfg.Now()
	authTime := now
	if r, ok := req.(*refreshGrant); ok {
		authTime = r.authTime
	}
	err := st.s.db.InTx(ctx, func(tx *sql.Tx) error {
		if current != "" {
			res, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL`, store.Millis(now), hashToken(current))
			if err != nil {
				return fmt.Errorf("use refresh token: %w", err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				reused = true
				return nil
			}
		}
		var err error
		if accessID, expires, err = st.insertAccess(ctx, tx, req); err != nil {
			return err
		}
		raw := make([]byte, 32)
		_, _ = rand.Read(raw)
		refresh = refreshPrefix + base64.RawURLEncoding.EncodeToString(raw)
		_, err = tx.ExecContext(ctx,
			`INSERT INTO refresh_tokens (token_hash, user_id, family_id, created_at, expires_at, client_id, scopes, auth_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			hashToken(refresh), req.GetSubject(), family, store.Millis(now), store.Millis(now.Add(st.s.cfg.RefreshTTL)),
			clientID, strings.Join(req.GetScopes(), " "), store.Millis(authTime))
		if err != nil {
			return fmt.Errorf("store refresh token: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", "", time.Time{}, err
	}
	if reused {
		if err := st.s.revokeFamily(ctx, family); err != nil {
			return "", "", time.Time{}, err
		}
		return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("the refresh token was already used; sign in again")
	}
	return accessID, refresh, expires, nil
}

// TokenRequestByRefreshToken finds what a refresh token stands for. A token
// already used means it leaked: its family is revoked.
func (st *storage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	r, revoked, err := st.refreshToken(ctx, token)
	if err != nil {
		return nil, err
	}
	if revoked {
		if err := st.s.revokeFamily(ctx, r.family); err != nil {
			return nil, err
		}
		st.s.log.WarnContext(ctx, "refresh token reused; its family is revoked", "user_id", r.userID, "client_id", r.clientID)
		return nil, op.ErrInvalidRefreshToken
	}
	return r, nil
}

func (st *storage) refreshToken(ctx context.Context, token string) (*refreshGrant, bool, error) {
	if !strings.HasPrefix(token, refreshPrefix) || len(token) > 128 {
		return nil, false, op.ErrInvalidRefreshToken
	}
	r := &refreshGrant{hash: hashToken(token)}
	var (
		scopes            string
		authTime, expires int64
		revoked           sql.NullInt64
	)
	err := st.s.db.QueryRowContext(ctx,
		`SELECT user_id, family_id, client_id, scopes, auth_time, expires_at, revoked_at FROM refresh_tokens WHERE token_hash = $1`, r.hash).
		Scan(&r.userID, &r.family, &r.clientID, &scopes, &authTime, &expires, &revoked)
	if errors.Is(err, sql.ErrNoRows) || err == nil && (r.clientID == "" || expires <= store.Millis(st.s.cfg.Now())) {
		return nil, false, op.ErrInvalidRefreshToken // unknown, expired, or the JSON login's
	}
	if err != nil {
		return nil, false, fmt.Errorf("load refresh token: %w", err)
	}
	r.scopes, r.authTime = strings.Fields(scopes), store.Time(authTime)
	return r, revoked.Valid, nil
}

func (st *storage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	r, _, err := st.refreshToken(ctx, token)
	if err != nil {
		return "", "", err
	}
	return r.userID, refreshIDPrefix + r.hash, nil
}

// refreshIDPrefix tells a refresh token's id from an access token's in RevokeToken.
const refreshIDPrefix = "rt:"

// RevokeToken ends a token of clientID's (RFC 7009): a refresh token with its
// whole family, an access token for introspection and userinfo (services verify
// access tokens offline, so one lives until it expires: 15 minutes).
func (st *storage) RevokeToken(ctx context.Context, tokenOrID, _, clientID string) *oidc.Error {
	if hash, ok := strings.CutPrefix(tokenOrID, refreshIDPrefix); ok {
		var family, owner string
		err := st.s.db.QueryRowContext(ctx, `SELECT family_id, client_id FROM refresh_tokens WHERE token_hash = $1`, hash).Scan(&family, &owner)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return oidc.ErrServerError().WithParent(err)
		}
		if owner != clientID {
			return oidc.ErrInvalidClient().WithDescription("the token was not issued to this client")
		}
		if err := st.s.revokeFamily(ctx, family); err != nil {
			return oidc.ErrServerError().WithParent(err)
		}
		return nil
	}
	var owner string
	err := st.s.db.QueryRowContext(ctx, `SELECT client_id FROM access_tokens WHERE id = $1`, tokenOrID).Scan(&owner)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // unknown tokens need no revoking (RFC 7009 section 2.2)
	}
	if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	if owner != clientID {
		return oidc.ErrInvalidClient().WithDescription("the token was not issued to this client")
	}
	if _, err := st.s.db.ExecContext(ctx, `UPDATE access_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, store.Millis(st.s.cfg.Now()), tokenOrID); err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	return nil
}

// TerminateSession has nothing to end: the provider keeps no sign-in session, and
// every authorization asks for the password.
func (st *storage) TerminateSession(context.Context, string, string) error { return nil }

// activeAccess loads an access token still valid for introspection and userinfo.
func (st *storage) activeAccess(ctx context.Context, id, subject string) (clientID string, scopes []string, grant string, expires time.Time, err error) {
	var (
		sub, sc string
		exp     int64
		revoked sql.NullInt64
	)
	err = st.s.db.QueryRowContext(ctx, `SELECT subject, client_id, grant_type, scopes, expires_at, revoked_at FROM access_tokens WHERE id = $1`, id).
		Scan(&sub, &clientID, &grant, &sc, &exp, &revoked)
	if errors.Is(err, sql.ErrNoRows) || err == nil && (sub != subject || revoked.Valid || exp <= store.Millis(st.s.cfg.Now())) {
		return "", nil, "", time.Time{}, errors.New("the token is not active")
	}
	if err != nil {
		return "", nil, "", time.Time{}, fmt.Errorf("load access token: %w", err)
	}
	return clientID, strings.Fields(sc), grant, store.Time(exp), nil
}

// User information.

func (st *storage) setUserinfo(ctx context.Context, ui *oidc.UserInfo, userID string, scopes []string) error {
	u, err := accounts{st.s.db}.byID(ctx, userID)
	if err != nil {
		return err
	}
	ui.Subject = u.ID
	for _, sc := range scopes {
		switch sc {
		case oidc.ScopeEmail:
			// The shop never checks that an address is its owner's: it says so.
			ui.Email, ui.EmailVerified = u.Email, false
		case oidc.ScopeProfile:
			ui.Name = u.Name
		}
	}
	return nil
}

func (st *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil // deprecated by the library in favour of SetUserinfoFromRequest
}

func (st *storage) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	return st.setUserinfo(ctx, ui, req.GetSubject(), scopes)
}

func (st *storage) SetUserinfoFromToken(ctx context.Context, ui *oidc.UserInfo, tokenID, subject, _ string) error {
	_, scopes, grant, _, err := st.activeAccess(ctx, tokenID, subject)
	if err != nil {
		return err
	}
	if grant == GrantClientCredentials || !slices.Contains(scopes, oidc.ScopeOpenID) {
		return errors.New("userinfo needs a user's token with the openid scope")
	}
	return st.setUserinfo(ctx, ui, subject, scopes)
}

func (st *storage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, _ string) error {
	clientID, scopes, _, expires, err := st.activeAccess(ctx, tokenID, subject)
	if err != nil {
		return err
	}
	resp.Scope, resp.ClientID, resp.Subject, resp.JWTID = scopes, clientID, subject, tokenID
	resp.TokenType, resp.Issuer, resp.Audience = oidc.BearerToken, st.s.cfg.Issuer, []string{st.s.cfg.Audience}
	resp.Expiration = oidc.FromTime(expires)
	return nil
}

// GetPrivateClaimsFromScopes is not used: access tokens are minted by tokenCrypto.
func (st *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

var errNoJWTProfile = errors.New("the JWT profile grant is not offered")

func (st *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errNoJWTProfile
}

func (st *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errNoJWTProfile
}

// Keys.

type opSigningKey struct{ signingKey }

func (k opSigningKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.EdDSA }
func (k opSigningKey) Key() any                                    { return k.priv }
func (k opSigningKey) ID() string                                  { return k.kid }

type opPublicKey struct{ signingKey }

func (k opPublicKey) ID() string                         { return k.kid }
func (k opPublicKey) Algorithm() jose.SignatureAlgorithm { return jose.EdDSA }
func (k opPublicKey) Use() string                        { return "sig" }
func (k opPublicKey) Key() any                           { return k.pub }

func (st *storage) SigningKey(context.Context) (op.SigningKey, error) {
	k, err := st.s.keys.signer()
	if err != nil {
		return nil, err
	}
	return opSigningKey{k}, nil
}

func (st *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.EdDSA}, nil
}

func (st *storage) KeySet(context.Context) ([]op.Key, error) {
	var out []op.Key
	for _, k := range st.s.keys.published() {
		out = append(out, opPublicKey{k})
	}
	return out, nil
}

func (st *storage) Health(ctx context.Context) error { return st.s.db.PingContext(ctx) }
