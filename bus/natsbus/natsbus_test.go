package natsbus_test

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/broker/brokertest"
	"github.com/switchyard/switchyard/bus/bustest"
	"github.com/switchyard/switchyard/bus/natsbus"
	"github.com/switchyard/switchyard/event"
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
