// Package brokertest gives tests NATS servers to run against: an embedded JetStream
// server always, and the external server named by SWITCHYARD_TEST_NATS when set (a
// named server that cannot be reached fails the test; it never skips silently).
package brokertest

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchyard/switchyard/broker"
)

// NATSEnv names the variable pointing the suites at an external NATS server.
const NATSEnv = "SWITCHYARD_TEST_NATS"

// Target is one NATS server a test runs against.
type Target struct {
	// Name is "embedded" or "external"; it names the subtest.
	Name string
	// URL connects to it, credentials included.
	URL string
}

// Embedded starts a private embedded server (random port, temporary storage) that
// stops when t ends, and returns its URL.
func Embedded(t testing.TB) string {
	t.Helper()
	b, err := broker.Start(broker.Config{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Shutdown)
	return b.URL()
}

// Targets returns the embedded server and, when SWITCHYARD_TEST_NATS is set, the
// external one (checked reachable).
func Targets(t testing.TB) []Target {
	t.Helper()
	targets := []Target{{Name: "embedded", URL: Embedded(t)}}
	if url := os.Getenv(NATSEnv); url != "" {
		nc, err := nats.Connect(url, nats.Timeout(5*time.Second))
		if err != nil {
			t.Fatalf("%s names a NATS server that cannot be reached: %v", NATSEnv, err)
		}
		nc.Close()
		targets = append(targets, Target{Name: "external", URL: url})
	}
	return targets
}

// Connect connects to url and closes the connection when t ends.
func Connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Cluster starts a private JetStream cluster of n nodes on loopback ports (in this
// process, from the nats-server library), each storing in its own temporary
// directory, and waits until a stream can be placed on all of them. It returns the
// nodes (named n1, n2, ...; each stops when t ends, or earlier by Shutdown) and the
// client URL listing all of them.
func Cluster(t testing.TB, n int) ([]*broker.Broker, string) {
	t.Helper()
	token := rand.Text()
	routes := make([]string, n)
	for i := range routes {
		routes[i] = freeAddr(t)
	}
	nodes := make([]*broker.Broker, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range nodes {
		others := slices.Delete(slices.Clone(routes), i, i+1)
		dir := filepath.Join(t.TempDir(), "js")
		wg.Go(func() { // nodes start together: each waits for its routes
			nodes[i], errs[i] = broker.Start(broker.Config{Name: fmt.Sprintf("n%d", i+1), StoreDir: dir,
				Token: token, Cluster: &broker.Cluster{Name: "switchyard", Listen: routes[i], Routes: others}})
		})
	}
	wg.Wait()
	var urls []string
	for i, node := range nodes {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		t.Cleanup(node.Shutdown)
		urls = append(urls, node.URL())
	}
	url := strings.Join(urls, ",")
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "probe", Subjects: []string{"probe.>"}, Replicas: n, Storage: jetstream.MemoryStorage})
		if err == nil {
			err = js.DeleteStream(ctx, "probe")
		}
		cancel()
		if err == nil {
			return nodes, url
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %d-node JetStream cluster could not place a stream on every node within 30s: %v", n, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Leader names the node leading a stream's replicas.
func Leader(t testing.TB, url, stream string) string {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatalf("stream %s has no leader", stream)
	}
	return info.Cluster.Leader
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().String()
}
