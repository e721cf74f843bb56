// Package outbox publishes a service's events exactly when its state changes: the
// events are written in the same database transaction as the change (Add), and a
// relay publishes them to the bus afterwards, in order, marking them sent.
//
// Guarantees: an event is never lost — if the broker is down, rows wait and the relay
// keeps retrying with backoff until it returns; an event is published at least once,
// and exactly once as the broker sees it when the broker de-duplicates by event id
// (JetStream does, within its window; inboxes cover the rest); events are published in
// the order they were written, so per aggregate in the order its transactions
// committed. One relay runs per database (a leader lock), whatever the number of
// replicas. The relay wakes on commit — PostgreSQL LISTEN/NOTIFY, or on SQLite an
// in-process signal backed by a short poll — and deletes sent rows after a retention.
//
// Tracing: Add records a producer span (messaging operation create) in the
// context of the write and puts its context in the event, so consumers continue
// the request's trace; the relay's send span, in the same trace, travels in a
// broker header, and consumers link to it.
package outbox

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/telemetry"
)

//go:embed migrations
var migrations embed.FS

// Migrations create the outbox table; apply them with store.DB.Migrate.
func Migrations() store.Migrations {
	sqlite, _ := fs.Sub(migrations, "migrations/sqlite")
	postgres, _ := fs.Sub(migrations, "migrations/postgres")
	return store.Migrations{Table: "outbox_schema_version", SQLite: sqlite, Postgres: postgres}
}

// Config configures an Outbox. Zero fields take the default in brackets.
type Config struct {
	// Name identifies the service's outbox in notifications, locks and metrics
	// (the service name). Required.
	Name string
	// Registry validates events as they are added: producing an event that breaks its
	// schema is an error. Required.
	Registry *event.Registry
	// Tracer records producer spans [no tracing].
	Tracer trace.Tracer
	// Types, when set, are the only event types Add accepts: the service's declared
	// publications, so the topology in configuration stays true.
	Types []string
	// System is the broker's the relay sends to, as its spans name it
	// (natsbus.System, kafkabus.System) [NATS].
	System bus.System
}

// Outbox writes events with a service's state changes.
type Outbox struct {
	db     *store.DB
	cfg    Config
	notify string
	wake   chan struct{}
}

// New returns the outbox of db, whose outbox table must exist (Migrations).
func New(db *store.DB, cfg Config) (*Outbox, error) {
	if cfg.Name == "" || cfg.Registry == nil {
		return nil, errors.New("outbox: Name and Registry are required")
	}
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider().Tracer("")
	}
	if cfg.System.Name == "" {
		cfg.System.Name = "nats"
	}
	return &Outbox{db: db, cfg: cfg, notify: "outbox_" + cfg.Name, wake: make(chan struct{}, 1)}, nil
}

