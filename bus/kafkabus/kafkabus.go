// Package kafkabus is the bus on Kafka (franz-go), the second supported broker.
//
// Layout: a topic per domain, events.<domain>; records are keyed by the event's
// subject (the aggregate id), so one aggregate's events stay in one partition and in
// order. Partitions are handled concurrently (up to Subscription.Concurrency), each
// in order. Offsets are committed after the records they cover were handled.
//
// Kafka has no per-message negative acknowledgement, so retries go through retry
// topics: a record to be retried for the n-th time is produced to
// retry.<group>.<n> with its attempt count, the time of its first failure and the
// time it may run again, and the original offset is committed — the partition moves
// on at once. Each retry topic holds records of one delay, so a consumer (group
// <group>.retry) waits for each head in turn without a short delay ever queuing
// behind a long one. Dead letters are records of the compacted topic deadletters,
// keyed by their id (group/event id/attempts); replay and purge write a tombstone.
//
// Kafka does not drop a republished event id: the relay's retries can duplicate,
// and the inbox makes handlers idempotent regardless.
package kafkabus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/event"
)

// Config configures the Kafka bus. Zero fields take the default in brackets.
type Config struct {
	// Seeds are the bootstrap brokers, host:port. Required.
	Seeds []string
	// Registry validates events on publish and on consume. Required.
	Registry *event.Registry
	// Partitions of each topic the bus creates [6].
	Partitions int32
	// ReplicationFactor of each topic the bus creates [1].
	ReplicationFactor int16
	// Options are passed to every franz-go client (TLS, SASL, ...).
	Options []kgo.Opt
	// Tracer, Logger and Metrics as in bus.Dispatcher.
	Tracer  trace.Tracer
	Logger  *slog.Logger
	Metrics *bus.Metrics
}

// Bus is the Kafka bus. It implements bus.Bus and bus.DeadLetters.
type Bus struct {
	cfg      Config
	client   *kgo.Client
	admin    *kadm.Client
	dispatch *bus.Dispatcher

	mu     sync.Mutex
	topics map[string]bool
}

var (
	_ bus.Bus         = (*Bus)(nil)
	_ bus.DeadLetters = (*Bus)(nil)
)

// DeadLetterTopic holds every group's dead letters.
const DeadLetterTopic = "deadletters"

// Header names on records.
const (
	hAttempt      = "attempt"
	hFirstFailure = "first-failure"
	hNotBefore    = "not-before"
	hOrigTopic    = "original-topic"
)

