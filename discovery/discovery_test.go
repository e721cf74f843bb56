package discovery_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/broker/brokertest"
	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/discovery/discoverytest"
)

func TestKVConformance(t *testing.T) {
	t.Parallel()
	for _, target := range brokertest.Targets(t) {
		t.Run(target.Name, func(t *testing.T) {
			t.Parallel()
			discoverytest.Run(t, func(t *testing.T) discoverytest.Harness {
				const heartbeat = 200 * time.Millisecond
				bucket := "sytest_" + discovery.NewID()
				open := func(t testing.TB) *discovery.KV {
					nc := brokertest.Connect(t, target.URL)
					js, _ := jetstream.New(nc)
					kv, err := discovery.NewKV(context.Background(), js, discovery.KVConfig{Bucket: bucket, Heartbeat: heartbeat})
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
						reg, err := discovery.NewKV(context.Background(), js, discovery.KVConfig{Bucket: bucket, Heartbeat: heartbeat})
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

func TestStaticConformance(t *testing.T) {
	t.Parallel()
	discoverytest.Run(t, func(t *testing.T) discoverytest.Harness {
		s := discovery.NewStatic()
		return discoverytest.Harness{
			Resolver: s,
			Metadata: true,
			Announce: func(t testing.TB, inst discovery.Instance) (discovery.Instance, func(), func()) {
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { defer close(done); _ = s.Register(ctx, inst) }()
				t.Cleanup(func() { cancel(); <-done })
				stop := func() { cancel(); <-done }
				return inst, stop, stop // a static list has no liveness: a crash is a removal
			},
		}
	})
}

func TestDNSConformance(t *testing.T) {
	t.Parallel()
	for _, srv := range []bool{false, true} {
		name := "A records"
		if srv {
			name = "SRV records"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			discoverytest.Run(t, func(t *testing.T) discoverytest.Harness {
				zone := discoverytest.NewDNSServer(t)
				d, err := discovery.NewDNS(discovery.DNSConfig{
					Name: "%s.shop.svc.cluster.local", SRV: srv, Port: 8080,
					Interval: 100 * time.Millisecond, Resolver: zone.Resolver(),
				})
				if err != nil {
					t.Fatal(err)
				}
				return discoverytest.Harness{
					Resolver: d,
					Expiry:   100 * time.Millisecond,
					Announce: func(t testing.TB, inst discovery.Instance) (discovery.Instance, func(), func()) {
						host, port, _ := net.SplitHostPort(inst.Addr)
						ip := net.ParseIP(host)
						svcName := inst.Service + ".shop.svc.cluster.local"
						var remove func()
						resolved := inst
						resolved.Version, resolved.Weight = "", 0
						if srv {
							target := fmt.Sprintf("pod-%s.%s", strings.ReplaceAll(host, ".", "-"), svcName)
							var p uint16
							fmt.Sscan(port, &p)
							zone.AddA(target, ip)
							zone.AddSRV("http", svcName, target, p)
							remove = func() { zone.RemoveSRV("http", svcName, target, p) }
						} else {
							zone.AddA(svcName, ip)
							resolved.Addr = net.JoinHostPort(host, "8080")
							remove = func() { zone.RemoveA(svcName, ip) }
						}
						resolved.ID = strings.NewReplacer(".", "-", ":", "_").Replace(resolved.Addr)
						return resolved, remove, remove
					},
				}
			})
		})
	}
}

func TestInstancesAreValidatedBeforeTheyAreAnnounced(t *testing.T) {
	t.Parallel()
	s := discovery.NewStatic()
	for _, bad := range []discovery.Instance{
		{Service: "Orders", ID: "a", Addr: "127.0.0.1:1"},
		{Service: "orders", ID: "a.b", Addr: "127.0.0.1:1"},
		{Service: "orders", ID: "a", Addr: "no-port"},
		{Service: "orders", ID: "a", Addr: "127.0.0.1:1", Weight: -1},
	} {
		if err := s.Register(context.Background(), bad); err == nil {
			t.Errorf("registered %+v", bad)
		}
	}
	if _, err := discovery.NewDNS(discovery.DNSConfig{Name: "orders.svc"}); err == nil {
		t.Errorf("a DNS pattern without the %s placeholder was accepted", "%s")
	}
}
