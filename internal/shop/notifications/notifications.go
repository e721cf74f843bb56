// Package notifications is the shop's real-time channel: it consumes order and
// payment events, keeps each customer's notifications, and pushes them over an
// authenticated WebSocket to the customer's connected clients.
//
// Each customer's notifications are numbered 1, 2, 3… in the order they were
// recorded. Every message carries its number; a client that reconnects with
// ?after=N (or a Last-Event-ID: N header) first receives what it missed, then the
// live stream — nothing is lost between connections, nothing is sent twice within
// one. The same numbers page the plain-HTTP history (GET without an upgrade).
//
// Recording is idempotent (the inbox): a redelivered event adds nothing. Pushing
// is a wake-up, not a copy: a connection reads its customer's rows after its last
// number whenever the consumer records one here, when PostgreSQL notifies that
// another replica did, and every few seconds regardless.
//
// Authentication is the users service's JWT, verified here against its JWKS, from
// the Authorization header or — because browsers cannot set headers on a
// WebSocket — an access_token query parameter (our access logs record paths
// without queries).
package notifications

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/inbox"
	"github.com/switchyard/switchyard/internal/shop/commerce"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rest"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/telemetry"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the notifications database's schema migrations, for store.Open.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrations, "migrations")
	return sub
}

// Events notifications consumes.
var Events = []string{
	"orders.order.placed.v1", "orders.order.confirmed.v1", "orders.order.cancelled.v1",
	"payments.payment.authorized.v1", "payments.payment.declined.v1", "payments.payment.captured.v1",
	"payments.payment.voided.v1", "payments.payment.refunded.v1",
}

// Config configures the service. Zero fields take the default in brackets.
type Config struct {
	// Ping is how often an idle connection is pinged [20s].
	Ping time.Duration
	// Poll is how often a connection looks for rows it was not woken for [2s].
	Poll time.Duration
	// WriteTimeout bounds one message to a slow client, which is then dropped [10s].
	WriteTimeout time.Duration
	// MaxPerUser caps one customer's open connections [8].
	MaxPerUser int
	// MaxConnections caps all open connections [10000].
	MaxConnections int
	// Retention is how long notifications are kept [720h].
	Retention time.Duration
	// Now returns the current time [time.Now].
	Now func() time.Time
}

// Deps are the service's collaborators.
type Deps struct {
	DB       *store.DB
	Inbox    *inbox.Inbox
	Verifier *authn.Verifier
	Log      *slog.Logger
	Metrics  prometheus.Registerer
}

// Service is the notifications service.
type Service struct {
	cfg      Config
	deps     Deps
	problems problem.Writer
	channel  string

	mu    sync.Mutex
	subs  map[string]map[*subscriber]struct{}
	total int

	connections prometheus.Gauge
	pushed      prometheus.Counter
}

type subscriber struct{ wake chan struct{} }

