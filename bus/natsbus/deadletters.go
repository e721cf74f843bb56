package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/codes"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/event"
)

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
	pctx, span := bus.ReplaySpan(ctx, b.cfg.Tracer, System, &dl)
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
