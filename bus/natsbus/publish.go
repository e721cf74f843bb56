package natsbus

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/event"
)

// encode validates and encodes events for PublishEncoded.
func encode(reg *event.Registry, events []event.Event) ([]bus.Encoded, error) {
	out := make([]bus.Encoded, len(events))
	for i := range events {
		e := &events[i]
		if err := reg.Prepare(e); err != nil {
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
