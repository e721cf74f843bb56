package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/bulkhead"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	"github.com/failsafe-go/failsafe-go/timeout"
	"github.com/sony/gobreaker/v2"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/resilience"
	"github.com/switchyard/switchyard/rpc"
)

// loopbackServer answers every request with a small JSON body, as a service would.
func loopbackServer(b *testing.B) string {
	b.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"prod-kbd-001","price":"139.00"}`)
	}))
	b.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func drive(b *testing.B, client *http.Client, url string) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkLoopback compares one GET through the full client stack (discovery,
// balancer, policies, headers; with and without span recording) with the same GET on
// a bare http.Client with the same tuned transport, against one loopback server.
func BenchmarkLoopback(b *testing.B) {
	addr := loopbackServer(b)
	b.Run("bare", func(b *testing.B) {
		drive(b, &http.Client{Transport: rpc.NewTransport(rpc.REST)}, "http://"+addr+"/v1/products/1")
	})
	stack := func(b *testing.B, tracing bool) {
		cfg := rpc.ClientConfig{Service: "catalog",
			Resolver: discovery.NewStatic(discovery.Instance{Service: "catalog", ID: "c1", Addr: addr})}
		if tracing {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
			b.Cleanup(func() { tp.Shutdown(context.Background()) })
			cfg.Tracer = tp.Tracer("bench")
		}
		c, err := rpc.NewClient(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		drive(b, c.HTTPClient(), c.BaseURL()+"/v1/products/1")
	}
	b.Run("stack", func(b *testing.B) { stack(b, false) })
	b.Run("stack+spans", func(b *testing.B) { stack(b, true) })
}

// BenchmarkPolicies measures the policies alone, no network: a call that succeeds at
// once, through nothing, through raw failsafe-go (retry, breaker, bulkhead, timeout),
// through our composition (the same plus deadline, budget, classification and
// translation), and through sony/gobreaker for reference.
func BenchmarkPolicies(b *testing.B) {
	// Each attempt answers with a fresh response, as a transport does.
	attempt := func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	}
	req, _ := http.NewRequest(http.MethodGet, "http://catalog/v1/products/1", nil)

	b.Run("bare", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resp, _ := attempt(req)
			_ = resp
		}
	})
	b.Run("failsafe-go", func(b *testing.B) {
		exec := failsafe.With[*http.Response](
			retrypolicy.NewBuilder[*http.Response]().WithMaxAttempts(3).WithBackoff(50*time.Millisecond, time.Second).Build(),
			circuitbreaker.NewBuilder[*http.Response]().WithFailureRateThreshold(0.5, 10, 10*time.Second).Build(),
			bulkhead.New[*http.Response](64),
			timeout.New[*http.Response](time.Second),
		)
		b.ReportAllocs()
		for b.Loop() {
			_, _ = exec.Get(func() (*http.Response, error) { return attempt(req) })
		}
	})
	b.Run("switchyard", func(b *testing.B) {
		p, err := resilience.New(resilience.Config{Dependency: "catalog"})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			resp, _ := p.Do(context.Background(), req, attempt)
			resp.Body.Close()
		}
	})
	b.Run("gobreaker", func(b *testing.B) {
		cb := gobreaker.NewCircuitBreaker[*http.Response](gobreaker.Settings{Name: "catalog"})
		b.ReportAllocs()
		for b.Loop() {
			_, _ = cb.Execute(func() (*http.Response, error) { return attempt(req) })
		}
	})
}
