package gateway_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/gateway"
)

// connCounter serves h and counts the connections it accepts.
func connCounter(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int64) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func TestWireKeepsConnectionsAliveAndStreams(t *testing.T) {
	srv, conns := connCounter(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		if r.URL.Query().Get("stream") != "" {
			f := w.(http.Flusher)
			for i := range 3 {
				_, _ = io.WriteString(w, strings.Repeat(string(rune('a'+i)), 10))
				f.Flush()
			}
			return
		}
		_, _ = io.WriteString(w, strings.Repeat("x", int(n)))
	}))
	wire := &gateway.Wire{}
	client := &http.Client{Transport: wire}
	for i := range 20 {
		// Bodies with a length, chunked bodies and empty ones, on one connection.
		var body io.Reader = strings.NewReader(strings.Repeat("b", i*100))
		size := int64(i * 100)
		if i%2 == 1 {
			body, size = io.MultiReader(body), -1
		}
		req, _ := http.NewRequest(http.MethodPost, srv.URL, body)
		req.ContentLength = size
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(got) != i*100 {
			t.Fatalf("request %d: echoed %d bytes, want %d", i, len(got), i*100)
		}
	}
	resp, err := client.Get(srv.URL + "?stream=1")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != strings.Repeat("a", 10)+strings.Repeat("b", 10)+strings.Repeat("c", 10) {
		t.Fatalf("streamed body %q", got)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("21 sequential requests used %d connections, want 1", n)
	}

	// A body closed before its end cannot be skipped safely: its connection is not
	// reused.
	resp, _ = client.Get(srv.URL + "?stream=1")
	_, _ = resp.Body.Read(make([]byte, 1))
	resp.Body.Close()
	resp, _ = client.Get(srv.URL + "?stream=1")
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if n := conns.Load(); n != 2 {
		t.Errorf("after an abandoned body: %d connections, want 2", n)
	}
}

func TestWireRetriesAConnectionTheServerClosed(t *testing.T) {
	srv, conns := connCounter(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	client := &http.Client{Transport: &gateway.Wire{}}
	get := func() {
		t.Helper()
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	get()
	srv.CloseClientConnections() // the server drops its idle keep-alive connection
	time.Sleep(50 * time.Millisecond)
	get() // the pooled connection is dead; the request goes out again on a new one
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestWireHonoursTheContext(t *testing.T) {
	release := make(chan struct{})
	srv, _ := connCounter(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	start := time.Now()
	_, err := (&gateway.Wire{}).RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("gave up after %s", el)
	}
}

func TestWireRefusesMalformedAnswers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = http.ReadRequest(bufio.NewReader(c))
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: banana\r\n\r\n")
			}()
		}
	}()
	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String(), nil)
	if _, err := (&gateway.Wire{}).RoundTrip(req); err == nil {
		t.Fatal("a malformed answer was accepted")
	}
}

func TestWebSocketPassesThrough(t *testing.T) {
	is := newIssuer(t)
	echo := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			_ = c.Write(r.Context(), typ, append([]byte(r.Header.Get("X-User-Id")+": "), msg...))
		}
	}))
	g := newGateway(t, gateway.Config{Verifier: is.verifier(t), Routes: []gateway.Route{{
		Prefix: "/api/v1/notifications", Auth: gateway.AuthRequired, Streaming: true,
		Upstream: upstream(t, "notifications", discovery.Instance{Addr: echo}),
	}}})
	url := strings.Replace(serve(t, g, nil), "http", "ws", 1) + "/api/v1/notifications"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// Without a token the handshake is refused.
	if _, resp, err := websocket.Dial(ctx, url, nil); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous handshake: %v", err)
	}
	// A page of another site may not open one with the user's token (the echo
	// server, which checks Origin against its Host, would refuse it too late: the
	// gateway answers first, and passes no Origin on).
	token := "?access_token=" + is.token(t, is.claims("ann"))
	evil := &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}}
	if _, resp, err := websocket.Dial(ctx, url+token, evil); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site handshake: %v %v", resp, err)
	}
	// The gateway's own pages may (and the request goes on without Origin).
	own := &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {strings.Replace(url[:strings.Index(url, "/api")], "ws", "http", 1)}}}
	if c, _, err := websocket.Dial(ctx, url+token, own); err != nil {
		t.Fatalf("same-origin handshake: %v", err)
	} else {
		c.CloseNow()
	}
	// Browsers pass the token in the query.
	c, _, err := websocket.Dial(ctx, url+token, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for _, m := range []string{"hello", "again"} {
		if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "ann: "+m {
			t.Errorf("echo %q, want %q", got, "ann: "+m)
		}
	}
}
