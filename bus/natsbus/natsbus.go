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
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
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
		dispatch: &bus.Dispatcher{Registry: cfg.Registry, Tracer: cfg.Tracer, Logger: cfg.Logger, Metrics: cfg.Metrics}}
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

// encode validates and encodes events for PublishEncoded.
func encode(reg *event.Registry, events []event.Event) ([]bus.Encoded, error) {
	out := make([]bus.Encoded, len(events))
	for i := range events {
		e := &events[i]
		if err := reg.Validate(e); err != nil {
			return nil, fmt.Errorf("refusing to publish: %w", err)
		}
		data, err := event.Encode(e)
		if err != nil {
			return nil, err
		}
		out[i] = bus.Encoded{ID: e.ID, Type: e.Type, Subject: e.Subject, Payload: data}
	}
	return out, nil
}

// message builds the broker message of an encoded event; relay is the publisher's
// trace header value ("" for none).
func message(e *bus.Encoded, relay string) (*nats.Msg, error) {
	t, err := event.ParseType(e.Type)
	if err != nil {
		return nil, err
	}
	msg := &nats.Msg{Subject: t.Subject(), Data: e.Payload, Header: nats.Header{
		jetstream.MsgIDHeader: {e.ID},
		"Content-Type":        {event.ContentType},
	}}
	if relay != "" {
		msg.Header[bus.RelayTraceHeader] = []string{relay}
	}
	return msg, nil
}

func relayHeader(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return carrier["traceparent"]
}

// Publish implements bus.Bus. One event is published synchronously; a batch is
// pipelined (asynchronous publishes, in order) and awaited as a whole.
func (b *Bus) Publish(ctx context.Context, events ...event.Event) error {
	encoded, err := encode(b.cfg.Registry, events)
	if err != nil {
		return fmt.Errorf("natsbus: %w", err)
	}
	return b.PublishEncoded(ctx, encoded...)
}

// PublishEncoded publishes events already validated and encoded (the outbox relay's
// path: it stored them validated).
func (b *Bus) PublishEncoded(ctx context.Context, events ...bus.Encoded) error {
	if len(events) == 0 {
		return nil
	}
	relay := relayHeader(ctx)
	msgs := make([]*nats.Msg, len(events))
	for i := range events {
		domain, _, _ := strings.Cut(events[i].Type, ".")
		if _, err := b.stream(ctx, domain); err != nil {
			return err
		}
		m, err := message(&events[i], relay)
		if err != nil {
			return fmt.Errorf("natsbus: %w", err)
		}
		msgs[i] = m
	}
	conn := b.conn.Load()
	if len(msgs) == 1 {
		pctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(conn.ctx, cancel)
		_, err := b.js.PublishMsg(pctx, msgs[0])
		stop()
		cancel()
		if err != nil {
			if conn.ctx.Err() != nil && ctx.Err() == nil {
				err = errConnectionLost
			}
			return fmt.Errorf("natsbus: publish %s: %w", events[0].Type, err)
		}
		b.cfg.Metrics.Published(events[0].Type, 1)
		return nil
	}
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		f, err := b.js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("natsbus: publish %s: %w", events[i].Type, err)
		}
		futures[i] = f
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
			b.cfg.Metrics.Published(events[i].Type, 1)
		case err := <-f.Err():
			return fmt.Errorf("natsbus: publish %s: %w", events[i].Type, err)
		case <-conn.ctx.Done():
			return fmt.Errorf("natsbus: publish %s: %w", events[i].Type, errConnectionLost)
		case <-ctx.Done():
			return fmt.Errorf("natsbus: publish: %w", ctx.Err())
		}
	}
	return nil
}

// publishAckWait bounds the wait for the broker's acknowledgement of an
// asynchronous publish.
const publishAckWait = 10 * time.Second

