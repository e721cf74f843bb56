// Package users is the identity service of the reference shop: registration, the
// shop's OpenID Connect provider (oidc.go: authorization code with PKCE, refresh
// rotation, client credentials, revocation, introspection, userinfo, consent), a
// JSON login kept as a convenience for curl, the access tokens every other
// service verifies, and the JWKS they verify them with. GET /v1/users/{id} is
// internal: other services call it with their service token and the customer's
// own access token.
//
// Accounts: emails are normalised (trimmed, lower-cased) and validated; passwords
// follow a length-first policy and are hashed with argon2id at OWASP's parameters,
// with a cap on hashes in flight. Login failures look the same whatever the cause.
//
// Tokens: access tokens are EdDSA-signed JWTs (typ at+jwt) with iss, aud, sub, exp,
// iat, jti and kid, valid for 15 minutes; refresh tokens are opaque, stored hashed,
// good for one use (a replayed one revokes its family). Signing keys live in the
// service's database and rotate; a retired key stays published until its tokens have
// expired.
package users

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/telemetry"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the users database's schema migrations, for store.Open.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrations, "migrations")
	return sub
}

// Config configures the users service. Zero fields take the default in brackets.
type Config struct {
	// Issuer is the iss of every token [switchyard].
	Issuer string
	// Audience is the aud of every token [switchyard].
	Audience string
	// AccessTTL is an access token's lifetime [15m].
	AccessTTL time.Duration
	// RefreshTTL is a refresh token's lifetime [720h].
	RefreshTTL time.Duration
	// KeyRotation is how long a signing key signs before the next one takes over [24h].
	KeyRotation time.Duration
	// HashConcurrency caps password hashes in flight [GOMAXPROCS].
	HashConcurrency int
	// HashWait is how long a request waits for a hashing slot before a 503 [2s].
	HashWait time.Duration
	// MaxBody caps request bodies [64 KiB].
	MaxBody int64
	// Clients of the OpenID Connect provider besides those registered in the
	// database (`switchyard client add`).
	Clients []Client
	// Now returns the current time [time.Now].
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.Issuer == "" {
		c.Issuer = "switchyard"
	}
	if c.Audience == "" {
		c.Audience = "switchyard"
	}
	if c.AccessTTL <= 0 {
		c.AccessTTL = 15 * time.Minute
	}
	if c.RefreshTTL <= 0 {
		c.RefreshTTL = 30 * 24 * time.Hour
	}
	if c.KeyRotation <= 0 {
		c.KeyRotation = 24 * time.Hour
	}
	if c.HashConcurrency <= 0 {
		c.HashConcurrency = runtime.GOMAXPROCS(0)
	}
	if c.HashWait <= 0 {
		c.HashWait = 2 * time.Second
	}
	if c.MaxBody <= 0 {
		c.MaxBody = 64 << 10
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports configuration the service cannot run with.
func (c Config) Validate() error {
	if c.AccessTTL > time.Hour {
		return errors.New("users: AccessTTL over an hour defeats short-lived tokens")
	}
	if c.KeyRotation > 0 && c.KeyRotation < time.Minute {
		return errors.New("users: KeyRotation under a minute")
	}
	return nil
}

// Service is the users service.
type Service struct {
	cfg      Config
	db       *store.DB
	log      *slog.Logger
	keys     *keyring
	hasher   *hasher
	verifier *authn.Verifier
	provider *provider
	services *authn.ServiceVerifier
	problems problem.Writer

	registrations prometheus.Counter
	logins        *prometheus.CounterVec
}

// Deps are the users service's collaborators.
type Deps struct {
	// DB is the service's database, migrated. Required.
	DB *store.DB
	// Callers verifies the service tokens of callers of the internal endpoint
	// GET /v1/users/{id}. Required.
	Callers *authn.ServiceVerifier
	Log     *slog.Logger
	// Metrics registers the service's metrics [none].
	Metrics prometheus.Registerer
}

// New builds the service and makes sure a signing key exists.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	if deps.DB == nil || deps.Callers == nil {
		return nil, errors.New("users: a database and a verifier of callers are required")
	}
	db, services, log, reg := deps.DB, deps.Callers, deps.Log, deps.Metrics
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	s := &Service{
		cfg:      cfg,
		db:       db,
		services: services,
		log:      log,
		hasher:   newHasher(cfg.HashConcurrency, cfg.HashWait),
		problems: problem.Writer{Log: log, RequestID: telemetry.RequestID},
		registrations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "users_registrations_total", Help: "Accounts registered.",
		}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "users_logins_total", Help: "Login attempts by result (ok, rejected).",
		}, []string{"result"}),
	}
	if reg != nil {
		if err := errors.Join(reg.Register(s.registrations), reg.Register(s.logins)); err != nil {
			return nil, fmt.Errorf("users: metrics: %w", err)
		}
	}
	s.keys = &keyring{db: db, log: log, now: cfg.Now, rotateEvery: cfg.KeyRotation, tokenTTL: cfg.AccessTTL + time.Minute}
	if err := s.keys.ensure(ctx); err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	v, err := authn.NewVerifier(authn.VerifierConfig{Issuer: cfg.Issuer, Audience: cfg.Audience, Now: cfg.Now}, s.keys)
	if err != nil {
		return nil, err
	}
	s.verifier = v
	if strings.Contains(cfg.Issuer, "://") {
		if s.provider, err = s.newProvider(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Run rotates signing keys and prunes expired refresh tokens until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	go func() {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := s.pruneTokens(ctx); err != nil && ctx.Err() == nil {
					s.log.Error("prune refresh tokens", "error", err)
				}
			}
		}
	}()
	return s.keys.run(ctx)
}

// GrantRole gives the account with email a role (e.g. admin), in the users
// database db (migrated). Operators reach it through `switchyard grant <email>
// <role>`: there is deliberately no HTTP route that makes an administrator.
func GrantRole(ctx context.Context, db *store.DB, email, role string) error {
	email, err := normalizeEmail(email)
	if err != nil {
		return err
	}
	return accounts{db}.grantRole(ctx, email, role, time.Now())
}

// Handler serves the users API.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/auth/register", s.register)
	mux.HandleFunc("POST /v1/auth/login", s.login)
	mux.HandleFunc("POST /v1/auth/refresh", s.refresh)
	mux.HandleFunc("POST /v1/auth/logout", s.logout)
	mux.Handle("GET /v1/users/me", s.verifier.Require(s.problems.Write, http.HandlerFunc(s.me)))
	// For other services: their service token, and the customer's own token.
	mux.Handle("GET /v1/users/{id}", s.services.RequireService(s.problems.Write, s.verifier.Require(s.problems.Write, http.HandlerFunc(s.user))))
	mux.HandleFunc("GET /.well-known/jwks.json", s.jwks)
	if s.provider != nil {
		s.provider.routes(mux, s)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.problems.Write(w, r, problem.New(problem.NotFound, "no route %s %s", r.Method, r.URL.Path))
	})
	return mux
}
