package telemetry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/telemetry"
)

// With an endpoint configured, spans leave the process over OTLP/HTTP to any
// collector; here a receiver that decodes what it gets.
func TestSpansAreExportedOverOTLPHTTP(t *testing.T) {
	t.Parallel()
	var (
		mu    sync.Mutex
		names []string
		svc   string
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "unexpected "+r.URL.Path, 400)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, a := range rs.Resource.Attributes {
				if a.Key == "service.name" {
					svc = a.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					names = append(names, s.Name)
				}
			}
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Write(b)
	}))
	defer receiver.Close()

	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(receiver.URL+"/v1/traces"))
	if err != nil {
		t.Fatal(err)
	}
	tracing, err := telemetry.NewTracing(context.Background(), telemetry.TraceConfig{Service: "orders", Exporters: []sdktrace.SpanExporter{exp}, SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tracing.Tracer("test").Start(context.Background(), "place order")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tracing.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(names) != 1 || names[0] != "place order" || svc != "orders" {
		t.Errorf("collector received spans %v from service %q", names, svc)
	}
}

func TestNoEndpointMeansNoExportButStillTraceIDs(t *testing.T) {
	t.Parallel()
	tracing, err := telemetry.NewTracing(context.Background(), telemetry.TraceConfig{Service: "x", SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer tracing.Shutdown(context.Background())
	_, span := tracing.Tracer("t").Start(context.Background(), "s")
	defer span.End()
	if !span.SpanContext().IsValid() || !span.SpanContext().IsSampled() {
		t.Error("spans are not recorded without an exporter; logs would lose their trace ids")
	}
}

func TestABadSampleRatioIsRefused(t *testing.T) {
	t.Parallel()
	if _, err := telemetry.NewTracing(context.Background(), telemetry.TraceConfig{SampleRatio: 1.5}); err == nil {
		t.Error("ratio 1.5 accepted")
	}
}
