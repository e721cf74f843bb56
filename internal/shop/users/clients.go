package users

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/store"
)

// Grant types a client may be registered for.
const (
	GrantCode              = "authorization_code"
	GrantRefresh           = "refresh_token"
	GrantClientCredentials = "client_credentials"
)

// Client is an OAuth 2.0 client of the provider.
//
// A public client (no secret: a browser page, a mobile app) signs users in with
// the authorization code flow and PKCE (S256), which it cannot skip. A
// confidential client authenticates with its secret; one with the
// client_credentials grant is a machine acting for itself.
type Client struct {
	// ID is the client_id: 3 to 64 letters, digits, dots, dashes and underscores.
	ID string `yaml:"id"`
	// Name is shown to users on the consent page.
	Name string `yaml:"name"`
	// RedirectURIs are the exact URIs the provider may send a code to: https, a
	// loopback http URI (any port, RFC 8252 section 7.3, for a native app), or a
	// private-use scheme such as com.example.shop:/callback (section 7.1).
	Redirects []string `yaml:"redirect_uris"`
	// Grants of authorization_code, refresh_token and client_credentials.
	Grants []string `yaml:"grants"`
	// Scopes the client may ask for beyond openid, profile, email and
	// offline_access.
	Scopes []string `yaml:"scopes"`
	// FirstParty clients (the shop's own storefront) are trusted without asking
	// the user's consent; every other client is shown a consent page.
	FirstParty bool `yaml:"first_party"`
	// Native marks an installed app (loopback or private-use scheme redirects).
	Native bool `yaml:"native"`
	// SecretSHA256 is the hex SHA-256 of a confidential client's secret, for a
	// client declared in switchyard.yaml (the secret itself is never written
	// there; `switchyard client add --print-only` makes one); empty for a public
	// client.
	SecretSHA256 string `yaml:"secret_sha256"`
}

var (
	clientID  = regexp.MustCompile(`^[A-Za-z0-9._-]{3,64}$`)
	sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Validate reports what makes c unusable, naming the field.
func (c Client) Validate() error {
	if !clientID.MatchString(c.ID) {
		return problem.InvalidField("id", "want 3 to 64 letters, digits, dots, dashes or underscores")
	}
	if c.Name == "" || len(c.Name) > 100 {
		return problem.InvalidField("name", "want 1 to 100 characters")
	}
	if len(c.Grants) == 0 {
		return problem.InvalidField("grants", "want at least one of authorization_code, refresh_token, client_credentials")
	}
	for _, g := range c.Grants {
		if !slices.Contains([]string{GrantCode, GrantRefresh, GrantClientCredentials}, g) {
			return problem.InvalidField("grants", "%q is not one of authorization_code, refresh_token, client_credentials", g)
		}
	}
	if c.SecretSHA256 != "" && !sha256Hex.MatchString(c.SecretSHA256) {
		return problem.InvalidField("secret_sha256", "want 64 lower-case hex digits")
	}
	if c.Public() && slices.Contains(c.Grants, GrantClientCredentials) {
		return problem.InvalidField("grants", "a public client has no secret to use the client_credentials grant with")
	}
	if slices.Contains(c.Grants, GrantCode) && len(c.Redirects) == 0 {
		return problem.InvalidField("redirect_uris", "the authorization code grant needs at least one redirect URI")
	}
	for _, raw := range c.Redirects {
		if err := checkRedirectURI(raw, c.Native); err != nil {
			return problem.InvalidField("redirect_uris", "%s", err)
		}
	}
	for _, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " \"\\") {
			return problem.InvalidField("scopes", "%q is not a scope (RFC 6749 section 3.3)", s)
		}
	}
	return nil
}

func checkRedirectURI(raw string, native bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an absolute URI without a fragment", raw)
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	case native && u.Scheme != "http" && strings.Contains(u.Scheme, "."):
		return nil // a private-use scheme, reverse-domain (RFC 8252 section 7.1)
	}
	return fmt.Errorf("%q: want https, a loopback http URI, or (native apps) a reverse-domain scheme", raw)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Public reports whether c has no secret.
func (c *Client) Public() bool { return c.SecretSHA256 == "" }

func (c *Client) checkSecret(secret string) bool {
	if c.SecretSHA256 == "" || secret == "" || len(secret) > 256 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(hashToken(secret)), []byte(c.SecretSHA256)) == 1
}

// The op.Client interface.

// GetID implements op.Client.
func (c *Client) GetID() string { return c.ID }

// RedirectURIs implements op.Client.
func (c *Client) RedirectURIs() []string { return c.Redirects }

// PostLogoutRedirectURIs implements op.Client.
func (c *Client) PostLogoutRedirectURIs() []string { return c.Redirects }

