// Package discovery tells a caller where the instances of a service are.
//
// A [Registry] announces an instance and keeps it alive with heartbeats; a
// [Resolver] lists the live instances of a service and watches them change. This
// package holds the contract and the simplest implementation; the others are
// subpackages, so that a caller (rpc, balancer) depends on none of their clients.
// Each passes the same conformance suite (discoverytest):
//
//   - natskv, a NATS JetStream key-value bucket — the default, on the embedded
//     broker and on an external cluster alike (NATS 2.9 and later). Every instance
//     rewrites its key each heartbeat; a watcher drops an entry three heartbeats after
//     the server stored it, once the registry confirms it, and never while the
//     registry is unreachable.
//   - [Static], a fixed list (from configuration), which code may replace at run time.
//   - dns, A or SRV records, as a Kubernetes headless Service publishes them;
//     registration is the platform's job there, so it has no Registry.
//
// Instances carry a version and a weight, which the balancer uses for canary and
// weighted routing.
package discovery

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
)

// Instance is one running copy of a service.
type Instance struct {
	// Service is the service's name.
	Service string `json:"service"`
	// ID identifies the instance among its service's instances.
	ID string `json:"id"`
	// Addr is where it serves, host:port.
	Addr string `json:"addr"`
	// Version of the code it runs, e.g. "v2" for a canary.
	Version string `json:"version,omitempty"`
	// Weight is its relative share of traffic under weighted balancing [100].
	Weight int `json:"weight,omitempty"`
}

// DefaultWeight is the weight of an instance that declares none.
const DefaultWeight = 100

// Registry announces instances.
type Registry interface {
	// Register announces inst and keeps it alive until ctx ends, then withdraws it
	// and returns. It returns early, with an error, only if the first announcement
	// fails; later heartbeat failures are retried. Safe for concurrent use.
	Register(ctx context.Context, inst Instance) error
}

// Resolver finds the live instances of a service.
type Resolver interface {
	// Resolve returns the live instances of service, sorted by ID; an unknown
	// service has none (and no error). Safe for concurrent use.
	Resolve(ctx context.Context, service string) ([]Instance, error)

	// Watch sends the live instances of service at once and then whenever they
	// change. The channel is closed when ctx ends. A slow reader only ever misses
	// intermediate sets, never the latest.
	Watch(ctx context.Context, service string) (<-chan []Instance, error)
}

var serviceName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// Validate checks an instance before it is announced.
func (inst Instance) Validate() error {
	if !serviceName.MatchString(inst.Service) {
		return fmt.Errorf("discovery: service name %q is not lower-case letters, digits and dashes", inst.Service)
	}
	if !validID(inst.ID) {
		return fmt.Errorf("discovery: instance id %q is not letters, digits, '-' and '_'", inst.ID)
	}
	if _, _, err := net.SplitHostPort(inst.Addr); err != nil {
		return fmt.Errorf("discovery: instance address %q: %w", inst.Addr, err)
	}
	if inst.Weight < 0 {
		return errors.New("discovery: negative weight")
	}
	return nil
}

var instanceID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func validID(id string) bool { return instanceID.MatchString(id) }

// NewID returns a random instance id.
func NewID() string { return strings.ToLower(rand.Text()[:16]) }

// WeightOf returns the instance's weight, defaulting to DefaultWeight.
func (inst Instance) WeightOf() int {
	if inst.Weight == 0 {
		return DefaultWeight
	}
	return inst.Weight
}