// New connects a producer and an admin client. Close releases them.
func New(cfg Config) (*Bus, error) {
	if len(cfg.Seeds) == 0 || cfg.Registry == nil {
		return nil, errors.New("kafkabus: Seeds and Registry are required")
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 6
	}
	if cfg.ReplicationFactor <= 0 {
		cfg.ReplicationFactor = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cl, err := kgo.NewClient(append(slices.Clone(cfg.Options), kgo.SeedBrokers(cfg.Seeds...), kgo.ProducerLinger(time.Millisecond))...)
	if err != nil {
		return nil, fmt.Errorf("kafkabus: %w", err)
	}
	return &Bus{cfg: cfg, client: cl, admin: kadm.NewClient(cl), topics: map[string]bool{},
		dispatch: &bus.Dispatcher{Registry: cfg.Registry, Tracer: cfg.Tracer, Logger: cfg.Logger, Metrics: cfg.Metrics, System: System}}, nil
}

// System is what the messaging spans of a Kafka bus say of it: messaging.system
// "kafka", each event type on its domain's topic.
var System = bus.System{Name: "kafka", Destination: func(eventType string) string {
	d, _, _ := strings.Cut(eventType, ".")
	return Topic(d)
}}

// System is what the bus's spans say of it (the outbox takes it, for the spans
// of events written to be sent here).
func (b *Bus) System() bus.System { return System }

// Close closes the clients.
func (b *Bus) Close() { b.client.Close() }

// Topic is the topic of a domain's events.
func Topic(domain string) string { return "events." + domain }

func retryTopic(group string, n int) string { return "retry." + group + "." + strconv.Itoa(n) }

// ensure creates topics that do not exist yet.
func (b *Bus) ensure(ctx context.Context, configs map[string]*string, topics ...string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var missing []string
	for _, t := range topics {
		if !b.topics[t] {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	resp, err := b.admin.CreateTopics(ctx, b.cfg.Partitions, b.cfg.ReplicationFactor, configs, missing...)
	if err != nil {
		return fmt.Errorf("kafkabus: create topics: %w", err)
	}
	for _, r := range resp {
		if r.Err != nil && !strings.Contains(r.Err.Error(), "TOPIC_ALREADY_EXISTS") {
			return fmt.Errorf("kafkabus: create topic %s: %w", r.Topic, r.Err)
		}
		b.topics[r.Topic] = true
	}
	return nil
}

// Publish implements bus.Bus: the records are produced together and awaited.
func (b *Bus) Publish(ctx context.Context, events ...event.Event) error {
	encoded := make([]bus.Encoded, len(events))
	for i := range events {
		e := &events[i]
		if err := b.cfg.Registry.Prepare(e); err != nil {
			return fmt.Errorf("kafkabus: refusing to publish: %w", err)
		}
		data, err := event.Encode(e)
		if err != nil {
			return err
		}
		encoded[i] = bus.Encoded{ID: e.ID, Type: e.Type, Subject: e.Subject, Payload: data}
	}
	return b.PublishEncoded(ctx, encoded...)
}

// PublishEncoded publishes events already validated and encoded (the outbox relay's
// path).
func (b *Bus) PublishEncoded(ctx context.Context, events ...bus.Encoded) error {
	if len(events) == 0 {
		return nil
	}
	var relay []byte
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		carrier := propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(ctx, carrier)
		relay = []byte(carrier["traceparent"])
	}
	records := make([]*kgo.Record, len(events))
	for i, e := range events {
		domain, _, _ := strings.Cut(e.Type, ".")
		r := &kgo.Record{Topic: Topic(domain), Key: []byte(e.Subject), Value: e.Payload,
			Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte(event.ContentType)}, {Key: "ce_id", Value: []byte(e.ID)}}}
		if relay != nil {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: bus.RelayTraceHeader, Value: relay})
		}
		if err := b.ensure(ctx, nil, r.Topic); err != nil {
			return err
		}
		records[i] = r
	}
	if err := b.client.ProduceSync(ctx, records...).FirstErr(); err != nil {
		return fmt.Errorf("kafkabus: publish: %w", err)
	}
	for i := range events {
		b.cfg.Metrics.Published(events[i].Type, 1)
	}
	return nil
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Subscribe implements bus.Bus.
func (b *Bus) Subscribe(ctx context.Context, sub bus.Subscription, h bus.Handler) error {
	if err := sub.Validate(); err != nil {
		return err
	}
	sub.Defaults()
	wanted := map[string]bool{}
	var topics []string
	for _, typ := range sub.Types {
		wanted[typ] = true
		t, _ := event.ParseType(typ)
		if !slices.Contains(topics, Topic(t.Domain)) {
			topics = append(topics, Topic(t.Domain))
		}
	}
	var retries []string
	for n := 1; n < sub.MaxAttempts; n++ {
		retries = append(retries, retryTopic(sub.Group, n))
	}
	if err := b.ensure(ctx, nil, append(slices.Clone(topics), retries...)...); err != nil {
		return err
	}
	main, err := b.consumer(sub.Group, topics)
	if err != nil {
		return err
	}
	var g sync.WaitGroup
	g.Add(1)
	go func() { defer g.Done(); b.consume(ctx, main, &sub, wanted, h, false) }()
	if len(retries) > 0 {
		retry, err := b.consumer(sub.Group+".retry", retries)
		if err != nil {
			main.Close()
			g.Wait()
			return err
		}
		g.Add(1)
		go func() { defer g.Done(); b.consume(ctx, retry, &sub, wanted, h, true) }()
	}
	g.Wait()
	return nil
}

func (b *Bus) consumer(group string, topics []string) (*kgo.Client, error) {
	cl, err := kgo.NewClient(append(slices.Clone(b.cfg.Options),
		kgo.SeedBrokers(b.cfg.Seeds...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(250*time.Millisecond),
		kgo.BlockRebalanceOnPoll(),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafkabus: consumer %s: %w", group, err)
	}
	return cl, nil
}

// consume polls until ctx ends, handling each partition's records in order and at
// most sub.Concurrency partitions at once, committing what was handled; then it
// commits and leaves the group.
func (b *Bus) consume(ctx context.Context, cl *kgo.Client, sub *bus.Subscription, wanted map[string]bool, h bus.Handler, retries bool) {
	defer cl.Close()
	work := context.WithoutCancel(ctx)
	for ctx.Err() == nil {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			cl.AllowRebalance()
			break
		}
		fetches.EachError(func(topic string, p int32, err error) {
			b.cfg.Logger.Warn("kafkabus: fetch", "topic", topic, "partition", p, "error", err)
		})
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			handled []*kgo.Record
		)
		slots := make(chan struct{}, sub.Concurrency)
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			wg.Add(1)
			slots <- struct{}{}
			go func() {
				defer func() { <-slots; wg.Done() }()
				for _, r := range p.Records {
					if !b.handle(ctx, work, sub, wanted, r, h, retries) {
						return // stopping mid-partition: the rest is fetched again by whoever comes next
					}
					mu.Lock()
					handled = append(handled, r)
					mu.Unlock()
				}
			}()
		})
		wg.Wait()
		if len(handled) > 0 {
			if err := cl.CommitRecords(work, handled...); err != nil {
				b.cfg.Logger.Warn("kafkabus: commit; records will be redelivered", "error", err)
			}
		}
		cl.AllowRebalance()
	}
}