// consumerName is the durable consumer of group on one subject.
func consumerName(group string, t event.Type) string {
	return sanitize(group) + "__" + t.Domain + "_" + t.Entity + "_" + t.Verb
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// watchLag reports the group's lag (events not yet delivered, over its consumers)
// every few seconds until ctx ends.
func (b *Bus) watchLag(ctx context.Context, group string, consumers []jetstream.Consumer) {
	if b.dispatch.Metrics == nil {
		return
	}
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		lag, known := 0, true
		for _, c := range consumers {
			ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
			info, err := c.Info(ictx)
			cancel()
			if err != nil {
				known = false
				break
			}
			lag += int(info.NumPending) //nolint:gosec // a stream holds fewer than 2^63 messages
		}
		if known {
			b.dispatch.Metrics.SetLag(group, lag)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Subscribe implements bus.Bus.
func (b *Bus) Subscribe(ctx context.Context, sub bus.Subscription, h bus.Handler) error {
	if err := sub.Validate(); err != nil {
		return err
	}
	sub.Defaults()
	// One consumer per subject; versions of a type share a subject.
	wanted := map[string]bool{}
	subjects := map[string]event.Type{}
	for _, typ := range sub.Types {
		t, _ := event.ParseType(typ)
		wanted[typ] = true
		subjects[t.Subject()] = t
	}
	var consumers []jetstream.Consumer
	for subject, t := range subjects {
		s, err := b.stream(ctx, t.Domain)
		if err != nil {
			return err
		}
		c, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       consumerName(sub.Group, t),
			Description:   "Switchyard consumer group " + sub.Group,
			FilterSubject: subject,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       sub.HandlerTimeout + min(max(sub.HandlerTimeout/4, time.Second), 5*time.Second),
			MaxDeliver:    -1,
			MaxAckPending: max(sub.Concurrency*8, 256),
			DeliverPolicy: jetstream.DeliverAllPolicy,
		})
		if err != nil {
			return fmt.Errorf("natsbus: consumer %s on %s: %w", consumerName(sub.Group, t), subject, err)
		}
		consumers = append(consumers, c)
	}

	go b.watchLag(ctx, sub.Group, consumers)

	slots := make(chan struct{}, sub.Concurrency)
	var inflight sync.WaitGroup
	var pullers sync.WaitGroup
	for _, c := range consumers {
		iter, err := c.Messages(jetstream.PullMaxMessages(max(sub.Concurrency*2, 16)))
		if err != nil {
			return fmt.Errorf("natsbus: pull: %w", err)
		}
		pullers.Add(1)
		go func() {
			defer pullers.Done()
			go func() { <-ctx.Done(); iter.Drain() }() // stop pulling; buffered messages still come out of Next
			for {
				msg, err := iter.Next()
				if err != nil {
					return // drained or closed
				}
				slots <- struct{}{}
				inflight.Add(1)
				go func() {
					defer func() { <-slots; inflight.Done() }()
					b.handle(context.WithoutCancel(ctx), &sub, wanted, msg, h)
				}()
			}
		}()
	}
	<-ctx.Done()
	pullers.Wait()
	inflight.Wait()
	return nil
}

// handle delivers one message and carries out the verdict.
func (b *Bus) handle(ctx context.Context, sub *bus.Subscription, wanted map[string]bool, msg jetstream.Msg, h bus.Handler) {
	meta, err := msg.Metadata()
	attempt := 1
	if err == nil {
		attempt = int(meta.NumDelivered)
	}
	if typ := peekType(msg.Data()); typ != "" && !wanted[typ] {
		_ = msg.Ack() // another version of the type on the same subject: not ours
		return
	}
	del := bus.Delivery{Raw: msg.Data(), Subject: msg.Subject(), Attempt: attempt, RelayTraceParent: msg.Headers().Get(bus.RelayTraceHeader)}
	res := b.dispatch.Deliver(ctx, sub, del, h)
	switch res.Verdict {
	case bus.Ack:
		if err := msg.Ack(); err != nil {
			b.cfg.Logger.Warn("natsbus: ack failed; the event will be redelivered", "error", err)
		}
	case bus.Redeliver:
		if attempt == 1 {
			b.noteFirstFailure(ctx, sub.Group, res.Event.ID)
		}
		if err := msg.NakWithDelay(res.Delay); err != nil {
			b.cfg.Logger.Warn("natsbus: nak failed; the event will be redelivered after the ack wait", "error", err)
		}
	case bus.Bury:
		dl := bus.NewDeadLetter(sub, del, res, b.firstFailure(ctx, sub.Group, res.Event.ID, attempt))
		if err := b.bury(ctx, dl); err != nil {
			// Keep the event: a later delivery will try again.
			b.cfg.Logger.Error("natsbus: cannot store the dead letter; will redeliver", "group", sub.Group, "event_id", res.Event.ID, "error", err)
			_ = msg.NakWithDelay(sub.MaxBackoff)
			return
		}
		_ = msg.Term()
	}
}

// peekType reads the type of an event without decoding it fully.
func peekType(data []byte) string {
	var head struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(data, &head)
	return head.Type
}

func failureKey(group, eventID string) string { return sanitize(group) + "." + sanitize(eventID) }

func (b *Bus) noteFirstFailure(ctx context.Context, group, eventID string) {
	if eventID == "" {
		return
	}
	kv, err := b.failureBucket(ctx)
	if err != nil {
		return
	}
	_, _ = kv.Create(ctx, failureKey(group, eventID), []byte(time.Now().UTC().Format(time.RFC3339Nano)))
}

func (b *Bus) firstFailure(ctx context.Context, group, eventID string, attempt int) time.Time {
	if attempt <= 1 || eventID == "" {
		return time.Time{}
	}
	kv, err := b.failureBucket(ctx)
	if err != nil {
		return time.Time{}
	}
	e, err := kv.Get(ctx, failureKey(group, eventID))
	if err != nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, string(e.Value()))
	_ = kv.Purge(ctx, failureKey(group, eventID))
	return t
}

