package telemetry_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/switchyard/switchyard/telemetry"
)

type fixture struct {
	handler http.Handler
	logs    *bytes.Buffer
	spans   *tracetest.InMemoryExporter
	tracing *telemetry.Tracing
	metrics *telemetry.Metrics
}

func newFixture(t *testing.T, mux *http.ServeMux) *fixture {
	t.Helper()
	spans := tracetest.NewInMemoryExporter()
	tracing, err := telemetry.NewTracing(context.Background(), telemetry.TraceConfig{Service: "test", SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	tracing.Provider.RegisterSpanProcessor(sdktrace.NewSimpleSpanProcessor(spans))
	t.Cleanup(func() { _ = tracing.Shutdown(context.Background()) })
	logs := &bytes.Buffer{}
	metrics := telemetry.NewMetrics()
	mw := telemetry.Middleware(telemetry.HTTPConfig{
		Logger:  telemetry.NewLogger(logs, telemetry.LogConfig{Service: "test"}),
		Tracer:  tracing.Tracer("test"),
		Metrics: metrics,
	})
	return &fixture{handler: mw(mux), logs: logs, spans: spans, tracing: tracing, metrics: metrics}
}

func (f *fixture) logLines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(f.logs.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

func TestAPanicBecomesA500ProblemAndTheStackStaysInTheLog(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boom", func(http.ResponseWriter, *http.Request) { panic("nil map write in handler") })
	f := newFixture(t, mux)

	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, httptest.NewRequest("GET", "/boom", nil))

	if rec.Code != 500 || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("got %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if strings.Contains(rec.Body.String(), "nil map") || strings.Contains(rec.Body.String(), "goroutine") {
		t.Errorf("panic detail reached the client: %s", rec.Body)
	}
	if !strings.Contains(f.logs.String(), "nil map write in handler") || !strings.Contains(f.logs.String(), "telemetry_test.go") {
		t.Errorf("panic and stack missing from the log:\n%s", f.logs)
	}
}

func TestRequestIDsArePassedOnOrMinted(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	var seen string
	mux.HandleFunc("GET /x", func(_ http.ResponseWriter, r *http.Request) { seen = telemetry.RequestID(r.Context()) })
	f := newFixture(t, mux)

	for _, tc := range []struct{ name, sent, want string }{
		{"a well-formed id is kept", "abc-123_X.y", "abc-123_X.y"},
		{"an injected id is replaced", "a\nb\" injected", ""},
		{"an overlong id is replaced", strings.Repeat("a", 65), ""},
		{"no id gets one", "", ""},
	} {
		r := httptest.NewRequest("GET", "/x", nil)
		if tc.sent != "" {
			r.Header.Set(telemetry.RequestIDHeader, tc.sent)
		}
		rec := httptest.NewRecorder()
		f.handler.ServeHTTP(rec, r)
		got := rec.Header().Get(telemetry.RequestIDHeader)
		if got != seen || got == "" {
			t.Errorf("%s: response id %q, handler saw %q", tc.name, got, seen)
		}
		if tc.want != "" && got != tc.want {
			t.Errorf("%s: id = %q, want %q", tc.name, got, tc.want)
		}
		if tc.want == "" && got == tc.sent {
			t.Errorf("%s: kept %q", tc.name, got)
		}
	}
}

func TestSpansContinueTheCallersTraceAndNameTheRoute(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/users/{id}", func(http.ResponseWriter, *http.Request) {})
	f := newFixture(t, mux)

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	r := httptest.NewRequest("GET", "/v1/users/42", nil)
	r.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	f.handler.ServeHTTP(httptest.NewRecorder(), r)

	spans := f.spans.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	s := spans[0]
	if s.SpanContext.TraceID().String() != traceID || s.Parent.SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("span does not continue the caller's trace: %s parent %s", s.SpanContext.TraceID(), s.Parent.SpanID())
	}
	if s.Name != "GET /v1/users/{id}" {
		t.Errorf("span name = %q", s.Name)
	}
	lines := f.logLines(t)
	if len(lines) == 0 || lines[0]["trace_id"] != traceID || lines[0]["route"] != "/v1/users/{id}" || lines[0]["service"] != "test" {
		t.Errorf("access log lacks trace id, route or service: %v", lines)
	}
}

func TestMetricsCountRequestsByRouteNotByPath(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/products/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "missing" {
			http.NotFound(w, r)
		}
	})
	f := newFixture(t, mux)
	for _, p := range []string{"/v1/products/1", "/v1/products/2", "/v1/products/missing", "/nope/1", "/nope/2"} {
		f.handler.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	body := scrape(t, f.metrics)
	for _, want := range []string{
		`http_server_requests_total{code="200",method="GET",route="/v1/products/{id}"} 2`,
		`http_server_requests_total{code="404",method="GET",route="/v1/products/{id}"} 1`,
		`http_server_requests_total{code="404",method="GET",route="unmatched"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The duration histogram is OpenTelemetry's http.server.request.duration: by
	// method, route and status, never by path.
	if n := testutil.CollectAndCount(f.metrics.Registry, "http_server_request_duration_seconds"); n != 3 {
		t.Errorf("%d duration series, want 3 (a route's two statuses, and unmatched)", n)
	}
	if want := `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="404",http_route="unmatched"} 2`; !strings.Contains(body, want) {
		t.Errorf("metrics lack %s", want)
	}
}

func scrape(t *testing.T, m *telemetry.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

func TestSecretsNeverReachTheLog(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := telemetry.NewLogger(&buf, telemetry.LogConfig{Service: "users"})
	log.Info("login", "email", "ann@example.com", "password", "hunter2hunter2", "access_token", "eyJhbGciOi", "Authorization", "Bearer x")
	out := buf.String()
	for _, secret := range []string{"hunter2hunter2", "eyJhbGciOi", "Bearer x"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q: %s", secret, out)
		}
	}
	if !strings.Contains(out, "ann@example.com") {
		t.Errorf("ordinary fields were dropped: %s", out)
	}
}

func TestLevelsFilter(t *testing.T) {
	t.Parallel()
	lvl, err := telemetry.ParseLevel("warn")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	log := telemetry.NewLogger(&buf, telemetry.LogConfig{Level: lvl, Text: true})
	log.Info("hidden")
	log.Warn("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), "shown") {
		t.Errorf("level filter wrong: %q", buf.String())
	}
	if _, err := telemetry.ParseLevel("chatty"); err == nil {
		t.Error("accepted an unknown level")
	}
}

// A WebSocket upgrade needs to hijack the connection through the middleware.
func TestHijackPassesThrough(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\nhello")
		_ = rw.Flush()
	})
	f := newFixture(t, mux)
	srv := httptest.NewServer(f.handler)
	defer srv.Close()

	conn, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	b, _ := io.ReadAll(br) // after a 101 the connection carries the new protocol
	if string(b) != "hello" {
		t.Errorf("upgraded stream = %q", b)
	}
}

func TestDiscardWritesNothing(t *testing.T) {
	t.Parallel()
	telemetry.Discard().Log(context.Background(), slog.LevelError, "x")
}
