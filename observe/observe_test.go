package observe_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard/switchyard/observe"
)

func span(traceID, id, parent, service string, start time.Time) observe.Span {
	return observe.Span{TraceID: traceID, SpanID: id, ParentID: parent, Service: service, Name: "op", Kind: observe.Server,
		Start: start, End: start.Add(time.Millisecond)}
}

func tid(n int) string { return fmt.Sprintf("%032x", n) }
func sid(n int) string { return fmt.Sprintf("%016x", n) }

// The store forgets the oldest traces past its limits and refuses spans past a
// trace's own limit, counting them.
func TestTracesStayWithinTheirLimits(t *testing.T) {
	s := observe.NewTraces(observe.TraceLimits{Traces: 3, SpansPerTrace: 2, Spans: 100})
	now := time.Now()
	for i := 1; i <= 5; i++ {
		s.Add(span(tid(i), sid(i), "", "svc", now))
	}
	for i := 1; i <= 5; i++ {
		_, ok := s.Get(tid(i))
		if want := i > 2; ok != want {
			t.Errorf("trace %d kept %v, want %v", i, ok, want)
		}
	}
	s.Add(span(tid(5), sid(50), sid(5), "svc", now), span(tid(5), sid(51), sid(5), "svc", now))
	traces, spans, dropped := s.Stats()
	if traces != 3 || spans != 4 || dropped != 1 {
		t.Errorf("stats %d traces %d spans %d dropped; want 3, 4, 1", traces, spans, dropped)
	}
	got := s.List(observe.TraceQuery{Limit: 2})
	if len(got) != 2 || got[0].ID != tid(5) || got[1].ID != tid(4) {
		t.Errorf("newest two: %+v", got)
	}
	if got := s.List(observe.TraceQuery{Service: "other"}); len(got) != 0 {
		t.Errorf("service filter kept %d traces", len(got))
	}
}

