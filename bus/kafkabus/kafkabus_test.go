package kafkabus_test

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard/switchyard/bus/bustest"
	"github.com/switchyard/switchyard/bus/kafkabus"
	"github.com/switchyard/switchyard/event"
)

// No Kafka server runs here: the suite runs against franz-go's in-process kfake
// cluster, a Kafka protocol implementation.
func TestConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T, reg *event.Registry) bustest.Harness {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cluster.Close)
		b, err := kafkabus.New(kafkabus.Config{Seeds: cluster.ListenAddrs(), Registry: reg, Partitions: 3})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		raw, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(raw.Close)
		return bustest.Harness{
			Bus:         b,
			DeadLetters: b,
			Dedup:       false,
			PublishRaw: func(ctx context.Context, typ, subject string, data []byte) error {
				tt, _ := event.ParseType(typ)
				return raw.ProduceSync(ctx, &kgo.Record{Topic: kafkabus.Topic(tt.Domain), Key: []byte(subject), Value: data}).FirstErr()
			},
		}
	})
}
