package bench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/observe"
	"github.com/switchyard/switchyard/store"
)

// exportRequest is an OTLP request of n spans as the SDK writes it: the bytes a
// service sends the hub.
func exportRequest(b *testing.B, n int) []byte {
	b.Helper()
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := new(bytes.Buffer)
		_, _ = buf.ReadFrom(r.Body)
		body = buf.Bytes()
	}))
	defer srv.Close()
	ctx := context.Background()
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(srv.URL+"/v1/traces"))
	if err != nil {
		b.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithMaxExportBatchSize(n)),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "orders"))))
	tr := tp.Tracer("bench")
	for i := range n {
		_, s := tr.Start(ctx, "POST /v2/orders", trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
			attribute.String("http.route", "/v2/orders"), attribute.Int("http.response.status_code", 201),
			attribute.String("request.id", fmt.Sprint(i))))
		s.End()
	}
	if err := tp.Shutdown(ctx); err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkHubExport: what the hub costs per OTLP export of 512 spans, against
// protobuf decoding alone (the floor any OTLP receiver pays).
func BenchmarkHubExport(b *testing.B) {
	body := exportRequest(b, 512)
	b.Run("raw/proto-unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var req coltracepb.ExportTraceServiceRequest
			if err := proto.Unmarshal(body, &req); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(512*b.N)/b.Elapsed().Seconds(), "spans/s")
	})
	b.Run("hub/ingest", func(b *testing.B) {
		h := observe.NewHub(observe.HubConfig{})
		b.ReportAllocs()
		for b.Loop() {
			w := httptest.NewRecorder()
			r := httptest.NewRequest("POST", "/v1/traces", bytes.NewReader(body))
			r.Header.Set("Content-Type", "application/x-protobuf")
			h.ServeHTTP(w, r)
			if w.Code != 200 {
				b.Fatal(w.Code, w.Body.String())
			}
		}
		b.ReportMetric(float64(512*b.N)/b.Elapsed().Seconds(), "spans/s")
	})
}

// BenchmarkTracedStatement: one INSERT inside a sampled request span on SQLite,
// untraced and with database spans on (otelsql) — the price of seeing the
// databases in the diagrams.
func BenchmarkTracedStatement(b *testing.B) {
	mig := fstest.MapFS{"00001_t.sql": {Data: []byte("-- +goose Up\nCREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);\n")}}
	for _, traced := range []bool{false, true} {
		name := "untraced"
		if traced {
			name = "database-spans"
		}
		b.Run(name, func(b *testing.B) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter(), sdktrace.WithBatchTimeout(time.Second)))
			defer func() { _ = tp.Shutdown(context.Background()) }()
			cfg := store.Config{URL: "sqlite:" + filepath.Join(b.TempDir(), "t.db"), Migrations: mig}
			if traced {
				cfg.Tracing = tp
			}
			db, err := store.Open(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			ctx, span := tp.Tracer("bench").Start(context.Background(), "request")
			defer span.End()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := db.ExecContext(ctx, "INSERT INTO t (v) VALUES ($1)", "x"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
