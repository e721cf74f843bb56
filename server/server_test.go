package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/server"
	"github.com/switchyard/switchyard/telemetry"
)

func start(t *testing.T, cfg server.Config, app http.Handler) (*server.Server, string, context.CancelFunc, chan error) {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	s := server.New(cfg, app, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "# metrics\n") }), telemetry.Discard())
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(cancel)
	return s, "http://" + s.Addr().String(), cancel, done
}

func get(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func TestHealthEndpoints(t *testing.T) {
	t.Parallel()
	s, base, _, _ := start(t, server.Config{}, http.NotFoundHandler())
	if code, _ := get(t, base+"/livez"); code != 200 {
		t.Errorf("livez = %d", code)
	}
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("readyz with no checks = %d", code)
	}
	var dbDown sync.Mutex
	failing := false
	s.AddCheck("database", func(context.Context) error {
		dbDown.Lock()
		defer dbDown.Unlock()
		if failing {
			return errors.New("dial tcp 10.1.2.3:5432: connection refused")
		}
		return nil
	})
	dbDown.Lock()
	failing = true
	dbDown.Unlock()
	code, body := get(t, base+"/readyz")
	if code != 503 || body["checks"].(map[string]any)["database"] != "failing" {
		t.Errorf("readyz with a failing check = %d %v", code, body)
	}
	resp, _ := http.Get(base + "/readyz")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(b), "10.1.2.3") {
		t.Errorf("readyz exposes the failure's internals: %s", b)
	}
	if code, _ := get(t, base+"/metrics"); code != 200 {
		t.Errorf("metrics = %d", code)
	}
}

// A degraded part (calls served from the last known instances, say) keeps the
// instance in rotation and says so, with its reason, on /readyz.
func TestADegradedCheckKeepsTheInstanceReady(t *testing.T) {
	t.Parallel()
	s, base, _, _ := start(t, server.Config{}, http.NotFoundHandler())
	s.AddCheck("database", func(context.Context) error { return nil })
	s.AddCheck("discovery", func(context.Context) error {
		return server.Degraded("registry unreachable for 12s; calls use the instances last known")
	})
	code, body := get(t, base+"/readyz")
	checks, _ := body["checks"].(map[string]any)
	degraded, _ := body["degraded"].(map[string]any)
	if code != 200 || body["status"] != "degraded" || checks["discovery"] != "degraded" || checks["database"] != "ok" ||
		!strings.Contains(fmt.Sprint(degraded["discovery"]), "registry unreachable") {
		t.Errorf("readyz with a degraded check = %d %v; want 200, status degraded, the reason shown", code, body)
	}
}

// An in-flight request finishes after the drain starts; readiness turns false at
// once; the server then stops accepting and Run returns.
func TestDrainFinishesInFlightRequests(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{})
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	})
	_, base, cancel, done := start(t, server.Config{DrainDelay: 300 * time.Millisecond}, app)

	result := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			result <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(b)
	}()
	<-entered
	cancel()
	time.Sleep(50 * time.Millisecond)
	if code, body := get(t, base+"/readyz"); code != 503 || body["status"] != "draining" {
		t.Errorf("readyz while draining = %d %v", code, body)
	}
	close(release)
	if got := <-result; got != "done" {
		t.Errorf("in-flight request got %q", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the drain")
	}
	if _, err := http.Get(base + "/livez"); err == nil {
		t.Error("server still accepts connections after Run returned")
	}
}

// A request that never finishes cannot hold the process: Run returns after
// ShutdownTimeout, and shutdown hooks still run.
func TestDrainIsBounded(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {} // hung
	})
	s, base, cancel, done := start(t, server.Config{ShutdownTimeout: 200 * time.Millisecond}, app)
	hooked := make(chan struct{})
	s.OnShutdown(func(context.Context) { close(hooked) })
	go http.Get(base + "/hang")
	<-entered
	began := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Run hung on a stuck request")
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("drain took %s", took)
	}
	select {
	case <-hooked:
	default:
		t.Error("shutdown hook did not run")
	}
}

func TestOversizeHeadersAreRefused(t *testing.T) {
	t.Parallel()
	_, base, _, _ := start(t, server.Config{MaxHeaderBytes: 4 << 10}, http.NotFoundHandler())
	req, _ := http.NewRequest("GET", base+"/x", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 16<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", resp.StatusCode)
	}
}