// Add writes events inside tx, the transaction that changes the state they announce.
// They are published after tx commits; if it rolls back, they never existed.
func (o *Outbox) Add(ctx context.Context, tx *sql.Tx, events ...event.Event) error {
	if len(events) == 0 {
		return nil
	}
	now := store.Millis(time.Now())
	var values strings.Builder
	args := make([]any, 0, 5*len(events))
	spans := make([]trace.Span, 0, len(events))
	endSpans := func(err error) {
		for _, s := range spans {
			if err != nil {
				s.SetStatus(codes.Error, err.Error())
			}
			s.End()
		}
	}
	for i := range events {
		e := &events[i]
		if o.cfg.Types != nil && !slices.Contains(o.cfg.Types, e.Type) {
			endSpans(nil)
			return fmt.Errorf("outbox: %s does not declare that it publishes %s", o.cfg.Name, e.Type)
		}
		if err := o.cfg.Registry.Prepare(e); err != nil {
			endSpans(nil)
			return fmt.Errorf("outbox: %w", err)
		}
		// The producer span: consumers of this event continue it.
		destination := o.cfg.System.DestinationOf(e.Type)
		pctx, span := o.cfg.Tracer.Start(ctx, bus.SpanName(bus.OpCreate, destination), trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(o.cfg.System.Attributes(bus.OpCreate, e, destination, "")...))
		spans = append(spans, span)
		event.SetTraceContext(pctx, e)
		payload, err := event.Encode(e)
		if err != nil {
			endSpans(err)
			return fmt.Errorf("outbox: add %s: %w", e.Type, err)
		}
		if i > 0 {
			values.WriteByte(',')
		}
		n := len(args)
		fmt.Fprintf(&values, "($%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6)
		args = append(args, e.ID, e.Type, e.Subject, string(payload), now, e.TraceParent)
	}
	// One statement for the whole call: one round trip however many events.
	_, err := tx.ExecContext(ctx, `INSERT INTO outbox (event_id, type, subject, payload, created_at, traceparent) VALUES `+values.String(), args...)
	endSpans(err)
	if err != nil {
		return fmt.Errorf("outbox: add: %w", err)
	}
	if o.db.Dialect() == store.Postgres && len(events) > 0 {
		// Delivered to the relay when (and only if) tx commits.
		if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, '')`, o.notify); err != nil {
			return fmt.Errorf("outbox: notify: %w", err)
		}
	}
	o.signal()
	return nil
}

// signal wakes the relay of this process (it may run before the commit; the relay
// polls again shortly after).
func (o *Outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Backlog returns how many events wait to be published and how old the oldest is.
func (o *Outbox) Backlog(ctx context.Context) (n int, oldest time.Duration, err error) {
	var first sql.NullInt64
	err = o.db.QueryRowContext(ctx, `SELECT count(*), min(created_at) FROM outbox WHERE sent_at IS NULL`).Scan(&n, &first)
	if err != nil {
		return 0, 0, fmt.Errorf("outbox: backlog: %w", err)
	}
	if first.Valid {
		oldest = time.Since(store.Time(first.Int64))
	}
	return n, oldest, nil
}

// Unsent reads, from any outbox's database db, how many events written before
// cutoff wait unpublished, and when the oldest of them was written — what an
// auditor (`switchyard check`) asks of an outbox after a run: under load an outbox
// always holds the last few milliseconds' events, and those are fine.
func Unsent(ctx context.Context, db *store.DB, cutoff time.Time) (n int, oldest time.Time, err error) {
	var first sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT count(*), min(created_at) FROM outbox WHERE sent_at IS NULL AND created_at < $1`,
		store.Millis(cutoff)).Scan(&n, &first); err != nil {
		return 0, time.Time{}, fmt.Errorf("outbox: %w", err)
	}
	if first.Valid {
		oldest = store.Time(first.Int64)
	}
	return n, oldest, nil
}

// RelayConfig configures a relay. Zero fields take the default in brackets.
type RelayConfig struct {
	// Bus receives the events. Required.
	Bus bus.Bus
	// Batch is the most events published at once [256].
	Batch int
	// Poll is the longest the relay sleeps with nothing to do [1s on PostgreSQL,
	// 250ms on SQLite].
	Poll time.Duration
	// Retention keeps sent rows this long before deleting them [1h].
	Retention time.Duration
	// FlushTimeout bounds the final flush when the relay stops [3s].
	FlushTimeout time.Duration
	// Logger receives publish failures [discard].
	Logger *slog.Logger
	// Tracer records the relay's publish spans [no tracing].
	Tracer trace.Tracer
	// Metrics registers the outbox metrics; nil registers none.
	Metrics prometheus.Registerer
}

// Relay publishes an outbox's events.
type Relay struct {
	o   *Outbox
	cfg RelayConfig

	published prometheus.Counter
	backlog   prometheus.GaugeFunc
	oldest    prometheus.GaugeFunc
	failures  prometheus.Counter
}

