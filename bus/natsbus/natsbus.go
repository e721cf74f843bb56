// Package natsbus is the bus on NATS JetStream (nats.go), the default broker.
//
// Layout: a stream per domain, EVENTS_<DOMAIN>, holding subjects
// events.<domain>.>; each event is published on events.<domain>.<entity>.<verb> with
// its id as Nats-Msg-Id, so the broker drops a duplicate publish within the
// de-duplication window (two minutes by default) — the outbox relay relies on it.
// A consumer group is one durable pull consumer per subscribed subject, named
// <group>__<domain>_<entity>_<verb> (one filter subject each, which NATS 2.9 requires).
// Redelivery uses NakWithDelay, so a failing event waits without blocking the ones
// behind it; the consumer's own MaxDeliver is unlimited and the attempt count comes
// from the message metadata, so a crash loop still ends in the dead letters.
// Dead letters are messages on the DEADLETTERS stream, subject
// deadletters.<group>.<domain>.<entity>.<verb>; their id is their stream sequence.
// The time of a delivery's first failure is kept meanwhile in the key-value bucket
// switchyard_failures.
package natsbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/event"
)

// Config configures the JetStream bus. Zero fields take the default in brackets.
type Config struct {
	// Registry validates events on publish and on consume. Required.
	Registry *event.Registry
	// Replicas of every stream in a cluster [1].
	Replicas int
	// MaxAge keeps events this long for replay and audit [168h].
	MaxAge time.Duration
	// DuplicateWindow is how long the broker remembers event ids [2m].
	DuplicateWindow time.Duration
	// Tracer starts consumer spans; Logger and Metrics as in bus.Dispatcher.
	Tracer  trace.Tracer
	Logger  *slog.Logger
	Metrics *bus.Metrics
}

// Bus is the JetStream bus. It implements bus.Bus and bus.DeadLetters.
type Bus struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	cfg      Config
	dispatch *bus.Dispatcher

	mu       sync.Mutex
	streams  map[string]jetstream.Stream
	failures jetstream.KeyValue

	// conn ends each time the connection drops (see watchConnection).
	conn atomic.Pointer[connection]
}

// connection is one stretch of the connection's life: its context ends when the
// connection drops.
type connection struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
}

var errConnectionLost = errors.New("the connection to the broker dropped before it acknowledged")

func newConnection() *connection {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &connection{ctx: ctx, cancel: cancel}
}

// watchConnection ends the current connection's context whenever the connection
// drops, until it is closed. A publish in flight then would wait for an
// acknowledgement no server will send (the one that had its message is gone): it is
// abandoned at once, and its sender tries again — the event id makes a repeat
// harmless.
func (b *Bus) watchConnection() {
	b.conn.Store(newConnection())
	changes := b.nc.StatusChanged(nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED)
	go func() {
		defer b.nc.RemoveStatusListener(changes)
		for st := range changes {
			b.conn.Swap(newConnection()).cancel(errConnectionLost)
			if st == nats.CLOSED {
				return
			}
		}
	}()
}

var (
	_ bus.Bus         = (*Bus)(nil)
	_ bus.DeadLetters = (*Bus)(nil)
)

// System is what the messaging spans of a NATS bus say of it: messaging.system
// "nats", each event type on its subject.
var System = bus.System{Name: "nats"}

// System is what the bus's spans say of it (the outbox takes it, for the spans
// of events written to be sent here).
func (b *Bus) System() bus.System { return System }

// DeadLetterStream is the stream holding every group's dead letters.
const DeadLetterStream = "DEADLETTERS"

// New returns a bus on nc. Streams are created when first used.
func New(nc *nats.Conn, cfg Config) (*Bus, error) {
	if cfg.Registry == nil {
		return nil, errors.New("natsbus: a schema registry is required")
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 7 * 24 * time.Hour
	}
	if cfg.DuplicateWindow <= 0 {
		cfg.DuplicateWindow = 2 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// An acknowledgement lost with a server (a node leaving the cluster mid-publish)
	// must fail the publish, not leave it waiting for ever: the relay retries it.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(publishAckWait))
	if err != nil {
		return nil, fmt.Errorf("natsbus: %w", err)
	}
	b := &Bus{nc: nc, js: js, cfg: cfg, streams: map[string]jetstream.Stream{},
		dispatch: &bus.Dispatcher{Registry: cfg.Registry, Tracer: cfg.Tracer, Logger: cfg.Logger, Metrics: cfg.Metrics, System: System}}
	b.watchConnection()
	return b, nil
}

// StreamName is the stream of a domain's events.
func StreamName(domain string) string { return "EVENTS_" + strings.ToUpper(domain) }

// stream ensures the stream of domain exists.
func (b *Bus) stream(ctx context.Context, domain string) (jetstream.Stream, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, ok := b.streams[domain]; ok {
		return s, nil
	}
	s, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName(domain),
		Description: "Switchyard events of the " + domain + " domain",
		Subjects:    []string{"events." + domain + ".>"},
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
		MaxAge:      b.cfg.MaxAge,
		Duplicates:  b.cfg.DuplicateWindow,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		return nil, fmt.Errorf("natsbus: stream %s: %w", StreamName(domain), err)
	}
	b.streams[domain] = s
	return s, nil
}

func (b *Bus) deadLetterStream(ctx context.Context) (jetstream.Stream, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if s, ok := b.streams[DeadLetterStream]; ok {
		return s, nil
	}
	s, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DeadLetterStream,
		Description: "Events a Switchyard consumer group gave up on, with why",
		Subjects:    []string{"deadletters.>"},
		Storage:     jetstream.FileStorage,
		Replicas:    b.cfg.Replicas,
		MaxAge:      30 * 24 * time.Hour,
		Duplicates:  b.cfg.DuplicateWindow,
	})
	if err != nil {
		return nil, fmt.Errorf("natsbus: stream %s: %w", DeadLetterStream, err)
	}
	b.streams[DeadLetterStream] = s
	return s, nil
}

func (b *Bus) failureBucket(ctx context.Context) (jetstream.KeyValue, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failures != nil {
		return b.failures, nil
	}
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: "switchyard_failures", Description: "First failure time of deliveries being retried",
		TTL: 24 * time.Hour, Storage: jetstream.MemoryStorage, Replicas: b.cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("natsbus: failures bucket: %w", err)
	}
	b.failures = kv
	return kv, nil
}
