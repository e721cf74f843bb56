package gateway_test

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/gateway"
)

// TestLoadIsShedBeforeLatencyCollapses floods a gateway in front of a backend that
// can work on 4 requests at a time, 10 ms each: beyond that, requests queue and
// latency climbs with concurrency. The adaptive limit must notice and refuse the
// excess with 503 + Retry-After instead of queueing it.
func TestLoadIsShedBeforeLatencyCollapses(t *testing.T) {
	slots := make(chan struct{}, 4)
	var served atomic.Int64
	be := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		slots <- struct{}{}
		time.Sleep(10 * time.Millisecond)
		<-slots
		served.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	reg := prometheus.NewRegistry()
	g := newGateway(t, gateway.Config{
		Routes:   []gateway.Route{{Prefix: "/api/v1/products", Auth: gateway.AuthNone, Upstream: upstream(t, "catalog", discovery.Instance{Addr: be})}},
		Shedding: gateway.Shedding{MinLimit: 2, MaxLimit: 256, InitialLimit: 64},
		Metrics:  reg,
	})
	url := serve(t, g, nil) + "/api/v1/products"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	do := func() (int, string) {
		resp, err := client.Get(url)
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	// A calm second first, so the limiter learns what a healthy answer takes.
	for start := time.Now(); time.Since(start) < time.Second; {
		do()
	}
	var shed, ok atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(3 * time.Second)
	for range 64 {
		wg.Go(func() {
			for time.Now().Before(stop) {
				switch code, retry := do(); code {
				case http.StatusServiceUnavailable:
					if retry == "" {
						t.Error("shed without Retry-After")
					}
					shed.Add(1)
				case http.StatusNoContent:
					ok.Add(1)
				default:
					t.Errorf("status %d", code)
				}
			}
		})
	}
	wg.Wait()
	limit := gauge(t, reg, "gateway_concurrency_limit")
	t.Logf("64 clients for 3s: %d served, %d shed; concurrency limit now %.0f (started at 64)", ok.Load(), shed.Load(), limit)
	if shed.Load() == 0 {
		t.Error("nothing was shed although latency climbed with concurrency")
	}
	if limit >= 64 {
		t.Errorf("the concurrency limit did not come down: %.0f", limit)
	}
	if rejected := counter(t, reg, "gateway_rejected_total", "reason", "shed"); rejected != float64(shed.Load()) {
		t.Errorf("gateway_rejected_total{reason=shed} = %v, want %d", rejected, shed.Load())
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// counter is the value of the counter name whose label has value.
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func httptestServer(t *testing.T, h http.Handler) string {
	srv := newServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}
