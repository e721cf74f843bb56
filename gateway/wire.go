package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"time"
)

// Wire is the gateway's HTTP/1.1 client transport: a pool of kept-alive connections
// per upstream address, each request written straight onto a pooled connection and
// its response read back with the standard library's parser. It exists because
// net/http's Transport, general as it is (HTTP/2, proxies, TLS, two goroutines and
// channel hand-offs per connection and request), cost the gateway about half its
// throughput in the measurements recorded in bench/RESULTS.md; Wire keeps only what
// a gateway talking plain HTTP/1.1 to services on a trusted network needs.
//
// It streams request and response bodies (Content-Length or chunked), honours the
// request's context (a cancelled or expired context closes the connection), retries
// once on a fresh connection when a pooled one turns out to have been closed by the
// server before any byte of the answer arrived (and the request can be sent again),
// and never pools a connection whose response body was not read to its end.
//
// It does not do TLS, HTTP/2 or protocol upgrades: an upgrade request (WebSocket) is
// handed to Upgrades, a standard transport.
type Wire struct {
	// DialTimeout bounds connecting [2s].
	DialTimeout time.Duration
	// MaxIdlePerHost connections are kept per address [256].
	MaxIdlePerHost int
	// IdleTimeout closes a connection idle for longer [90s].
	IdleTimeout time.Duration
	// Upgrades carries requests asking for a protocol upgrade [a standard transport].
	Upgrades http.RoundTripper

	once sync.Once
	mu   sync.Mutex
	idle map[string][]*wireConn
}

type wireConn struct {
	nc        net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
}

// errStale marks a failure on a reused connection before any answer arrived.
var errStale = errors.New("gateway: pooled connection closed by the upstream")

// aLongTimeAgo is a deadline in the past, which aborts a connection's pending I/O.
var aLongTimeAgo = time.Unix(1, 0)

func (w *Wire) init() {
	w.once.Do(func() {
		if w.DialTimeout <= 0 {
			w.DialTimeout = 2 * time.Second
		}
		if w.MaxIdlePerHost <= 0 {
			w.MaxIdlePerHost = 256
		}
		if w.IdleTimeout <= 0 {
			w.IdleTimeout = 90 * time.Second
		}
		if w.Upgrades == nil {
			w.Upgrades = &http.Transport{MaxIdleConnsPerHost: -1, DisableCompression: true}
		}
		w.idle = map[string][]*wireConn{}
	})
}

// RoundTrip implements http.RoundTripper.
func (w *Wire) RoundTrip(req *http.Request) (*http.Response, error) {
	w.init()
	if req.URL.Scheme != "http" {
		return nil, fmt.Errorf("gateway: the wire transport speaks plain http, not %q", req.URL.Scheme)
	}
	if req.Header.Get("Upgrade") != "" {
		return w.Upgrades.RoundTrip(req)
	}
	addr := req.URL.Host
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "80")
	}
	for {
		c, reused, err := w.conn(req.Context(), addr)
		if err != nil {
			return nil, err
		}
		resp, err := w.exchange(req, c, addr, reused)
		if errors.Is(err, errStale) && replayable(req) {
			if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
				if req.Body, err = req.GetBody(); err != nil {
					return nil, err
				}
			}
			continue
		}
		return resp, err
	}
}

func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// conn returns a pooled connection to addr, or a new one.
func (w *Wire) conn(ctx context.Context, addr string) (*wireConn, bool, error) {
	now := time.Now()
	w.mu.Lock()
	for list := w.idle[addr]; len(list) > 0; list = w.idle[addr] {
		c := list[len(list)-1]
		list[len(list)-1] = nil
		w.idle[addr] = list[:len(list)-1]
		if now.Sub(c.idleSince) < w.IdleTimeout {
			w.mu.Unlock()
			return c, true, nil
		}
		_ = c.nc.Close()
	}
	w.mu.Unlock()
	d := net.Dialer{Timeout: w.DialTimeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return &wireConn{nc: nc, br: bufio.NewReaderSize(nc, 8<<10), bw: bufio.NewWriterSize(nc, 8<<10)}, false, nil
}

// release pools c, or closes it when the pool for addr is full.
func (w *Wire) release(addr string, c *wireConn) {
	c.idleSince = time.Now()
	w.mu.Lock()
	if list := w.idle[addr]; len(list) < w.MaxIdlePerHost {
		w.idle[addr] = append(list, c)
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	_ = c.nc.Close()
}

// CloseIdleConnections closes every pooled connection.
func (w *Wire) CloseIdleConnections() {
	w.init()
	w.mu.Lock()
	idle := w.idle
	w.idle = map[string][]*wireConn{}
	w.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			_ = c.nc.Close()
		}
	}
}

