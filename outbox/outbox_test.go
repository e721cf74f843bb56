package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/broker"
	"github.com/switchyard/switchyard/broker/brokertest"
	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/bus/natsbus"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/inbox"
	"github.com/switchyard/switchyard/outbox"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/store/storetest"
	"github.com/switchyard/switchyard/telemetry"
)

const typ = "obtest.item.added.v1"

func registry(t testing.TB) *event.Registry {
	t.Helper()
	reg, err := event.NewRegistry(fstest.MapFS{typ + ".json": {Data: []byte(`{
		"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}`)}})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// service is a database with an outbox, an inbox and an effects table, as a
// service would have.
type service struct {
	db     *store.DB
	outbox *outbox.Outbox
	inbox  *inbox.Inbox
}

func newService(t *testing.T, url string, reg *event.Registry, tp *sdktrace.TracerProvider) *service {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, store.Config{URL: url, Migrations: fstest.MapFS{"00001_effects.sql": {Data: []byte(
		"-- +goose Up\nCREATE TABLE effects (event_id TEXT PRIMARY KEY, n BIGINT NOT NULL);\n")}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, m := range []store.Migrations{outbox.Migrations(), inbox.Migrations()} {
		if err := db.Migrate(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	cfg := outbox.Config{Name: "svc", Registry: reg}
	if tp != nil {
		cfg.Tracer = tp.Tracer("outbox")
	}
	o, err := outbox.New(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	in, err := inbox.New(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &service{db: db, outbox: o, inbox: in}
}

// write commits n events, each in its own transaction, as n state changes would.
func (s *service) write(t *testing.T, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		e, err := event.New(context.Background(), "/svc", typ, "item-"+strconv.Itoa(i%10), map[string]int{"n": i})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.db.InTx(context.Background(), func(tx *sql.Tx) error { return s.outbox.Add(context.Background(), tx, e) }); err != nil {
			t.Fatal(err)
		}
	}
}

// consume applies each event once, through the inbox, counting effects.
func (s *service) consume(t *testing.T, ctx context.Context, b bus.Bus, group string) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := b.Subscribe(ctx, bus.Subscription{Group: group, Types: []string{typ}, Concurrency: 4},
			s.inbox.Wrap(group, func(ctx context.Context, tx *sql.Tx, m *bus.Message) error {
				var d struct{ N int }
				if err := m.Event.DecodeData(&d); err != nil {
					return bus.Permanent(err)
				}
				_, err := tx.ExecContext(ctx, `INSERT INTO effects (event_id, n) VALUES ($1, $2)`, m.Event.ID, d.N)
				return err
			}))
		if err != nil {
			t.Errorf("subscribe: %v", err)
		}
	}()
	return done
}

func (s *service) count(t *testing.T, q string) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The broker goes away while 1,000 events are written: nothing is lost, and once it
// returns every event is published exactly once and applied exactly once.
func TestABrokerOutageLosesNothingAndDuplicatesNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		reg := registry(t)
		addr := freePort(t)
		dir := t.TempDir()
		const token = "outage-test"
		start := func() *broker.Broker {
			b, err := broker.Start(broker.Config{Listen: addr, StoreDir: dir, Token: token})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		nsrv := start() // a private server: the shared one on 4222 is never touched
		nc, err := nats.Connect(nsrv.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		b, err := natsbus.New(nc, natsbus.Config{Registry: reg})
		if err != nil {
			t.Fatal(err)
		}
		svc := newService(t, url, reg, nil)
		relay, err := svc.outbox.Relay(outbox.RelayConfig{Bus: b, Poll: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		relayDone := make(chan struct{})
		go func() { defer close(relayDone); _ = relay.Run(ctx) }()
		consumed := svc.consume(t, ctx, b, "effects")

		svc.write(t, 0, 10) // warm: the stream and consumer exist
		waitFor(t, "the first events", 20*time.Second, func() bool { return svc.count(t, "SELECT count(*) FROM effects") == 10 })

		nsrv.Shutdown()
		svc.write(t, 10, 1000)
		if n, _, _ := svc.outbox.Backlog(context.Background()); n == 0 {
			t.Fatal("the outbox drained with the broker down")
		}
		time.Sleep(500 * time.Millisecond) // the relay keeps failing meanwhile
		nsrv = start()
		defer nsrv.Shutdown()

		waitFor(t, "all 1,010 effects", 60*time.Second, func() bool { return svc.count(t, "SELECT count(*) FROM effects") == 1010 })
		if n, _, _ := svc.outbox.Backlog(context.Background()); n != 0 {
			t.Errorf("backlog %d after the broker returned", n)
		}
		js, _ := jetstream.New(nc)
		s, err := js.Stream(context.Background(), natsbus.StreamName("obtest"))
		if err != nil {
			t.Fatal(err)
		}
		info, _ := s.Info(context.Background())
		if info.State.Msgs != 1010 {
			t.Errorf("the broker holds %d events, want exactly 1010", info.State.Msgs)
		}
		if distinct := svc.count(t, "SELECT count(DISTINCT n) FROM effects"); distinct != 1010 {
			t.Errorf("%d distinct effects", distinct)
		}
		cancel()
		<-relayDone
		<-consumed
	})
}

// A rolled-back transaction's events never existed; a committed one's are published
// in the order written.
func TestOnlyCommittedEventsArePublishedInOrder(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		reg := registry(t)
		nc := brokertest.Connect(t, brokertest.Embedded(t))
		b, _ := natsbus.New(nc, natsbus.Config{Registry: reg})
		svc := newService(t, url, reg, nil)
		rolledBack, _ := event.New(context.Background(), "/svc", typ, "x", map[string]int{"n": -1})
		_ = svc.db.InTx(context.Background(), func(tx *sql.Tx) error {
			_ = svc.outbox.Add(context.Background(), tx, rolledBack)
			return fmt.Errorf("the state change failed")
		})
		svc.write(t, 0, 100)
		relay, _ := svc.outbox.Relay(outbox.RelayConfig{Bus: b, Batch: 7})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go relay.Run(ctx)
		var mu sync.Mutex
		var got []int
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = b.Subscribe(ctx, bus.Subscription{Group: "order", Types: []string{typ}}, func(_ context.Context, m *bus.Message) error {
				var d struct{ N int }
				_ = m.Event.DecodeData(&d)
				mu.Lock()
				got = append(got, d.N)
				mu.Unlock()
				return nil
			})
		}()
		waitFor(t, "100 events", 20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 100 })
		cancel()
		<-done
		for i, n := range got {
			if n != i {
				t.Fatalf("event %d arrived in position %d (rolled-back events: %v)", n, i, n == -1)
			}
		}
	})
}

func TestInvalidEventsCannotBeAdded(t *testing.T) {
	svc := newService(t, storetest.Targets(t)[0].URL, registry(t), nil)
	bad, _ := event.New(context.Background(), "/svc", typ, "x", map[string]string{"n": "three"})
	err := svc.db.InTx(context.Background(), func(tx *sql.Tx) error { return svc.outbox.Add(context.Background(), tx, bad) })
	if err == nil {
		t.Fatal("added an event that breaks its schema")
	}
}

// The trace of a request that writes an event continues in the consumer's span: the
// consumer span is a child of the producer span recorded at the write, and so is the
// relay's span for sending it.
func TestTheWritersTraceContinuesInTheConsumer(t *testing.T) {
	reg := registry(t)
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	nc := brokertest.Connect(t, brokertest.Embedded(t))
	b, _ := natsbus.New(nc, natsbus.Config{Registry: reg, Tracer: tp.Tracer("bus")})
	svc := newService(t, storetest.Targets(t)[0].URL, reg, tp)
	relay, _ := svc.outbox.Relay(outbox.RelayConfig{Bus: b, Tracer: tp.Tracer("relay")})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go relay.Run(ctx)

	// A real HTTP request, served through the telemetry middleware, writes the event.
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/items", func(w http.ResponseWriter, r *http.Request) {
		e, err := event.New(r.Context(), "/svc", typ, "item-1", map[string]int{"n": 1})
		if err == nil {
			err = svc.db.InTx(r.Context(), func(tx *sql.Tx) error { return svc.outbox.Add(r.Context(), tx, e) })
		}
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.WriteHeader(201)
	})
	srv := httptest.NewServer(telemetry.Middleware(telemetry.HTTPConfig{Tracer: tp.Tracer("http")})(mux))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/items", "application/json", nil)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("POST: %v %v", resp, err)
	}
	resp.Body.Close()
	consumed := make(chan struct{})
	go b.Subscribe(ctx, bus.Subscription{Group: "traced", Types: []string{typ}}, func(context.Context, *bus.Message) error {
		close(consumed)
		return nil
	})
	<-consumed
	// The spans by messaging operation (the HTTP request's by name), once the
	// consumer's ack has ended the last of them.
	byOp := map[string]tracetest.SpanStub{}
	for deadline := time.Now().Add(10 * time.Second); byOp[bus.OpAck].Name == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, s := range spans.GetSpans() {
			op := s.Name
			for _, a := range s.Attributes {
				if a.Key == "messaging.operation.name" {
					op = a.Value.AsString()
				}
			}
			byOp[op] = s
		}
	}
	producer, consumer, relaySpan, ack, req := byOp[bus.OpCreate], byOp[bus.OpProcess], byOp[bus.OpSend], byOp[bus.OpAck], byOp["POST /v1/items"]
	trace := req.SpanContext.TraceID()
	if !trace.IsValid() || producer.SpanContext.TraceID() != trace || producer.Parent.SpanID() != req.SpanContext.SpanID() {
		t.Errorf("producer span not a child of the HTTP request's span: %+v", producer)
	}
	if consumer.SpanContext.TraceID() != trace || consumer.Parent.SpanID() != producer.SpanContext.SpanID() {
		t.Errorf("consumer span trace %s parent %s; want trace %s parent %s (the producer)", consumer.SpanContext.TraceID(), consumer.Parent.SpanID(), trace, producer.SpanContext.SpanID())
	}
	if relaySpan.SpanContext.TraceID() != trace || relaySpan.Parent.SpanID() != producer.SpanContext.SpanID() {
		t.Errorf("relay span trace %s parent %s; want trace %s parent %s (the producer)", relaySpan.SpanContext.TraceID(), relaySpan.Parent.SpanID(), trace, producer.SpanContext.SpanID())
	}
	if ack.Parent.SpanID() != consumer.SpanContext.SpanID() {
		t.Errorf("the ack's span is under %s, want the consumer's %s", ack.Parent.SpanID(), consumer.SpanContext.SpanID())
	}

	// Each messaging span says what the conventions ask, in their words.
	for _, c := range []struct {
		op    string
		span  tracetest.SpanStub
		kind  oteltrace.SpanKind
		attrs map[string]string
	}{
		{bus.OpCreate, producer, oteltrace.SpanKindProducer, map[string]string{"messaging.operation.type": "create"}},
		{bus.OpSend, relaySpan, oteltrace.SpanKindProducer, map[string]string{"messaging.operation.type": "send", "messaging.batch.message_count": "1"}},
		{bus.OpProcess, consumer, oteltrace.SpanKindConsumer, map[string]string{"messaging.operation.type": "process", "messaging.consumer.group.name": "traced"}},
		{bus.OpAck, ack, oteltrace.SpanKindClient, map[string]string{"messaging.operation.type": "settle", "messaging.consumer.group.name": "traced"}},
	} {
		want := map[string]string{"messaging.system": "nats", "messaging.operation.name": c.op,
			"messaging.destination.name": "events.obtest.item.added", "cloudevents.event_type": typ}
		maps.Copy(want, c.attrs)
		got := map[string]string{}
		for _, a := range c.span.Attributes {
			got[string(a.Key)] = a.Value.String()
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s span %q: %s = %q, want %q", c.op, c.span.Name, k, got[k], v)
			}
		}
		if got["messaging.message.id"] == "" || c.span.SpanKind != c.kind || c.span.Name != c.op+" events.obtest.item.added" {
			t.Errorf("%s span %q: kind %v, message id %q; want kind %v, named for its operation and destination",
				c.op, c.span.Name, c.span.SpanKind, got["messaging.message.id"], c.kind)
		}
	}
}