// handle delivers one record and carries out the verdict; it returns false when it
// had to stop before the record was dealt with.
func (b *Bus) handle(ctx, work context.Context, sub *bus.Subscription, wanted map[string]bool, r *kgo.Record, h bus.Handler, retry bool) bool {
	attempt := 1
	var first time.Time
	subject := r.Topic
	if retry {
		attempt, _ = strconv.Atoi(header(r, hAttempt))
		first, _ = time.Parse(time.RFC3339Nano, header(r, hFirstFailure))
		subject = header(r, hOrigTopic)
		if nb, err := time.Parse(time.RFC3339Nano, header(r, hNotBefore)); err == nil {
			if wait := time.Until(nb); wait > 0 {
				select {
				case <-ctx.Done():
					return false
				case <-time.After(wait):
				}
			}
		}
	} else if typ := peekType(r.Value); typ != "" && !wanted[typ] {
		return true // another type of the domain's topic
	}
	del := bus.Delivery{Raw: r.Value, Subject: subject, Attempt: attempt, RelayTraceParent: header(r, bus.RelayTraceHeader)}
	res := b.dispatch.Deliver(work, sub, del, h)
	for {
		var err error
		switch res.Verdict {
		case bus.Ack:
			return true
		case bus.Redeliver:
			if first.IsZero() {
				first = time.Now().UTC()
			}
			err = b.dispatch.Settle(work, sub, del, res, bus.OpRetry, func(ctx context.Context) error {
				return b.client.ProduceSync(ctx, &kgo.Record{
					Topic: retryTopic(sub.Group, attempt), Key: r.Key, Value: r.Value,
					Headers: []kgo.RecordHeader{
						{Key: hAttempt, Value: []byte(strconv.Itoa(attempt + 1))},
						{Key: hFirstFailure, Value: []byte(first.Format(time.RFC3339Nano))},
						{Key: hNotBefore, Value: []byte(time.Now().Add(res.Delay).UTC().Format(time.RFC3339Nano))},
						{Key: hOrigTopic, Value: []byte(subject)},
						{Key: bus.RelayTraceHeader, Value: []byte(header(r, bus.RelayTraceHeader))},
					},
				}).FirstErr()
			})
		case bus.Bury:
			err = b.dispatch.Settle(work, sub, del, res, bus.OpDeadLetter, func(ctx context.Context) error {
				return b.bury(ctx, bus.NewDeadLetter(sub, del, res, first))
			})
		}
		if err == nil {
			return true
		}
		// The record cannot be moved on; keep trying, or leave it uncommitted.
		b.cfg.Logger.Warn("kafkabus: cannot move a failed record on; retrying", "error", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
		}
	}
}

func peekType(data []byte) string {
	var head struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(data, &head)
	return head.Type
}

func deadLetterKey(dl *bus.DeadLetter) string {
	return dl.Group + "/" + dl.Event.ID + "/" + strconv.Itoa(dl.Attempts) + "/" + dl.LastFailure.Format(time.RFC3339Nano)
}

func (b *Bus) bury(ctx context.Context, dl bus.DeadLetter) error {
	compact := "compact"
	if err := b.ensure(ctx, map[string]*string{"cleanup.policy": &compact}, DeadLetterTopic); err != nil {
		return err
	}
	dl.ID = deadLetterKey(&dl)
	data, err := json.Marshal(dl)
	if err != nil {
		return err
	}
	return b.client.ProduceSync(ctx, &kgo.Record{Topic: DeadLetterTopic, Key: []byte(dl.ID), Value: data}).FirstErr()
}

