// Package faultproxy puts a real TCP proxy between a caller and a callee and breaks
// the connection on demand — latency and jitter, a narrow pipe, resets, black
// holes, a peer gone — so resilience is tested against the network failures it
// exists for, not against mocks. It is Shopify's toxiproxy (v2) used as a library:
// tests take one with New, `switchyard faults run` puts one on an edge with Start.
package faultproxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Proxy forwards its listen address to an upstream address.
type Proxy struct {
	p *toxiproxy.Proxy

	mu   sync.Mutex
	down bool
}

// Start starts a proxy on listen (host:port; port 0 takes a free one) to upstream.
func Start(listen, upstream string) (*Proxy, error) {
	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.New(io.Discard))
	if strings.HasSuffix(listen, ":0") {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return nil, err
		}
		listen = ln.Addr().String()
		_ = ln.Close() // the proxy binds the address itself
	}
	p := toxiproxy.NewProxy(api, "proxy", listen, upstream)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("fault proxy on %s: %w", listen, err)
	}
	return &Proxy{p: p}, nil
}

// T is the part of testing.TB New uses (so that the runner's binary, which starts
// proxies with Start, does not link the testing package).
type T interface {
	Helper()
	Fatal(args ...any)
	Cleanup(func())
}

// New starts a proxy on a free loopback port to upstream (host:port) that stops
// when t ends.
func New(t T, upstream string) *Proxy {
	t.Helper()
	p, err := Start("127.0.0.1:0", upstream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// Close stops the proxy and closes every connection through it.
func (p *Proxy) Close() { p.p.Stop() }

// Addr is where callers connect.
func (p *Proxy) Addr() string { return p.p.Listen }

// toxics are the names add gives, for Heal.
var toxics = []string{"blackhole", "latency", "reset", "bandwidth"}

func (p *Proxy) add(name, typ string, attrs string) error {
	body := fmt.Sprintf(`{"name":%q,"type":%q,"stream":"downstream","toxicity":1,"attributes":{%s}}`, name, typ, attrs)
	_, err := p.p.Toxics.AddToxicJson(strings.NewReader(body))
	return err
}

// BlackHole makes the proxy swallow everything and answer nothing, holding
// connections open: the failure that only a timeout ends.
func (p *Proxy) BlackHole() error { return p.add("blackhole", "timeout", `"timeout":0`) }

// Latency delays every response by ms milliseconds.
func (p *Proxy) Latency(ms int) error { return p.Jitter(time.Duration(ms)*time.Millisecond, 0) }

// Jitter delays every response by latency, give or take up to jitter.
func (p *Proxy) Jitter(latency, jitter time.Duration) error {
	return p.add("latency", "latency", fmt.Sprintf(`"latency":%d,"jitter":%d`, latency.Milliseconds(), jitter.Milliseconds()))
}

// Bandwidth narrows the responses to kbps kilobytes a second.
func (p *Proxy) Bandwidth(kbps int) error {
	return p.add("bandwidth", "bandwidth", fmt.Sprintf(`"rate":%d`, kbps))
}

// Reset makes the proxy reset connections (TCP RST) as soon as data flows.
func (p *Proxy) Reset() error { return p.add("reset", "reset_peer", `"timeout":0`) }

// Down closes every connection and refuses new ones, as a peer that is gone; Heal
// brings the proxy back on the same address.
func (p *Proxy) Down() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.down {
		p.p.Stop()
		p.down = true
	}
	return nil
}

// Heal removes every fault.
func (p *Proxy) Heal() error {
	for _, name := range toxics {
		_ = p.p.Toxics.RemoveToxic(context.Background(), name)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		if err := p.p.Start(); err != nil {
			return fmt.Errorf("fault proxy: back on %s: %w", p.p.Listen, err)
		}
		p.down = false
	}
	return nil
}

// Cut closes every connection through the proxy at once, as a peer that crashed
// would leave them, and goes on accepting new ones on the same address.
func (p *Proxy) Cut() error {
	p.p.Stop()
	return p.p.Start()
}
