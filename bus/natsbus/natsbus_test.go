package natsbus_test

import (
	"context"
	neturl "net/url"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/broker/brokertest"
	"github.com/switchyard/switchyard/bus/bustest"
	"github.com/switchyard/switchyard/bus/natsbus"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/testkit/faultproxy"
)

func TestConformance(t *testing.T) {
	for _, target := range brokertest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			bustest.Run(t, func(t *testing.T, reg *event.Registry) bustest.Harness {
				nc := brokertest.Connect(t, target.URL)
				b, err := natsbus.New(nc, natsbus.Config{Registry: reg})
				if err != nil {
					t.Fatal(err)
				}
				js, _ := jetstream.New(nc)
				t.Cleanup(func() { cleanup(t, js, reg) })
				return bustest.Harness{
					Bus:         b,
					DeadLetters: b,
					Dedup:       true,
					PublishRaw: func(ctx context.Context, typ, _ string, data []byte) error {
						tt, _ := event.ParseType(typ)
						msg := nats.NewMsg(tt.Subject())
						msg.Data = data
						_, err := js.PublishMsg(ctx, msg)
						return err
					},
				}
			})
		})
	}
}

// cleanup removes what a case left on a shared server: its stream and its dead letters.
func cleanup(t *testing.T, js jetstream.JetStream, reg *event.Registry) {
	ctx := context.Background()
	for _, typ := range reg.Types() {
		domain, _, _ := strings.Cut(typ, ".")
		_ = js.DeleteStream(ctx, natsbus.StreamName(domain))
		if s, err := js.Stream(ctx, natsbus.DeadLetterStream); err == nil {
			_ = s.Purge(ctx, jetstream.WithPurgeSubject("deadletters.*-"+domain+".>"))
		}
	}
}

// The broker takes a publish, and its acknowledgement is lost with the connection
// (the server that had it died, say). The publish fails as soon as the connection
// drops — not when its deadline, half a minute away, passes — and publishing it
// again stores it once.
func TestAPublishWhoseConnectionDropsFailsAtOnce(t *testing.T) {
	t.Parallel()
	url := brokertest.Embedded(t)
	u, _ := neturl.Parse(url)
	proxy := faultproxy.New(t, u.Host)
	u.Host = proxy.Addr()
	nc, err := nats.Connect(u.String(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	reg, err := event.NewRegistry(fstest.MapFS{"lost.thing.happened.v1.json": {Data: []byte(`{"type": "object"}`)}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := natsbus.New(nc, natsbus.Config{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := event.New(context.Background(), "/test", "lost.thing.happened.v1", "a", map[string]any{})
	if err := b.Publish(context.Background(), first); err != nil {
		t.Fatal(err)
	}

	if err := proxy.BlackHole(); err != nil { // the broker's answers go nowhere
		t.Fatal(err)
	}
	e, _ := event.New(context.Background(), "/test", "lost.thing.happened.v1", "b", map[string]any{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	published := make(chan error, 1)
	begun := time.Now()
	go func() { published <- b.Publish(ctx, e) }()
	time.Sleep(300 * time.Millisecond)
	if err := proxy.Heal(); err != nil {
		t.Fatal(err)
	}
	if err := proxy.Cut(); err != nil { // the connection dies under the publish
		t.Fatal(err)
	}
	select {
	case err := <-published:
		if err == nil {
			t.Fatal("the publish whose acknowledgement was lost succeeded")
		}
		t.Logf("failed %v after it began: %v", time.Since(begun).Round(time.Millisecond), err)
	case <-time.After(5 * time.Second):
		t.Fatal("the publish still waits 5s after its connection dropped")
	}
	for {
		if err := b.Publish(context.Background(), e); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	js, _ := jetstream.New(nc)
	s, err := js.Stream(context.Background(), natsbus.StreamName("lost"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("the stream holds %d events, want 2: the repeat stored once", info.State.Msgs)
	}
}
