package discovery_test

import (
	"context"
	"testing"

	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/discovery/discoverytest"
)

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
}