// bury stores a dead letter.
func (b *Bus) bury(ctx context.Context, dl bus.DeadLetter) error {
	if _, err := b.deadLetterStream(ctx); err != nil {
		return err
	}
	data, err := json.Marshal(dl)
	if err != nil {
		return err
	}
	subject := "deadletters." + sanitize(dl.Group) + "." + strings.TrimPrefix(dl.Subject, "events.")
	if dl.Event.ID == "" {
		subject = "deadletters." + sanitize(dl.Group) + ".undecodable"
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	if dl.Event.ID != "" {
		msg.Header.Set(jetstream.MsgIDHeader, dl.Group+"/"+dl.Event.ID+"/"+strconv.Itoa(dl.Attempts))
	}
	_, err = b.js.PublishMsg(ctx, msg)
	return err
}

// List implements bus.DeadLetters.
func (b *Bus) List(ctx context.Context, group string, limit int) ([]bus.DeadLetter, error) {
	s, err := b.deadLetterStream(ctx)
	if err != nil {
		return nil, err
	}
	filter := "deadletters.>"
	if group != "" {
		filter = "deadletters." + sanitize(group) + ".>"
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return nil, fmt.Errorf("natsbus: list dead letters: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	var out []bus.DeadLetter
	if info.State.Msgs == 0 {
		return out, nil
	}
	for len(out) < limit {
		batch, err := c.FetchNoWait(min(limit-len(out), 256))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			dl, err := decodeDeadLetter(m)
			if err != nil {
				continue
			}
			out = append(out, dl)
		}
		if n == 0 {
			break
		}
	}
	return out, nil
}

func decodeDeadLetter(m jetstream.Msg) (bus.DeadLetter, error) {
	var dl bus.DeadLetter
	if err := json.Unmarshal(m.Data(), &dl); err != nil {
		return dl, err
	}
	if meta, err := m.Metadata(); err == nil {
		dl.ID = strconv.FormatUint(meta.Sequence.Stream, 10)
	}
	return dl, nil
}

// Get implements bus.DeadLetters.
func (b *Bus) Get(ctx context.Context, id string) (bus.DeadLetter, error) {
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return bus.DeadLetter{}, fmt.Errorf("natsbus: %w: %q is not a sequence number", bus.ErrNoDeadLetter, id)
	}
	s, err := b.deadLetterStream(ctx)
	if err != nil {
		return bus.DeadLetter{}, err
	}
	raw, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return bus.DeadLetter{}, fmt.Errorf("natsbus: %w: %s", bus.ErrNoDeadLetter, id)
	}
	if err != nil {
		return bus.DeadLetter{}, fmt.Errorf("natsbus: dead letter %s: %w", id, err)
	}
	var dl bus.DeadLetter
	if err := json.Unmarshal(raw.Data, &dl); err != nil {
		return bus.DeadLetter{}, fmt.Errorf("natsbus: dead letter %s: %w", id, err)
	}
	dl.ID = id
	return dl, nil
}