// New builds the service on an open, migrated database (its migrations and the
// inbox's).
func New(_ context.Context, cfg Config, deps Deps) (*Service, error) {
	if deps.DB == nil || deps.Inbox == nil || deps.Verifier == nil {
		return nil, errors.New("notifications: DB, Inbox and Verifier are required")
	}
	if cfg.Ping <= 0 {
		cfg.Ping = 20 * time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.MaxPerUser <= 0 {
		cfg.MaxPerUser = 8
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 10_000
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 30 * 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		cfg: cfg, deps: deps, channel: "notifications",
		problems:    problem.Writer{Log: deps.Log, RequestID: telemetry.RequestID},
		subs:        map[string]map[*subscriber]struct{}{},
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "notifications_connections", Help: "Open WebSocket connections."}),
		pushed:      prometheus.NewCounter(prometheus.CounterOpts{Name: "notifications_pushed_total", Help: "Notifications sent to clients."}),
	}
	if deps.Metrics != nil {
		for _, c := range []prometheus.Collector{s.connections, s.pushed} {
			if err := deps.Metrics.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// Notification is one message to a customer.
type Notification struct {
	// ID numbers the customer's notifications: 1, 2, 3…
	ID      int64     `json:"id"`
	Type    string    `json:"type"`
	OrderID string    `json:"order_id"`
	Status  string    `json:"status"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// eventData is what notifications reads of order and payment events.
type eventData struct {
	OrderID    string `json:"order_id"`
	CustomerID string `json:"customer_id"`
	Reason     string `json:"reason"`
	Total      *struct {
		MinorUnits int64  `json:"minor_units"`
		Currency   string `json:"currency"`
	} `json:"total"`
	Amount *struct {
		MinorUnits int64  `json:"minor_units"`
		Currency   string `json:"currency"`
	} `json:"amount"`
}

// describe turns an event into the status and sentence a customer sees.
func describe(typ string, d eventData) (status, message string) {
	money := ""
	if d.Total != nil {
		money = commerce.Decimal(d.Total.MinorUnits, d.Total.Currency) + " " + d.Total.Currency
	} else if d.Amount != nil {
		money = commerce.Decimal(d.Amount.MinorUnits, d.Amount.Currency) + " " + d.Amount.Currency
	}
	switch typ {
	case "orders.order.placed.v1":
		return "PENDING", "We received your order (" + money + ")."
	case "orders.order.confirmed.v1":
		return "CONFIRMED", "Your order is confirmed."
	case "orders.order.cancelled.v1":
		return "CANCELLED", "Your order was cancelled: " + d.Reason + "."
	case "payments.payment.authorized.v1":
		return "PAYMENT_AUTHORIZED", "Your card was authorized for " + money + "."
	case "payments.payment.declined.v1":
		return "PAYMENT_DECLINED", "Your card was declined: " + d.Reason + "."
	case "payments.payment.captured.v1":
		return "PAYMENT_CAPTURED", "You were charged " + money + "."
	case "payments.payment.voided.v1":
		return "PAYMENT_VOIDED", "The hold of " + money + " on your card was released."
	case "payments.payment.refunded.v1":
		return "PAYMENT_REFUNDED", money + " was refunded to your card."
	}
	return "", ""
}

// OnEvent records an order or payment event as its customer's next notification
// (once, however often it is delivered) and wakes the customer's connections.
func (s *Service) OnEvent(ctx context.Context, msg *bus.Message) error {
	var d eventData
	if err := msg.Event.DecodeData(&d); err != nil {
		return bus.Permanent(fmt.Errorf("notifications: %w", err))
	}
	status, message := describe(msg.Event.Type, d)
	if status == "" || d.CustomerID == "" {
		return nil // nothing a customer needs to hear
	}
	_, err := s.deps.Inbox.Handle(ctx, "notifications", msg, func(ctx context.Context, tx *sql.Tx, msg *bus.Message) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO notifications (user_id, seq, event_id, type, order_id, status, message, at)
			VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM notifications WHERE user_id = $1), $2, $3, $4, $5, $6, $7)`,
			d.CustomerID, msg.Event.ID, msg.Event.Type, d.OrderID, status, message, store.Millis(msg.Event.Time))
		if err != nil {
			return fmt.Errorf("record notification: %w", err)
		}
		if s.deps.DB.Dialect() == store.Postgres {
			// Delivered at commit to every replica listening.
			_, err = tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, s.channel, d.CustomerID)
		}
		return err
	})
	if err != nil {
		return err
	}
	s.wake(d.CustomerID)
	return nil
}

// wake tells a customer's connections (every connection, for "") to look for rows.
func (s *Service) wake(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for u, subs := range s.subs {
		if user != "" && u != user {
			continue
		}
		for sub := range subs {
			select {
			case sub.wake <- struct{}{}:
			default:
			}
		}
	}
}

// Run prunes old notifications and, on PostgreSQL, wakes connections when another
// replica records a notification, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	notes, err := s.deps.DB.Notifications(ctx, s.channel)
	if err != nil {
		return err
	}
	prune := time.NewTicker(time.Hour)
	defer prune.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-notes:
			s.wake("")
		case <-prune.C:
			cutoff := store.Millis(s.cfg.Now().Add(-s.cfg.Retention))
			if _, err := s.deps.DB.ExecContext(ctx, `DELETE FROM notifications WHERE at < $1`, cutoff); err != nil && ctx.Err() == nil {
				s.deps.Log.Warn("prune notifications", "error", err)
			}
		}
	}
}

// Handler serves GET /v1/notifications: a WebSocket when the request asks for
// one, the history as JSON otherwise.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/notifications", s.serve)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.problems.Write(w, r, problem.New(problem.NotFound, "no route %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// authenticate verifies the bearer token of the header, or of the access_token
// query parameter.
func (s *Service) authenticate(r *http.Request) (*authn.Principal, error) {
	if r.Header.Get("Authorization") == "" {
		if tok := r.URL.Query().Get("access_token"); tok != "" {
			return s.deps.Verifier.Verify(r.Context(), tok)
		}
	}
	return s.deps.Verifier.Authenticate(r)
}

