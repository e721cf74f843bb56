package kafkabus_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/switchyard/switchyard/api/events"
	"github.com/switchyard/switchyard/bus/kafkabus"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/cetest"
)

// Every event type the platform publishes, read off Kafka (kfake's cluster) as a
// raw record, is a valid CloudEvent to the CloudEvents Go SDK, with a dataschema
// naming the schema its data follows.
func TestEventsOffTheWireAreCloudEventsToTheSDK(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	reg, err := event.NewRegistry(events.Schemas)
	if err != nil {
		t.Fatal(err)
	}
	b, err := kafkabus.New(kafkabus.Config{Seeds: cluster.ListenAddrs(), Registry: reg, Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	sent := map[string]*event.Event{}
	topics := map[string]bool{}
	for _, e := range cetest.Examples(t, reg) {
		e.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		if err := b.Publish(context.Background(), e); err != nil {
			t.Fatalf("publish %s: %v", e.Type, err)
		}
		sent[e.ID] = &e
		topics[kafkabus.Topic(e.Domain())] = true
	}
	var names []string
	for topic := range topics {
		names = append(names, topic)
	}
	raw, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(names...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seen := map[string]bool{}
	for len(seen) < len(sent) {
		fetches := raw.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%d of %d events came off the wire", len(seen), len(sent))
		}
		fetches.EachRecord(func(r *kgo.Record) {
			var id struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(r.Value, &id)
			e, ok := sent[id.ID]
			if !ok {
				t.Fatalf("an event nobody sent: %s", r.Value)
			}
			seen[id.ID] = true
			cetest.Check(t, r.Value, e, events.Schemas)
		})
	}
	if len(sent) < 12 {
		t.Errorf("only %d event types checked", len(sent))
	}
}
