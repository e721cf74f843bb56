// Package faultproxy puts a real TCP proxy between a caller and a callee and breaks
// the connection on demand — latency, resets, black holes — so resilience is tested
// against the network failures it exists for, not against mocks. It is Shopify's
// toxiproxy (v2) used as a library.
package faultproxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Proxy forwards 127.0.0.1:<port> to an upstream address.
type Proxy struct {
	p *toxiproxy.Proxy
}

// New starts a proxy to upstream (host:port) that stops when t ends.
func New(t testing.TB, upstream string) *Proxy {
	t.Helper()
	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.New(io.Discard))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // the proxy binds the address itself
	p := toxiproxy.NewProxy(api, "proxy", addr, upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("fault proxy: %v", err)
	}
	t.Cleanup(p.Stop)
	return &Proxy{p: p}
}

// Addr is where callers connect.
func (p *Proxy) Addr() string { return p.p.Listen }

func (p *Proxy) add(name, typ string, attrs string) error {
	body := fmt.Sprintf(`{"name":%q,"type":%q,"stream":"downstream","toxicity":1,"attributes":{%s}}`, name, typ, attrs)
	_, err := p.p.Toxics.AddToxicJson(strings.NewReader(body))
	return err
}

// BlackHole makes the proxy swallow everything and answer nothing, holding
// connections open: the dependency hangs.
func (p *Proxy) BlackHole() error { return p.add("blackhole", "timeout", `"timeout":0`) }

// Latency delays every response by ms milliseconds.
func (p *Proxy) Latency(ms int) error {
	return p.add("latency", "latency", fmt.Sprintf(`"latency":%d`, ms))
}

// Reset makes the proxy reset connections (TCP RST) as soon as data flows.
func (p *Proxy) Reset() error { return p.add("reset", "reset_peer", `"timeout":0`) }

// Heal removes every fault.
func (p *Proxy) Heal() {
	for _, name := range []string{"blackhole", "latency", "reset"} {
		_ = p.p.Toxics.RemoveToxic(context.Background(), name)
	}
}

// Cut closes every connection through the proxy at once, as a peer that crashed
// would leave them, and goes on accepting new ones on the same address.
func (p *Proxy) Cut() error {
	p.p.Stop()
	return p.p.Start()
}