// Replay implements bus.DeadLetters. The event keeps its id and trace context; the
// broker's de-duplication id is made unique per replay, so a replay within the
// de-duplication window is not dropped (inboxes still de-duplicate by event id).
func (b *Bus) Replay(ctx context.Context, id string) error {
	dl, err := b.Get(ctx, id)
	if err != nil {
		return err
	}
	if dl.Event.ID == "" {
		return fmt.Errorf("natsbus: dead letter %s holds no event to replay", id)
	}
	if err := bus.CheckReplay(b.cfg.Registry, &dl); err != nil {
		return err
	}
	if _, err := b.stream(ctx, dl.Event.Domain()); err != nil {
		return err
	}
	encoded, err := encode(b.cfg.Registry, []event.Event{dl.Event})
	if err != nil {
		return fmt.Errorf("natsbus: %w", err)
	}
	pctx, span := bus.ReplaySpan(ctx, b.cfg.Tracer, &dl)
	defer span.End()
	msg, err := message(&encoded[0], relayHeader(pctx))
	if err != nil {
		return err
	}
	msg.Header.Set(jetstream.MsgIDHeader, dl.Event.ID+"/replay/"+id)
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		span.SetStatus(codes.Error, err.Error())
		return fmt.Errorf("natsbus: replay %s: %w", id, err)
	}
	s, err := b.deadLetterStream(ctx)
	if err != nil {
		return err
	}
	seq, _ := strconv.ParseUint(id, 10, 64)
	return s.DeleteMsg(ctx, seq)
}

// Purge implements bus.DeadLetters.
func (b *Bus) Purge(ctx context.Context, group, id string) (int, error) {
	s, err := b.deadLetterStream(ctx)
	if err != nil {
		return 0, err
	}
	if id != "" {
		seq, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("natsbus: dead letter id %q is not a sequence number", id)
		}
		if err := s.DeleteMsg(ctx, seq); err != nil {
			return 0, fmt.Errorf("natsbus: purge %s: %w", id, err)
		}
		return 1, nil
	}
	before, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	opts := []jetstream.StreamPurgeOpt{}
	if group != "" {
		opts = append(opts, jetstream.WithPurgeSubject("deadletters."+sanitize(group)+".>"))
	}
	if err := s.Purge(ctx, opts...); err != nil {
		return 0, err
	}
	after, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int(before.State.Msgs - after.State.Msgs), nil
}

// Tail calls fn with every new event whose subject matches pattern (a NATS subject
// pattern under events., e.g. events.orders.>) until ctx ends.
func (b *Bus) Tail(ctx context.Context, domain, pattern string, fn func(subject string, e event.Event, raw []byte)) error {
	s, err := b.stream(ctx, domain)
	if err != nil {
		return err
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{pattern}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return err
	}
	cc, err := c.Consume(func(m jetstream.Msg) {
		e, _ := event.Decode(m.Data())
		fn(m.Subject(), e, m.Data())
	})
	if err != nil {
		return err
	}
	<-ctx.Done()
	cc.Stop()
	return nil
}