// Poison events reach the dead letters after their attempts, with their metadata,
// while the valid ones keep flowing; once the handler is fixed, a replay applies each
// poison event exactly once.
func TestPoisonEventsAreDeadLetteredAndReplayedOnceFixed(t *testing.T) {
	storetest.Each(t, func(t *testing.T, url string) {
		reg := registry(t)
		nc := brokertest.Connect(t, brokertest.Embedded(t))
		b, _ := natsbus.New(nc, natsbus.Config{Registry: reg})
		svc := newService(t, url, reg, sdktrace.NewTracerProvider())
		relay, _ := svc.outbox.Relay(outbox.RelayConfig{Bus: b})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go relay.Run(ctx)

		var fixed atomic.Bool
		var poisonAttempts atomic.Int32
		isPoison := func(n int) bool { return n%10 == 3 }
		handler := svc.inbox.Wrap("poisoned", func(ctx context.Context, tx *sql.Tx, m *bus.Message) error {
			var d struct{ N int }
			_ = m.Event.DecodeData(&d)
			if isPoison(d.N) && !fixed.Load() {
				poisonAttempts.Add(1)
				return fmt.Errorf("cannot price item %d", d.N)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO effects (event_id, n) VALUES ($1, $2)`, m.Event.ID, d.N)
			return err
		})
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = b.Subscribe(ctx, bus.Subscription{Group: "poisoned", Types: []string{typ}, Concurrency: 2, MaxAttempts: 3, Backoff: 50 * time.Millisecond}, handler)
		}()
		svc.write(t, 0, 100)
		waitFor(t, "the 90 valid events", 30*time.Second, func() bool { return svc.count(t, "SELECT count(*) FROM effects") == 90 })
		var dead []bus.DeadLetter
		waitFor(t, "10 dead letters", 30*time.Second, func() bool {
			dead, _ = b.List(context.Background(), "poisoned", 100)
			return len(dead) == 10
		})
		for _, dl := range dead {
			if dl.Attempts != 3 || !strings.Contains(dl.LastError, "cannot price item") || dl.Group != "poisoned" ||
				dl.Subject != "events.obtest.item.added" || dl.Event.TraceParent == "" || dl.FirstFailure.IsZero() || dl.LastFailure.Before(dl.FirstFailure) {
				t.Errorf("dead letter %+v", dl)
			}
		}
		if n := poisonAttempts.Load(); n != 30 {
			t.Errorf("%d failed attempts, want 3 for each of 10 poison events", n)
		}

		fixed.Store(true)
		for _, dl := range dead {
			if err := b.Replay(context.Background(), dl.ID); err != nil {
				t.Fatal(err)
			}
			if err := b.Replay(context.Background(), dl.ID); err == nil {
				t.Error("a dead letter replayed twice")
			}
		}
		waitFor(t, "all 100 effects", 30*time.Second, func() bool { return svc.count(t, "SELECT count(*) FROM effects") == 100 })
		time.Sleep(300 * time.Millisecond)
		if n := svc.count(t, "SELECT count(*) FROM effects"); n != 100 {
			t.Errorf("%d effects after the replay, want exactly 100", n)
		}
		if left, _ := b.List(context.Background(), "poisoned", 100); len(left) != 0 {
			t.Errorf("%d dead letters left", len(left))
		}
		cancel()
		<-done
	})
}

// An auditor finds the events an outbox has held unpublished past a cutoff, and
// only those.
func TestUnsentFindsWhatTheRelayLeftBehind(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db, err := store.Open(ctx, store.Config{URL: url})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.Migrate(ctx, outbox.Migrations(), nil); err != nil {
			t.Fatal(err)
		}
		old, recent := time.Now().Add(-time.Minute), time.Now()
		for i, at := range []time.Time{old, recent} {
			if _, err := db.ExecContext(ctx, `INSERT INTO outbox (event_id, type, subject, payload, created_at) VALUES ($1, 't', 's', '{}', $2)`,
				fmt.Sprint("e", i), store.Millis(at)); err != nil {
				t.Fatal(err)
			}
		}
		n, oldest, err := outbox.Unsent(ctx, db, time.Now().Add(-10*time.Second))
		if err != nil || n != 1 || oldest.Sub(old).Abs() > time.Millisecond {
			t.Errorf("unsent past 10s: %d, oldest %v, %v; want the one a minute old", n, oldest, err)
		}
		if n, _, _ := outbox.Unsent(ctx, db, old.Add(-time.Second)); n != 0 {
			t.Errorf("%d unsent before the first write, want 0", n)
		}
	})
}
