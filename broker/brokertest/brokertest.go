// Package brokertest gives tests NATS servers to run against: an embedded JetStream
// server always, and the external server named by SWITCHYARD_TEST_NATS when set (a
// named server that cannot be reached fails the test; it never skips silently).
package brokertest

import (
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

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
