package discovery_test

import (
	"context"
	"fmt"

	"github.com/switchyard/switchyard/discovery"
)

// A resolver tells where a service's instances are, and watches them change; a
// registry announces one for as long as its context lives. Static holds them in
// memory; natskv (a NATS key-value bucket) and dns are the platform's.
func ExampleStatic() {
	s := discovery.NewStatic()
	ctx, withdraw := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Register(ctx, discovery.Instance{Service: "seats", ID: "a", Addr: "10.0.0.7:8080"})
	}()
	watch, _ := s.Watch(context.Background(), "seats")
	for set := range watch {
		if len(set) == 1 {
			fmt.Println("seats at", set[0].Addr)
			break
		}
	}
	withdraw()
	<-done
	list, _ := s.Resolve(context.Background(), "seats")
	fmt.Println("after the withdrawal:", len(list), "instances")
	// Output:
	// seats at 10.0.0.7:8080
	// after the withdrawal: 0 instances
}