// Log lines are kept in a ring, found by service, level and trace, and a follower
// waits for the next one.
func TestLogsAreFoundAndFollowed(t *testing.T) {
	h := observe.NewHub(observe.HubConfig{LogLines: 4})
	h.Log("orders", []byte(`{"time":"2026-11-22T10:00:00Z","level":"INFO","msg":"placed","trace_id":"`+tid(7)+`"}`))
	h.Log("orders", []byte(`{"time":"2026-11-22T10:00:01Z","level":"WARN","msg":"slow"}`))
	h.Log("payments", []byte(`{"time":"2026-11-22T10:00:02Z","level":"ERROR","msg":"declined","trace_id":"`+tid(7)+`"}`))
	h.Log("payments", []byte(`plain text, not JSON`))
	lines, cursor := h.Logs.Query(observe.LogQuery{Level: "warn"})
	if len(lines) != 2 || lines[0].Message != "slow" || lines[1].Message != "declined" {
		t.Errorf("warn and above: %+v", lines)
	}
	if lines, _ := h.Logs.Query(observe.LogQuery{TraceID: tid(7)}); len(lines) != 2 {
		t.Errorf("by trace: %+v", lines)
	}
	if lines, _ := h.Logs.Query(observe.LogQuery{Service: "payments"}); len(lines) != 2 || lines[1].Message != "plain text, not JSON" {
		t.Errorf("by service: %+v", lines)
	}
	h.Log("users", []byte(`{"level":"INFO","msg":"fifth"}`)) // pushes the first out of the ring of 4
	if lines, _ := h.Logs.Query(observe.LogQuery{}); len(lines) != 4 || lines[0].Message != "slow" {
		t.Errorf("ring of 4: %+v", lines)
	}

	// A follower (GET /api/logs?after=&wait=) is answered when a matching line comes.
	srv := httptest.NewServer(h)
	defer srv.Close()
	_, cursor = h.Logs.Query(observe.LogQuery{})
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("%s/api/logs?service=catalog&after=%d&wait=10s", srv.URL, cursor))
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		var page struct {
			Lines []observe.Line `json:"lines"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&page)
		if len(page.Lines) != 1 {
			got <- fmt.Sprintf("%d lines", len(page.Lines))
			return
		}
		got <- page.Lines[0].Message
	}()
	time.Sleep(100 * time.Millisecond)
	h.Log("orders", []byte(`{"level":"INFO","msg":"not for this follower"}`))
	h.Log("catalog", []byte(`{"level":"INFO","msg":"for the follower"}`))
	select {
	case m := <-got:
		if m != "for the follower" {
			t.Errorf("follower got %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the follower was not answered")
	}
}

// A real OpenTelemetry SDK exporting over OTLP/HTTP (protobuf) fills the hub; the
// hub's OTLP JSON, posted back, gives the same spans.
func TestTheHubReceivesWhatTheSDKExports(t *testing.T) {
	h := observe.NewHub(observe.HubConfig{})
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx := context.Background()
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(srv.URL+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", "orders"), attribute.String("service.instance.id", "127.0.0.1:1"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithResource(res))
	tr := tp.Tracer("t")
	rctx, root := tr.Start(ctx, "POST /v1/orders", trace.WithSpanKind(trace.SpanKindServer))
	_, child := tr.Start(rctx, "inventory POST", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("service.peer.name", "inventory"), attribute.Int("http.response.status_code", 503)))
	child.AddEvent("attempt failed", trace.WithAttributes(attribute.String("switchyard.attempt.outcome", "503")))
	child.SetStatus(codes.Error, "unavailable")
	child.End()
	root.End()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	id := root.SpanContext().TraceID().String()
	tr1, err := h.Trace(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr1.Spans) != 2 {
		t.Fatalf("%d spans", len(tr1.Spans))
	}
	c := tr1.Spans[1]
	if c.Service != "orders" || c.Kind != observe.Client || !c.Error || c.Status != "unavailable" || c.Attr("service.peer.name") != "inventory" ||
		c.Attr("http.response.status_code") != "503" || len(c.Events) != 1 || c.Events[0].Attributes["switchyard.attempt.outcome"] != "503" ||
		c.ParentID != root.SpanContext().SpanID().String() || c.Instance != "127.0.0.1:1" {
		t.Errorf("client span: %+v", c)
	}

	doc, err := observe.EncodeOTLPJSON(tr1.Spans)
	if err != nil {
		t.Fatal(err)
	}
	back, err := observe.DecodeOTLPJSON(doc)
	if err != nil {
		t.Fatal(err)
	}
	h2 := observe.NewHub(observe.HubConfig{})
	srv2 := httptest.NewServer(h2)
	defer srv2.Close()
	resp, err := http.Post(srv2.URL+"/v1/traces", "application/json", bytes.NewReader(doc))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST JSON: %v %v", resp, err)
	}
	resp.Body.Close()
	tr2, _ := h2.Trace(id)
	for i := range back {
		a, b, c := tr1.Spans[i], back[i], tr2.Spans[i]
		if a.SpanID != b.SpanID || a.Name != b.Name || a.Kind != b.Kind || !a.Start.Equal(b.Start) || a.Error != b.Error ||
			c.SpanID != a.SpanID || c.Attr("service.peer.name") != a.Attr("service.peer.name") {
			t.Errorf("span %d changed in the round trip:\n%+v\n%+v\n%+v", i, a, b, c)
		}
	}
}

// Bad exports and bad queries are RFC 9457 problems, and change nothing.
func TestTheHubRefusesBadInput(t *testing.T) {
	h := observe.NewHub(observe.HubConfig{MaxExportBytes: 1024})
	srv := httptest.NewServer(h)
	defer srv.Close()
	post := func(ctype, body string) int {
		resp, err := http.Post(srv.URL+"/v1/traces", ctype, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		ctype, body string
		want        int
	}{
		{"text/plain", "hello", 415},
		{"application/x-protobuf", "\xff\xff\xff", 400},
		{"application/json", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz","spanId":"1"}]}]}]}`, 400},
		{"application/json", `{"resourceSpans":`, 400},
		{"application/json", `{"resourceSpans":[]}` + strings.Repeat(" ", 2000), 413},
	} {
		if got := post(c.ctype, c.body); got != c.want {
			t.Errorf("POST %s %.40q: %d, want %d", c.ctype, c.body, got, c.want)
		}
	}
	for path, want := range map[string]int{
		"/api/traces/not-hex":         400,
		"/api/traces/" + tid(1):       404,
		"/api/traces?since=yesterday": 400,
		"/api/traces?limit=0":         400,
		"/api/logs?level=loud":        400,
		"/api/logs?trace=123":         400,
		"/api/logs?wait=2h":           400,
		"/api/logs?after=-1":          400,
		"/api/nothing":                404,
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("GET %s: %d %s, want %d problem+json", path, resp.StatusCode, resp.Header.Get("Content-Type"), want)
		}
	}
	if traces, _, _ := h.Traces.Stats(); traces != 0 {
		t.Errorf("bad exports stored %d traces", traces)
	}
}

// A Jaeger query API answer becomes the same spans.
func TestJaegerAnswersAreRead(t *testing.T) {
	doc := `{"data":[{"traceID":"abc","spans":[
	  {"traceID":"abc","spanID":"1","operationName":"GET /x","references":[],"startTime":1700000000000000,"duration":1500,
	   "tags":[{"key":"span.kind","type":"string","value":"server"}],"processID":"p1"},
	  {"traceID":"abc","spanID":"2","operationName":"users GET","references":[{"refType":"CHILD_OF","traceID":"abc","spanID":"1"}],
	   "startTime":1700000000000100,"duration":500,"tags":[{"key":"span.kind","value":"client"},{"key":"service.peer.name","value":"users"},{"key":"error","value":true}],
	   "logs":[{"timestamp":1700000000000200,"fields":[{"key":"event","value":"attempt failed"}]}],"processID":"p1"}],
	 "processes":{"p1":{"serviceName":"orders","tags":[]}}}]}`
	spans, err := observe.DecodeJaeger([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(spans) != 2 || spans[0].TraceID != strings.Repeat("0", 29)+"abc" || spans[1].ParentID != sid(1) ||
		spans[1].Kind != observe.Client || !spans[1].Error || spans[1].Service != "orders" || spans[1].Events[0].Name != "attempt failed" ||
		spans[0].Duration() != 1500*time.Microsecond {
		t.Errorf("%+v", spans)
	}
	if _, err := observe.DecodeJaeger([]byte(`{"data":`)); err == nil {
		t.Error("a truncated answer was read")
	}
}