// deadLetters reads the dead-letter topic from its start to its end, keeping the
// latest value of each key (tombstones remove).
func (b *Bus) deadLetters(ctx context.Context) ([]bus.DeadLetter, error) {
	compact := "compact"
	if err := b.ensure(ctx, map[string]*string{"cleanup.policy": &compact}, DeadLetterTopic); err != nil {
		return nil, err
	}
	ends, err := b.admin.ListEndOffsets(ctx, DeadLetterTopic)
	if err != nil {
		return nil, fmt.Errorf("kafkabus: dead letters: %w", err)
	}
	remaining := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			remaining[o.Partition] = o.Offset
		}
	})
	latest := map[string]*bus.DeadLetter{}
	var order []string
	if len(remaining) > 0 {
		cl, err := kgo.NewClient(append(slices.Clone(b.cfg.Options), kgo.SeedBrokers(b.cfg.Seeds...),
			kgo.ConsumeTopics(DeadLetterTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
		if err != nil {
			return nil, err
		}
		defer cl.Close()
		for len(remaining) > 0 {
			fetches := cl.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			fetches.EachRecord(func(r *kgo.Record) {
				key := string(r.Key)
				if r.Value == nil {
					delete(latest, key)
				} else {
					var dl bus.DeadLetter
					if json.Unmarshal(r.Value, &dl) == nil {
						dl.ID = key
						if _, seen := latest[key]; !seen {
							order = append(order, key)
						}
						latest[key] = &dl
					}
				}
				if r.Offset+1 >= remaining[r.Partition] {
					delete(remaining, r.Partition)
				}
			})
		}
	}
	out := make([]bus.DeadLetter, 0, len(latest))
	for _, k := range order {
		if dl, ok := latest[k]; ok {
			out = append(out, *dl)
		}
	}
	slices.SortStableFunc(out, func(a, b bus.DeadLetter) int { return a.LastFailure.Compare(b.LastFailure) })
	return out, nil
}

// List implements bus.DeadLetters.
func (b *Bus) List(ctx context.Context, group string, limit int) ([]bus.DeadLetter, error) {
	all, err := b.deadLetters(ctx)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, dl := range all {
		if group == "" || dl.Group == group {
			out = append(out, dl)
		}
	}
	return out[:min(len(out), limit)], nil
}

// Get implements bus.DeadLetters.
func (b *Bus) Get(ctx context.Context, id string) (bus.DeadLetter, error) {
	all, err := b.deadLetters(ctx)
	if err != nil {
		return bus.DeadLetter{}, err
	}
	for _, dl := range all {
		if dl.ID == id {
			return dl, nil
		}
	}
	return bus.DeadLetter{}, fmt.Errorf("kafkabus: %w: %q", bus.ErrNoDeadLetter, id)
}

func (b *Bus) tombstone(ctx context.Context, id string) error {
	return b.client.ProduceSync(ctx, &kgo.Record{Topic: DeadLetterTopic, Key: []byte(id), Value: nil}).FirstErr()
}

// Replay implements bus.DeadLetters.
func (b *Bus) Replay(ctx context.Context, id string) error {
	dl, err := b.Get(ctx, id)
	if err != nil {
		return err
	}
	if dl.Event.ID == "" {
		return fmt.Errorf("kafkabus: dead letter %s holds no event to replay", id)
	}
	if err := bus.CheckReplay(b.cfg.Registry, &dl); err != nil {
		return err
	}
	pctx, span := bus.ReplaySpan(ctx, b.cfg.Tracer, System, &dl)
	defer span.End()
	if err := b.Publish(pctx, dl.Event); err != nil {
		span.SetStatus(codes.Error, err.Error())
		return err
	}
	return b.tombstone(ctx, id)
}

// Purge implements bus.DeadLetters.
func (b *Bus) Purge(ctx context.Context, group, id string) (int, error) {
	if id != "" {
		if _, err := b.Get(ctx, id); err != nil {
			return 0, err
		}
		return 1, b.tombstone(ctx, id)
	}
	list, err := b.List(ctx, group, 1<<30)
	if err != nil {
		return 0, err
	}
	for _, dl := range list {
		if err := b.tombstone(ctx, dl.ID); err != nil {
			return 0, err
		}
	}
	return len(list), nil
}

// Tail calls fn with every new event of the domain's topic whose type starts with
// prefix, until ctx ends.
func (b *Bus) Tail(ctx context.Context, domain, prefix string, fn func(subject string, e event.Event, raw []byte)) error {
	if err := b.ensure(ctx, nil, Topic(domain)); err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(slices.Clone(b.cfg.Options), kgo.SeedBrokers(b.cfg.Seeds...),
		kgo.ConsumeTopics(Topic(domain)), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			e, _ := event.Decode(r.Value)
			if strings.HasPrefix(e.Type, prefix) {
				fn(r.Topic, e, r.Value)
			}
		})
	}
	return nil
}
