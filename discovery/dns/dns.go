// Package dns is discovery over DNS records — A or SRV, as a Kubernetes headless
// Service publishes them. Registration is the platform's job there, so it is a
// discovery.Resolver only.
package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/discovery/internal/watch"
)

// Config configures DNS resolution. Zero fields take the default in brackets.
type Config struct {
	// Name maps a service to the DNS name to look up; "%s" stands for the service,
	// e.g. "%s.shop.svc.cluster.local" for Kubernetes headless Services. Required.
	Name string
	// SRV looks up SRV records (_<SRVService>._tcp.<name>) for the ports; otherwise
	// A/AAAA records are combined with Port.
	SRV bool
	// SRVService is the SRV service label [http].
	SRVService string
	// Port of every instance when SRV is off [8080].
	Port int
	// Interval between lookups of a watched service [5s].
	Interval time.Duration
	// Resolver performs the lookups [net.DefaultResolver].
	Resolver *net.Resolver
}

// Resolver is a discovery.Resolver over DNS records. Each address (or SRV
// target:port) is one instance, with the default weight and no version.
type Resolver struct{ cfg Config }

// New returns a DNS resolver.
func New(cfg Config) (*Resolver, error) {
	if !strings.Contains(cfg.Name, "%s") {
		return nil, fmt.Errorf("dns: DNS name pattern %q lacks %%s for the service", cfg.Name)
	}
	if cfg.SRVService == "" {
		cfg.SRVService = "http"
	}
	if cfg.Port == 0 {
		cfg.Port = 8080
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	return &Resolver{cfg: cfg}, nil
}

// Resolve implements discovery.Resolver. A name that does not exist means no instances.
func (d *Resolver) Resolve(ctx context.Context, service string) ([]discovery.Instance, error) {
	name := fmt.Sprintf(d.cfg.Name, service)
	var addrs []string
	if d.cfg.SRV {
		_, srvs, err := d.cfg.Resolver.LookupSRV(ctx, d.cfg.SRVService, "tcp", name)
		if notFound(err) {
			return []discovery.Instance{}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("dns: SRV %s: %w", name, err)
		}
		for _, s := range srvs {
			hosts, err := d.cfg.Resolver.LookupHost(ctx, strings.TrimSuffix(s.Target, "."))
			if err != nil {
				continue // a target that does not resolve is not an instance
			}
			for _, h := range hosts {
				addrs = append(addrs, net.JoinHostPort(h, strconv.Itoa(int(s.Port))))
			}
		}
	} else {
		hosts, err := d.cfg.Resolver.LookupHost(ctx, name)
		if notFound(err) {
			return []discovery.Instance{}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("dns: lookup %s: %w", name, err)
		}
		for _, h := range hosts {
			addrs = append(addrs, net.JoinHostPort(h, strconv.Itoa(d.cfg.Port)))
		}
	}
	list := make([]discovery.Instance, 0, len(addrs))
	for _, a := range addrs {
		list = append(list, discovery.Instance{Service: service, ID: idFor(a), Addr: a})
	}
	slices.SortFunc(list, func(a, b discovery.Instance) int { return strings.Compare(a.ID, b.ID) })
	return list, nil
}

// idFor derives a stable instance id from an address.
func idFor(addr string) string {
	return strings.NewReplacer(".", "-", ":", "_", "[", "", "]", "").Replace(addr)
}

func notFound(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && dnsErr.IsNotFound
}

// Watch implements discovery.Resolver by polling every Interval.
func (d *Resolver) Watch(ctx context.Context, service string) (<-chan []discovery.Instance, error) {
	return watch.Poll(ctx, d.cfg.Interval, nil, func(ctx context.Context) ([]discovery.Instance, error) { return d.Resolve(ctx, service) }), nil
}
