package discoverytest

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// DNSServer is a small authoritative DNS server on a loopback UDP port, answering A
// and SRV queries from a zone the test edits. Point a net.Resolver at it with
// Resolver.
type DNSServer struct {
	conn *net.UDPConn
	mu   sync.Mutex
	a    map[string][]net.IP   // name (lower-case, with final dot) → addresses
	srv  map[string][]srvEntry // _service._tcp.name. → targets
}

type srvEntry struct {
	target string
	port   uint16
}

// NewDNSServer starts a server that stops when t ends.
func NewDNSServer(t testing.TB) *DNSServer {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &DNSServer{conn: conn, a: map[string][]net.IP{}, srv: map[string][]srvEntry{}}
	go s.serve()
	t.Cleanup(func() { _ = conn.Close() })
	return s
}

func fqdn(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) + "." }

// AddA adds an address record.
func (s *DNSServer) AddA(name string, ip net.IP) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.a[fqdn(name)] = append(s.a[fqdn(name)], ip.To4())
}

// RemoveA removes an address record.
func (s *DNSServer) RemoveA(name string, ip net.IP) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := s.a[fqdn(name)]
	for i, x := range list {
		if x.Equal(ip) {
			s.a[fqdn(name)] = append(list[:i:i], list[i+1:]...)
			return
		}
	}
}

// AddSRV adds an SRV record for _<service>._tcp.<name> pointing at target:port.
func (s *DNSServer) AddSRV(service, name, target string, port uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := fqdn("_" + service + "._tcp." + name)
	s.srv[k] = append(s.srv[k], srvEntry{fqdn(target), port})
}

// RemoveSRV removes an SRV record.
func (s *DNSServer) RemoveSRV(service, name, target string, port uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := fqdn("_" + service + "._tcp." + name)
	list := s.srv[k]
	for i, e := range list {
		if e.target == fqdn(target) && e.port == port {
			s.srv[k] = append(list[:i:i], list[i+1:]...)
			return
		}
	}
}

// Resolver returns a pure-Go resolver that asks only this server.
func (s *DNSServer) Resolver() *net.Resolver {
	addr := s.conn.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

func (s *DNSServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if resp := s.answer(buf[:n]); resp != nil {
			_, _ = s.conn.WriteToUDP(resp, from)
		}
	}
}

func (s *DNSServer) answer(req []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	name := strings.ToLower(q.Name.String())
	s.mu.Lock()
	addrs := append([]net.IP(nil), s.a[name]...)
	srvs := append([]srvEntry(nil), s.srv[name]...)
	_, nameKnown := s.a[name]
	_, srvKnown := s.srv[name]
	s.mu.Unlock()

	rcode := dnsmessage.RCodeSuccess
	if !nameKnown && !srvKnown {
		rcode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: rcode})
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	hdr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 0}
	switch q.Type {
	case dnsmessage.TypeA:
		for _, ip := range addrs {
			var a [4]byte
			copy(a[:], ip.To4())
			_ = b.AResource(hdr, dnsmessage.AResource{A: a})
		}
	case dnsmessage.TypeSRV:
		for _, e := range srvs {
			_ = b.SRVResource(hdr, dnsmessage.SRVResource{Priority: 10, Weight: 10, Port: e.port, Target: dnsmessage.MustNewName(e.target)})
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}
