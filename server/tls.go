package server

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"
)

// A server with a TLS configuration takes TLS and plain HTTP on its one port: the
// first byte a client sends tells them apart (a TLS handshake starts with 0x16, a
// handshake record; an HTTP request with a method's letter). So /livez, /readyz and
// /metrics stay reachable by probes and scrapers that hold no certificate, while the
// application decides what a request without TLS may do (under mutual TLS,
// nothing: see platform).

// recordHandshake is the first byte of a TLS connection.
const recordHandshake = 0x16

// sniffing is a listener handing out TLS connections and plain ones, as each
// connection's first byte says. Each new connection's first byte is awaited in a
// goroutine of its own, for at most timeout, so that a slow client holds up nobody.
type sniffing struct {
	net.Listener
	tls     *tls.Config
	timeout time.Duration

	start  sync.Once
	conns  chan net.Conn
	failed chan error
	closed chan struct{}
	close  sync.Once
}

func newSniffing(ln net.Listener, cfg *tls.Config, timeout time.Duration) *sniffing {
	return &sniffing{Listener: ln, tls: cfg, timeout: timeout,
		conns: make(chan net.Conn), failed: make(chan error, 1), closed: make(chan struct{})}
}

// Accept returns the next connection whose first byte has arrived.
func (l *sniffing) Accept() (net.Conn, error) {
	l.start.Do(func() { go l.accept() })
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.failed:
		return nil, err
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close stops accepting; connections being sniffed are closed.
func (l *sniffing) Close() error {
	l.close.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

func (l *sniffing) accept() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			select {
			case l.failed <- err:
			case <-l.closed:
			}
			return
		}
		go l.sniff(c)
	}
}

func (l *sniffing) sniff(c net.Conn) {
	var first [1]byte
	_ = c.SetReadDeadline(time.Now().Add(l.timeout))
	if _, err := c.Read(first[:]); err != nil {
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	var conn net.Conn = &peeked{Conn: c, first: first[0], pending: true}
	if first[0] == recordHandshake {
		conn = tls.Server(conn, l.tls)
	}
	select {
	case l.conns <- conn:
	case <-l.closed:
		_ = c.Close()
	}
}

// peeked is a connection whose first byte was read already and is read again first.
type peeked struct {
	net.Conn
	first   byte
	pending bool
}

func (p *peeked) Read(b []byte) (int, error) {
	if p.pending && len(b) > 0 {
		p.pending = false
		b[0] = p.first
		return 1, nil
	}
	return p.Conn.Read(b)
}