// resumeFrom reads where a client resumes: ?after=N or Last-Event-ID: N.
func resumeFrom(r *http.Request) (int64, error) {
	v := r.URL.Query().Get("after")
	name := "after"
	if v == "" {
		v, name = r.Header.Get("Last-Event-ID"), "Last-Event-ID"
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, problem.InvalidField(name, "want the number of the last notification seen")
	}
	return n, nil
}

const pageSize = 100

func (s *Service) serve(w http.ResponseWriter, r *http.Request) {
	p, err := s.authenticate(r)
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	after, err := resumeFrom(r)
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	if r.Header.Get("Upgrade") == "" {
		order := r.URL.Query().Get("order_id")
		if len(order) > 64 {
			s.problems.Write(w, r, problem.InvalidField("order_id", "not an order id"))
			return
		}
		page, err := s.page(r.Context(), p.Subject, after, pageSize, order)
		if err != nil {
			s.problems.Write(w, r, err)
			return
		}
		rest.Write(w, http.StatusOK, map[string]any{"items": page})
		return
	}
	sub, err := s.subscribe(p.Subject)
	if err != nil {
		s.problems.Write(w, r, err)
		return
	}
	defer s.unsubscribe(p.Subject, sub)
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept answered the client
	}
	defer func() { _ = conn.CloseNow() }()
	s.connections.Inc()
	defer s.connections.Dec()
	ctx := conn.CloseRead(r.Context()) // the client sends nothing; its close ends ctx
	if err := s.stream(ctx, conn, sub, p.Subject, after); err != nil && ctx.Err() == nil {
		s.deps.Log.Info("notification stream ended", "error", err)
	}
	_ = conn.Close(websocket.StatusNormalClosure, "")
}

func (s *Service) subscribe(user string) (*subscriber, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.total >= s.cfg.MaxConnections {
		return nil, &problem.Error{Kind: problem.Unavailable, Detail: "too many connections; try again", RetryAfter: 5 * time.Second}
	}
	if len(s.subs[user]) >= s.cfg.MaxPerUser {
		return nil, &problem.Error{Kind: problem.RateLimited, Detail: fmt.Sprintf("at most %d connections per customer", s.cfg.MaxPerUser), RetryAfter: 5 * time.Second}
	}
	sub := &subscriber{wake: make(chan struct{}, 1)}
	if s.subs[user] == nil {
		s.subs[user] = map[*subscriber]struct{}{}
	}
	s.subs[user][sub] = struct{}{}
	s.total++
	return sub, nil
}

func (s *Service) unsubscribe(user string, sub *subscriber) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.subs[user], sub)
	if len(s.subs[user]) == 0 {
		delete(s.subs, user)
	}
	s.total--
}

// stream sends the customer's notifications after the given number, then each new
// one as it is recorded, until the client leaves or a write fails.
func (s *Service) stream(ctx context.Context, conn *websocket.Conn, sub *subscriber, user string, after int64) error {
	ping := time.NewTicker(s.cfg.Ping)
	defer ping.Stop()
	poll := time.NewTicker(s.cfg.Poll)
	defer poll.Stop()
	for {
		page, err := s.page(ctx, user, after, pageSize, "")
		if err != nil {
			return err
		}
		for _, n := range page {
			b, _ := json.Marshal(n)
			wctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
			err := conn.Write(wctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				return err
			}
			after = n.ID
			s.pushed.Inc()
		}
		if len(page) == pageSize {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-sub.wake:
		case <-poll.C:
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return err
			}
		}
	}
}

// page reads up to n of a customer's notifications after a number.
// page reads up to n of user's notifications after seq, only those about order when
// it is not empty.
func (s *Service) page(ctx context.Context, user string, after int64, n int, order string) ([]Notification, error) {
	q := `SELECT seq, type, order_id, status, message, at FROM notifications
		WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`
	args := []any{user, after, n}
	if order != "" {
		q = `SELECT seq, type, order_id, status, message, at FROM notifications
		WHERE user_id = $1 AND seq > $2 AND order_id = $4 ORDER BY seq LIMIT $3`
		args = append(args, order)
	}
	rows, err := s.deps.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read notifications: %w", err)
	}
	defer rows.Close()
	out := []Notification{}
	for rows.Next() {
		var (
			x  Notification
			at int64
		)
		if err := rows.Scan(&x.ID, &x.Type, &x.OrderID, &x.Status, &x.Message, &at); err != nil {
			return nil, fmt.Errorf("read notifications: %w", err)
		}
		x.At = store.Time(at)
		out = append(out, x)
	}
	return out, rows.Err()
}