// Relay returns the relay of this outbox.
func (o *Outbox) Relay(cfg RelayConfig) (*Relay, error) {
	if cfg.Bus == nil {
		return nil, errors.New("outbox: relay needs a bus")
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
		if o.db.Dialect() == store.SQLite {
			cfg.Poll = 250 * time.Millisecond
		}
	}
	if cfg.Retention <= 0 {
		cfg.Retention = time.Hour
	}
	if cfg.FlushTimeout <= 0 {
		cfg.FlushTimeout = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider().Tracer("")
	}
	r := &Relay{o: o, cfg: cfg,
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "outbox_published_total", Help: "Events the outbox relay published."}),
		failures:  prometheus.NewCounter(prometheus.CounterOpts{Name: "outbox_publish_failures_total", Help: "Failed attempts to publish a batch (the batch stays and is retried)."}),
	}
	stat := func(pick func(n int, oldest time.Duration) float64) func() float64 {
		return func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			n, oldest, err := o.Backlog(ctx)
			if err != nil {
				return -1
			}
			return pick(n, oldest)
		}
	}
	r.backlog = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "outbox_backlog", Help: "Events written but not yet published."},
		stat(func(n int, _ time.Duration) float64 { return float64(n) }))
	r.oldest = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "outbox_oldest_unsent_age_seconds", Help: "Age of the oldest event not yet published (0 when none)."},
		stat(func(_ int, oldest time.Duration) float64 { return oldest.Seconds() }))
	if cfg.Metrics != nil {
		for _, c := range []prometheus.Collector{r.published, r.failures, r.backlog, r.oldest} {
			if err := cfg.Metrics.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

// Run publishes until ctx ends; then it flushes what is left (for at most
// FlushTimeout) and returns. While another process leads, it waits to take over.
func (r *Relay) Run(ctx context.Context) error {
	for {
		release, ok, err := r.o.db.TryLeader(ctx, "outbox-relay-"+r.o.cfg.Name)
		if err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("outbox: leader lock", "error", err)
		}
		if ok {
			err := r.lead(ctx)
			r.flush()
			release()
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}

// lead runs the relay loop as the leader.
func (r *Relay) lead(ctx context.Context) error {
	notified, err := r.o.db.Notifications(ctx, r.o.notify)
	if err != nil {
		r.cfg.Logger.Warn("outbox: no notifications; polling", "error", err)
	}
	backoff := 100 * time.Millisecond
	lastPrune := time.Time{}
	pending := 0 // polls left to catch a commit signalled before it happened
	for {
		n, err := r.publishBatch(ctx)
		select {
		case <-ctx.Done():
			return nil // stopping; what is left is flushed by Run
		default:
		}
		switch {
		case err != nil:
			r.failures.Inc()
			r.cfg.Logger.Warn("outbox: publish failed; will retry", "in", backoff, "error", err)
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if n == r.cfg.Batch {
			continue // more waiting
		}
		if time.Since(lastPrune) > time.Minute {
			r.prune(ctx)
			lastPrune = time.Now()
		}
		if n > 0 {
			continue
		}
		if pending > 0 {
			pending--
			if !sleep(ctx, 5*time.Millisecond) {
				return nil
			}
			continue
		}
		t := time.NewTimer(r.cfg.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.o.wake:
			pending = 10 // the signal may precede its commit: look again for ~50ms
		case <-notified:
		case <-t.C:
		}
		t.Stop()
	}
}

// unsent reads the oldest unsent events, as stored: validated and encoded by Add.
func (r *Relay) unsent(ctx context.Context) (seqs []int64, events []bus.Encoded, parents []string, err error) {
	rows, err := r.o.db.QueryContext(ctx, `SELECT seq, event_id, type, subject, payload, traceparent FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT $1`, r.cfg.Batch)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("outbox: read: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			seq             int64
			e               bus.Encoded
			payload, parent string
		)
		if err := rows.Scan(&seq, &e.ID, &e.Type, &e.Subject, &payload, &parent); err != nil {
			return nil, nil, nil, fmt.Errorf("outbox: read: %w", err)
		}
		e.Payload = []byte(payload)
		seqs = append(seqs, seq)
		events = append(events, e)
		parents = append(parents, parent)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("outbox: read: %w", err)
	}
	return seqs, events, parents, nil
}

// sendSpans continues each event's own trace (the request that wrote it) with a
// span for its sending: a trace then shows when its events left, not only when
// they were written. (A span for the batch as a whole would start a trace of its
// own for every poll that finds work.)
func (r *Relay) sendSpans(events []bus.Encoded, parents []string) []trace.Span {
	spans := make([]trace.Span, 0, len(events))
	for i, e := range events {
		if parents[i] == "" {
			continue
		}
		parent := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": parents[i]})
		if !trace.SpanContextFromContext(parent).IsValid() {
			continue
		}
		system := r.o.cfg.System
		destination := system.DestinationOf(e.Type)
		ev := event.Event{ID: e.ID, Type: e.Type, Subject: e.Subject}
		_, s := r.cfg.Tracer.Start(parent, bus.SpanName(bus.OpSend, destination), trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(append(system.Attributes(bus.OpSend, &ev, destination, ""),
				semconv.MessagingBatchMessageCount(len(events)),
				attribute.String(telemetry.KeyOutbox, r.o.cfg.Name))...))
		spans = append(spans, s)
	}
	return spans
}

// encodedPublisher is a bus that publishes stored events as they are, without
// decoding and validating them again (both buses here are).
type encodedPublisher interface {
	PublishEncoded(ctx context.Context, events ...bus.Encoded) error
}

func (r *Relay) publish(ctx context.Context, events []bus.Encoded) error {
	if p, ok := r.cfg.Bus.(encodedPublisher); ok {
		return p.PublishEncoded(ctx, events...)
	}
	decoded := make([]event.Event, len(events))
	for i, e := range events {
		d, err := event.Decode(e.Payload)
		if err != nil {
			return fmt.Errorf("outbox: event %s: %w", e.ID, err)
		}
		decoded[i] = d
	}
	return r.cfg.Bus.Publish(ctx, decoded...)
}

// publishBatch publishes the oldest unsent events and marks them sent.
func (r *Relay) publishBatch(ctx context.Context) (int, error) {
	seqs, events, parents, err := r.unsent(ctx)
	if err != nil {
		return 0, err
	}
	if len(events) == 0 {
		return 0, nil
	}
	sends := r.sendSpans(events, parents)
	// A publish that neither succeeds nor fails (a broker lost mid-way) must not stop
	// the relay: bounded, it fails and the batch is tried again.
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = r.publish(pctx, events)
	cancel()
	for _, s := range sends {
		if err != nil {
			s.SetStatus(codes.Error, err.Error())
		}
		s.End()
	}
	if err != nil {
		return 0, err
	}
	// Mark exactly the rows published (a row committed meanwhile waits its turn).
	args := make([]any, 0, len(seqs)+1)
	args = append(args, store.Millis(time.Now()))
	var in strings.Builder
	for i, seq := range seqs {
		if i > 0 {
			in.WriteByte(',')
		}
		in.WriteString("$" + strconv.Itoa(i+2))
		args = append(args, seq)
	}
	if _, err := r.o.db.ExecContext(ctx, `UPDATE outbox SET sent_at = $1 WHERE seq IN (`+in.String()+`)`, args...); err != nil {
		return 0, fmt.Errorf("outbox: mark sent: %w", err)
	}
	r.published.Add(float64(len(events)))
	return len(events), nil
}

// flush publishes what is left when the relay stops, so a draining process leaves
// nothing behind; what cannot be published in time stays for the next start.
func (r *Relay) flush() {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.FlushTimeout)
	defer cancel()
	for {
		n, err := r.publishBatch(ctx)
		if err != nil || n == 0 {
			if err != nil {
				r.cfg.Logger.Warn("outbox: final flush incomplete; the rest waits for the next start", "error", err)
			}
			return
		}
	}
}

func (r *Relay) prune(ctx context.Context) {
	cutoff := store.Millis(time.Now().Add(-r.cfg.Retention))
	if _, err := r.o.db.ExecContext(ctx, `DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1`, cutoff); err != nil && ctx.Err() == nil {
		r.cfg.Logger.Warn("outbox: prune", "error", err)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
