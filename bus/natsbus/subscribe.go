package natsbus

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/event"
)

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
			lag += int(info.NumPending)
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
	settle := func(op string, fn func() error) error {
		return b.dispatch.Settle(ctx, sub, del, res, op, func(context.Context) error { return fn() })
	}
	switch res.Verdict {
	case bus.Ack:
		if err := settle(bus.OpAck, msg.Ack); err != nil {
			b.cfg.Logger.Warn("natsbus: ack failed; the event will be redelivered", "error", err)
		}
	case bus.Redeliver:
		if attempt == 1 {
			b.noteFirstFailure(ctx, sub.Group, res.Event.ID)
		}
		if err := settle(bus.OpNak, func() error { return msg.NakWithDelay(res.Delay) }); err != nil {
			b.cfg.Logger.Warn("natsbus: nak failed; the event will be redelivered after the ack wait", "error", err)
		}
	case bus.Bury:
		dl := bus.NewDeadLetter(sub, del, res, b.firstFailure(ctx, sub.Group, res.Event.ID, attempt))
		if err := b.bury(ctx, dl); err != nil {
			// Keep the event: a later delivery will try again.
			b.cfg.Logger.Error("natsbus: cannot store the dead letter; will redeliver", "group", sub.Group, "event_id", res.Event.ID, "error", err)
			_ = settle(bus.OpNak, func() error { return msg.NakWithDelay(sub.MaxBackoff) })
			return
		}
		_ = settle(bus.OpTerm, msg.Term)
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
