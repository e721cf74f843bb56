package natskv_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/broker/brokertest"
	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/discovery/discoverytest"
	"github.com/switchyard/switchyard/discovery/natskv"
)

func TestKVConformance(t *testing.T) {
	t.Parallel()
	for _, target := range brokertest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			t.Parallel()
			discoverytest.Run(t, func(t *testing.T) discoverytest.Harness {
				const heartbeat = 200 * time.Millisecond
				bucket := "sytest_" + discovery.NewID()
				open := func(t testing.TB) *natskv.KV {
					nc := brokertest.Connect(t, target.URL)
					js, _ := jetstream.New(nc)
					kv, err := natskv.New(context.Background(), js, natskv.Config{Bucket: bucket, Heartbeat: heartbeat})
					if err != nil {
						t.Fatal(err)
					}
					return kv
				}
				resolver := open(t)
				t.Cleanup(func() {
					nc := brokertest.Connect(t, target.URL)
					js, _ := jetstream.New(nc)
					_ = js.DeleteKeyValue(context.Background(), bucket)
				})
				return discoverytest.Harness{
					Resolver: resolver,
					Expiry:   resolver.Expiry(),
					Metadata: true,
					Announce: func(t testing.TB, inst discovery.Instance) (discovery.Instance, func(), func()) {
						// Each instance has a connection of its own, as a process would;
						// closing it is a crash: no heartbeat, no goodbye.
						nc := brokertest.Connect(t, target.URL)
						js, _ := jetstream.New(nc)
						reg, err := natskv.New(context.Background(), js, natskv.Config{Bucket: bucket, Heartbeat: heartbeat})
						if err != nil {
							t.Fatal(err)
						}
						ctx, cancel := context.WithCancel(context.Background())
						done := make(chan struct{})
						go func() { defer close(done); _ = reg.Register(ctx, inst) }()
						t.Cleanup(func() { cancel(); <-done })
						withdraw := func() { cancel(); <-done }
						crash := func() { nc.Close(); cancel(); <-done }
						return inst, withdraw, crash
					},
				}
			})
		})
	}
}