// ApplicationType implements op.Client.
func (c *Client) ApplicationType() op.ApplicationType {
	switch {
	case c.Native:
		return op.ApplicationTypeNative
	case c.Public():
		return op.ApplicationTypeUserAgent
	}
	return op.ApplicationTypeWeb
}

// AuthMethod implements op.Client.
func (c *Client) AuthMethod() oidc.AuthMethod {
	if c.Public() {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

// ResponseTypes implements op.Client.
func (c *Client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}

// GrantTypes implements op.Client.
func (c *Client) GrantTypes() []oidc.GrantType {
	out := make([]oidc.GrantType, len(c.Grants))
	for i, g := range c.Grants {
		out[i] = oidc.GrantType(g)
	}
	return out
}

// AccessTokenType implements op.Client.
func (c *Client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }

// IDTokenLifetime implements op.Client.
func (c *Client) IDTokenLifetime() time.Duration { return 15 * time.Minute }

// IsScopeAllowed implements op.Client.
func (c *Client) IsScopeAllowed(scope string) bool { return slices.Contains(c.Scopes, scope) }

// IDTokenUserinfoClaimsAssertion implements op.Client.
func (c *Client) IDTokenUserinfoClaimsAssertion() bool { return false }

// ClockSkew implements op.Client.
func (c *Client) ClockSkew() time.Duration { return 0 }

// DevMode lets http redirect URIs through; ours are loopback ones only (Validate).
func (c *Client) DevMode() bool {
	for _, raw := range c.Redirects {
		if u, err := url.Parse(raw); err != nil || u.Scheme == "http" && !isLoopback(u.Hostname()) {
			return false
		}
	}
	return true
}

// RestrictAdditionalIdTokenScopes implements op.Client.
func (c *Client) RestrictAdditionalIdTokenScopes() func([]string) []string { //nolint:revive // the name is op.Client's
	return func(s []string) []string { return s }
}

// RestrictAdditionalAccessTokenScopes implements op.Client.
func (c *Client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// clientRef is a client as the provider hands it out: with its login page, which
// only the provider knows.
type clientRef struct {
	*Client
	login func(authRequestID string) string
}

func (c clientRef) LoginURL(id string) string { return c.login(id) }

// clients finds clients: the configured ones, then those registered in the database.
type clients struct {
	db         *store.DB
	configured map[string]*Client
}

var errNoClient = errors.New("no such client")

func (cs clients) byID(ctx context.Context, id string) (*Client, error) {
	if c, ok := cs.configured[id]; ok {
		return c, nil
	}
	if !clientID.MatchString(id) {
		return nil, errNoClient
	}
	var (
		c                        Client
		redirects, grants, scope string
	)
	err := cs.db.QueryRowContext(ctx, `SELECT id, name, secret_hash, redirect_uris, grants, scopes, first_party FROM oauth_clients WHERE id = $1`, id).
		Scan(&c.ID, &c.Name, &c.SecretSHA256, &redirects, &grants, &scope, &c.FirstParty)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoClient
	}
	if err != nil {
		return nil, fmt.Errorf("load client: %w", err)
	}
	c.Redirects, c.Grants, c.Scopes = strings.Fields(redirects), strings.Fields(grants), strings.Fields(scope)
	return &c, nil
}

// RegisterClient adds a client to the users database db (migrated) and returns its
// secret, shown this once: a confidential client unless public is set. Operators
// reach it through `switchyard client add`.
func RegisterClient(ctx context.Context, db *store.DB, c Client, public bool) (secret string, err error) {
	if !public {
		secret = NewClientSecret()
		c.SecretSHA256 = hashToken(secret)
	}
	if err := c.Validate(); err != nil {
		return "", err
	}
	hash := c.SecretSHA256
	_, err = db.ExecContext(ctx,
		`INSERT INTO oauth_clients (id, name, secret_hash, redirect_uris, grants, scopes, first_party, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		c.ID, c.Name, hash, strings.Join(c.Redirects, " "), strings.Join(c.Grants, " "), strings.Join(c.Scopes, " "), c.FirstParty, store.Millis(time.Now()))
	if store.IsUniqueViolation(err) {
		return "", problem.New(problem.Conflict, "a client %q is already registered", c.ID)
	}
	if err != nil {
		return "", fmt.Errorf("register client: %w", err)
	}
	return secret, nil
}

// NewClientSecret makes a client secret: 256 random bits, prefixed so that a
// secret scanner knows one.
func NewClientSecret() string { return "cs_" + rand.Text() + rand.Text() }

// SecretSHA256 is what switchyard.yaml holds for a secret.
func SecretSHA256(secret string) string { return hashToken(secret) }
