package platform

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/config"
)

// collector is an OTLP/HTTP receiver that keeps the paths it was sent to and the
// resource attributes and span names it decoded.
type collector struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
	attrs map[string]string
	spans []string
}

func newCollector(t *testing.T) *collector {
	c := &collector{attrs: map[string]string{}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.paths = append(c.paths, r.URL.Path)
		for _, rs := range req.ResourceSpans {
			for _, a := range rs.Resource.Attributes {
				c.attrs[a.Key] = a.Value.GetStringValue()
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					c.spans = append(c.spans, s.Name)
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		_, _ = w.Write(b)
	}))
	t.Cleanup(c.Close)
	return c
}

// processWith builds the wiring of a one-service system under env, as a
// service's process would find it.
func processWith(t *testing.T, env map[string]string) (*Process, error) {
	getenv := func(k string) string { return env[k] }
	cfg, err := config.Load("switchyard.yaml", []byte("version: 1\nservices:\n  orders:\n    listen: 127.0.0.1:0\n"), getenv)
	if err != nil {
		t.Fatal(err)
	}
	return newProcess(context.Background(), Options{Config: cfg, Service: "orders", Getenv: getenv})
}

// flush ends the process's tracing, sending what it holds.
func flush(t *testing.T, p *Process) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Tracing.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// The OpenTelemetry SDK's standard variables mean in a Switchyard process what
// they mean in any other: the traces endpoint is a whole URL, the resource
// attributes join the service's own (never replacing its name), the sampler is
// the one named, and a disabled SDK records nothing.
func TestTheStandardOpenTelemetryVariablesWork(t *testing.T) {
	t.Parallel()
	t.Run("traces endpoint and resource attributes", func(t *testing.T) {
		c := newCollector(t)
		p, err := processWith(t, map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://127.0.0.1:1", // the generic one loses to the traces one
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": c.URL + "/collector/traces",
			"OTEL_RESOURCE_ATTRIBUTES":           "deployment.environment.name=staging,team=check%20out,service.name=impostor",
		})
		if err != nil {
			t.Fatal(err)
		}
		_, span := p.Tracing.Tracer("test").Start(context.Background(), "place order")
		span.End()
		flush(t, p)
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.paths) != 1 || c.paths[0] != "/collector/traces" {
			t.Errorf("spans went to %v, want the traces endpoint's own path once", c.paths)
		}
		for k, want := range map[string]string{"deployment.environment.name": "staging", "team": "check out", "service.name": "orders"} {
			if c.attrs[k] != want {
				t.Errorf("resource attribute %s = %q, want %q", k, c.attrs[k], want)
			}
		}
		if len(c.spans) != 1 || c.spans[0] != "place order" {
			t.Errorf("collector received %v", c.spans)
		}
	})
	t.Run("samplers", func(t *testing.T) {
		sampled := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled, Remote: true,
		}))
		for _, tc := range []struct {
			sampler, arg      string
			root, underCaller bool // recorded as a new trace; under a sampled caller
		}{
			{"always_off", "", false, false},
			{"always_on", "", true, true},
			{"parentbased_always_off", "", false, true},
			{"traceidratio", "0", false, false},
			{"parentbased_traceidratio", "0", false, true},
			{"parentbased_traceidratio", "1", true, true},
		} {
			p, err := processWith(t, map[string]string{"OTEL_TRACES_SAMPLER": tc.sampler, "OTEL_TRACES_SAMPLER_ARG": tc.arg})
			if err != nil {
				t.Fatalf("%s: %v", tc.sampler, err)
			}
			_, root := p.Tracing.Tracer("test").Start(context.Background(), "root")
			_, child := p.Tracing.Tracer("test").Start(sampled, "child")
			if root.IsRecording() != tc.root || child.IsRecording() != tc.underCaller {
				t.Errorf("%s %q: records a root %v and under a sampled caller %v, want %v and %v",
					tc.sampler, tc.arg, root.IsRecording(), child.IsRecording(), tc.root, tc.underCaller)
			}
			if !root.SpanContext().TraceID().IsValid() {
				t.Errorf("%s: an unrecorded root has no trace id to log and pass on", tc.sampler)
			}
			flush(t, p)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		c := newCollector(t)
		p, err := processWith(t, map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": c.URL + "/v1/traces"})
		if err != nil {
			t.Fatal(err)
		}
		_, span := p.Tracing.Tracer("test").Start(context.Background(), "place order")
		span.End()
		flush(t, p)
		if span.IsRecording() || !span.SpanContext().TraceID().IsValid() {
			t.Errorf("disabled: recording %v, trace id %v", span.IsRecording(), span.SpanContext().TraceID())
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.paths) != 0 {
			t.Errorf("a disabled SDK exported to %v", c.paths)
		}
	})
	t.Run("bad values are refused by name", func(t *testing.T) {
		for env, want := range map[string]string{
			"OTEL_TRACES_SAMPLER=sometimes":  `OTEL_TRACES_SAMPLER: unknown sampler "sometimes"`,
			"OTEL_TRACES_SAMPLER_ARG=1.5":    `OTEL_TRACES_SAMPLER_ARG "1.5" is not a ratio`,
			"OTEL_RESOURCE_ATTRIBUTES=team":  `OTEL_RESOURCE_ATTRIBUTES: "team" is not key=value`,
			"OTEL_RESOURCE_ATTRIBUTES=a=%zz": `OTEL_RESOURCE_ATTRIBUTES: the value of "a" is not percent-encoded`,
		} {
			k, v, _ := strings.Cut(env, "=")
			vars := map[string]string{k: v}
			if k == "OTEL_TRACES_SAMPLER_ARG" {
				vars["OTEL_TRACES_SAMPLER"] = "traceidratio"
			}
			if _, err := processWith(t, vars); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v, want an error saying %s", env, err, want)
			}
		}
	})
}
