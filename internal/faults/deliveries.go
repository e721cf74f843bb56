package faults

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/event"
)

// faultHeader marks the messages a delivery fault published, so that it does not
// deliver its own again.
const faultHeader = "Switchyard-Fault"

// connect is the runner's own connection to the broker at url.
func connect(url string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, nats.Name("switchyard-faults"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, nil, fmt.Errorf("connect to the broker: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// poisonPrefix begins the id of every poison event the runner publishes.
const poisonPrefix = "poison-"

// poison publishes, for f.Lasts(), ten events a second on the subject of f's type
// that no consumer can take: nine in ten are CloudEvents whose data breaks the
// type's schema (id poison-<n>), one in ten is not a CloudEvent at all. It
// reports how many it published.
func poison(ctx context.Context, url string, f Fault) (int, error) {
	t, err := event.ParseType(f.Event)
	if err != nil {
		return 0, err
	}
	nc, js, err := connect(url)
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	run := fmt.Sprintf("%x", time.Now().UnixNano())
	end := time.Now().Add(f.Lasts())
	sent := 0
	for n := 1; time.Now().Before(end) && ctx.Err() == nil; n++ {
		id := fmt.Sprintf("%s%s-%d", poisonPrefix, run, n)
		data := []byte("\x00 not an event")
		if n%10 != 0 {
			data = fmt.Appendf(nil, `{"specversion":"1.0","id":%q,"source":"switchyard-faults","type":%q,"time":%q,"datacontenttype":"application/json","data":{"poison":true}}`,
				id, f.Event, time.Now().UTC().Format(time.RFC3339Nano))
		}
		msg := nats.NewMsg(t.Subject())
		msg.Data = data
		msg.Header.Set(jetstream.MsgIDHeader, id)
		msg.Header.Set(faultHeader, "poison")
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.PublishMsg(pctx, msg)
		cancel()
		if err == nil {
			sent++
		}
		sleep(ctx, 100*time.Millisecond)
	}
	return sent, nil
}

// deliver brings a delivery fault on the broker at url for f.Lasts(): every
// message of f's event type published meanwhile is stored on its stream once
// more — same event, same CloudEvent id, a new Nats-Msg-Id so that the broker
// keeps it — at once (duplicate), after f.Delay (late), or with the second's
// others in reverse order (reversed). Every consumer group of the type gets it
// again, as a redelivery after a lost ack would come. It reports how many it
// delivered again.
func deliver(ctx context.Context, url string, f Fault) (string, error) {
	t, err := event.ParseType(f.Event)
	if err != nil {
		return "", err
	}
	nc, js, err := connect(url)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	var (
		sent, lost atomic.Int64
		wg         sync.WaitGroup
		mu         sync.Mutex
		batch      []*nats.Msg
	)
	again := func(m *nats.Msg) {
		dup := nats.NewMsg(m.Subject)
		dup.Data = m.Data
		for k, v := range m.Header {
			dup.Header[k] = slices.Clone(v)
		}
		dup.Header.Set(jetstream.MsgIDHeader, m.Header.Get(jetstream.MsgIDHeader)+"#"+f.Deliveries)
		dup.Header.Set(faultHeader, f.Deliveries)
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := js.PublishMsg(pctx, dup); err != nil {
			lost.Add(1)
			return
		}
		sent.Add(1)
	}
	flush := func() {
		mu.Lock()
		b := batch
		batch = nil
		mu.Unlock()
		slices.Reverse(b)
		for _, m := range b {
			again(m)
		}
	}
	sub, err := nc.Subscribe(t.Subject(), func(m *nats.Msg) {
		if m.Header.Get(faultHeader) != "" || m.Header.Get(jetstream.MsgIDHeader) == "" {
			return
		}
		switch f.Deliveries {
		case "duplicate":
			again(m)
		case "late":
			wg.Go(func() {
				sleep(ctx, f.Delay.Or(2*time.Second))
				again(m)
			})
		case "reversed":
			mu.Lock()
			batch = append(batch, m)
			mu.Unlock()
		}
	})
	if err != nil {
		return "", fmt.Errorf("deliveries: subscribe to %s: %w", t.Subject(), err)
	}
	end := time.After(f.Lasts())
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
wait:
	for {
		select {
		case <-tick.C:
			flush()
		case <-end:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	_ = sub.Unsubscribe()
	flush()
	wg.Wait()
	detail := fmt.Sprintf("%d %s events delivered again", sent.Load(), f.Event)
	if n := lost.Load(); n > 0 {
		detail += fmt.Sprintf(" (%d could not be published)", n)
	}
	return detail, nil
}

// consumed waits, for at most within, until every consumer of every events
// stream on the broker at url has nothing pending and nothing unacknowledged —
// every event delivered and either handled or dead-lettered — and returns what
// is still outstanding when it gives up ("" when nothing is).
func consumed(ctx context.Context, url string, within time.Duration) (string, error) {
	nc, js, err := connect(url)
	if err != nil {
		return "", err
	}
	defer nc.Close()
	deadline := time.Now().Add(within)
	for {
		var outstanding []string
		streams := js.ListStreams(ctx, jetstream.WithStreamListSubject("events.>"))
		for info := range streams.Info() {
			s, err := js.Stream(ctx, info.Config.Name)
			if err != nil {
				return "", err
			}
			consumers := s.ListConsumers(ctx)
			for c := range consumers.Info() {
				if n := c.NumPending + uint64(c.NumAckPending); n > 0 {
					outstanding = append(outstanding, fmt.Sprintf("%s: %d", c.Name, n))
				}
			}
			if err := consumers.Err(); err != nil {
				return "", err
			}
		}
		if err := streams.Err(); err != nil {
			return "", err
		}
		if len(outstanding) == 0 {
			return "", nil
		}
		if time.Now().After(deadline) {
			slices.Sort(outstanding)
			return strings.Join(outstanding, ", "), nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