// exchange writes req on c and reads the response head.
func (w *Wire) exchange(req *http.Request, c *wireConn, addr string, reused bool) (*http.Response, error) {
	ctx := req.Context()
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(aLongTimeAgo) })
	}
	fail := func(err error) (*http.Response, error) {
		stop()
		_ = c.nc.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	if err := writeRequest(c.bw, req, addr); err != nil {
		if reused && !errors.Is(err, errBody) {
			return fail(errStale)
		}
		return fail(err)
	}
	if reused {
		if _, err := c.br.Peek(1); err != nil {
			return fail(errStale)
		}
	}
	for {
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return fail(err)
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return fail(errors.New("gateway: unexpected protocol switch on the wire transport"))
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			continue // 100 Continue, 103 Early Hints: the final answer follows
		}
		keep := !resp.Close && !req.Close
		if resp.Body == http.NoBody || resp.Body == nil {
			w.finish(addr, c, stop, keep)
			return resp, nil
		}
		resp.Body = &wireBody{rc: resp.Body, w: w, c: c, addr: addr, stop: stop, keep: keep}
		return resp, nil
	}
}

// finish ends an exchange: the connection goes back to the pool when it is clean.
func (w *Wire) finish(addr string, c *wireConn, stop func() bool, keep bool) {
	if stop() && keep {
		w.release(addr, c)
		return
	}
	_ = c.nc.Close()
}

// errBody marks a failure to read the request body (the client's side, not the
// upstream's), which must not be mistaken for a stale connection.
var errBody = errors.New("gateway: reading the request body")

var crlf = []byte("\r\n")

// writeRequest writes req's head and body in HTTP/1.1 framing.
func writeRequest(bw *bufio.Writer, req *http.Request, addr string) error {
	host := req.Host
	if host == "" {
		host = addr
	}
	_, _ = bw.WriteString(req.Method)
	_ = bw.WriteByte(' ')
	_, _ = bw.WriteString(req.URL.RequestURI())
	_, _ = bw.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = bw.WriteString(host)
	_, _ = bw.Write(crlf)
	for k, vs := range req.Header {
		if k == "Host" || k == "Content-Length" || k == "Transfer-Encoding" || k == "Connection" {
			continue
		}
		for _, v := range vs {
			_, _ = bw.WriteString(k)
			_, _ = bw.WriteString(": ")
			_, _ = bw.WriteString(v)
			_, _ = bw.Write(crlf)
		}
	}
	if req.Close {
		_, _ = bw.WriteString("Connection: close\r\n")
	}
	hasBody := req.Body != nil && req.Body != http.NoBody
	switch {
	case hasBody && req.ContentLength > 0:
		_, _ = bw.WriteString("Content-Length: ")
		_, _ = bw.WriteString(strconv.FormatInt(req.ContentLength, 10))
		_, _ = bw.WriteString("\r\n\r\n")
		n, err := io.CopyN(bw, bodyReader{req.Body}, req.ContentLength)
		if err != nil {
			if errors.Is(err, io.EOF) && n < req.ContentLength {
				return fmt.Errorf("%w: %d of %d bytes", errBody, n, req.ContentLength)
			}
			return err
		}
	case hasBody:
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		cw := httputil.NewChunkedWriter(bw)
		if _, err := io.Copy(cw, bodyReader{req.Body}); err != nil {
			return err
		}
		_ = cw.Close()
		_, _ = bw.Write(crlf)
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		_, _ = bw.WriteString("Content-Length: 0\r\n\r\n")
	default:
		_, _ = bw.Write(crlf)
	}
	return bw.Flush()
}

// bodyReader tags errors from the request body so that they are told apart from
// errors writing to the upstream.
type bodyReader struct{ r io.Reader }

func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: %w", errBody, err)
	}
	return n, err
}

// wireBody is a response body that hands its connection back once read to the end.
type wireBody struct {
	rc   io.ReadCloser
	w    *Wire
	c    *wireConn
	addr string
	stop func() bool
	keep bool

	mu   sync.Mutex
	done bool
}

func (b *wireBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.end(true)
	}
	return n, err
}

// Close closes the connection unless the body was read to its end: what is left of
// an unread body cannot be skipped safely without reading it.
func (b *wireBody) Close() error {
	b.end(false)
	return nil
}

func (b *wireBody) end(clean bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	b.done = true
	if clean {
		b.w.finish(b.addr, b.c, b.stop, b.keep)
		return
	}
	b.stop()
	_ = b.c.nc.Close()
}
