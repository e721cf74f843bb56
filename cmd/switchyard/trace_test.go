package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/observe"
)

// orderTrace places one order through the gateway under a trace id the test picks
// (its traceparent header starts the trace), waits for the order to end, and returns
// the hub's copy of that trace once the spans stop arriving.
func (s *stack) orderTrace(t *testing.T) (traceID string, spans []observe.Span) {
	t.Helper()
	gw, _ := s.service("gateway")
	client := &http.Client{Timeout: 30 * time.Second}
	// The gateway may not see users yet just after start: register until it answers.
	waitUntil(t, "registration through the gateway", 10*time.Second, func() bool {
		resp, _ := exchange(t, client, "POST", gw+"/api/v1/auth/register", "", `{"email":"tracy@example.com","password":"correct-horse-battery","name":"Tracy"}`, nil)
		return resp.StatusCode == 201 || resp.StatusCode == 409
	})
	_, login := exchange(t, client, "POST", gw+"/api/v1/auth/login", "", `{"email":"tracy@example.com","password":"correct-horse-battery"}`, nil)
	token, _ := login["access_token"].(string)
	if token == "" {
		t.Fatalf("login: %v", login)
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	traceID = hex.EncodeToString(id)
	resp, order := exchange(t, client, "POST", gw+"/api/v1/orders", token,
		`{"items":[{"product_id":"prod-aud-001","quantity":1}],"payment":{"card_number":"4242424242424242"}}`,
		map[string]string{"Idempotency-Key": "trace-1", "traceparent": "00-" + traceID + "-00f067aa0ba902b7-01"})
	if resp.StatusCode != 201 {
		t.Fatalf("place order: %d %v", resp.StatusCode, order)
	}
	_, order = exchange(t, client, "GET", gw+"/api/v1/orders/"+order["id"].(string), token, "", map[string]string{"Prefer": "wait=10"})
	if order["status"] != "CONFIRMED" {
		t.Fatalf("order ended %v, want CONFIRMED", order["status"])
	}
	hub := s.read().Hub
	last, since := -1, time.Now()
	waitUntil(t, "the order's spans to stop arriving at the hub", 20*time.Second, func() bool {
		spans = hubTrace(t, hub, traceID)
		if len(spans) != last {
			last, since = len(spans), time.Now()
		}
		// Nothing new for 2.5 s: past the exporters' 1 s batching.
		return len(spans) > 0 && time.Since(since) > 2500*time.Millisecond
	})
	return traceID, spans
}

func hubTrace(t *testing.T, hub, id string) []observe.Span {
	t.Helper()
	resp, err := http.Get(hub + "/api/traces/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var tr observe.Trace
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		t.Fatal(err)
	}
	return tr.Spans
}

// continuity checks that one order's trace went through every hop: the gateway,
// orders, users, inventory and payments served their part of it; the relay of each
// service that published sent its events within it; every service that subscribes
// to an event of the trace consumed it within it; and no span but the test's own
// entry hangs from a parent missing from the trace. It names each hop missing.
func continuity(cfg *config.Config, spans []observe.Span) error {
	var problems []string
	ids := map[string]bool{"00f067aa0ba902b7": true} // the test client's span
	for _, s := range spans {
		ids[s.SpanID] = true
	}
	served := map[string]bool{}
	relayed := map[string]bool{}
	consumed := map[string]bool{}
	var published []string
	for _, s := range spans {
		if !ids[s.ParentID] {
			problems = append(problems, fmt.Sprintf("%s span %q hangs from parent %s, which is not in the trace", s.Service, s.Name, s.ParentID))
		}
		switch {
		case s.Kind == observe.Server:
			served[s.Service] = true
		case s.Kind == observe.Producer && s.Attr("messaging.operation.name") == "send":
			relayed[s.Service] = true
		case s.Kind == observe.Producer && s.Attr("cloudevents.event_type") != "":
			published = append(published, s.Service+" "+s.Attr("cloudevents.event_type"))
		case s.Kind == observe.Consumer:
			consumed[s.Service+" "+s.Attr("cloudevents.event_type")] = true
		}
	}
	for _, svc := range []string{"gateway", "orders", "users", "inventory", "payments"} {
		if !served[svc] {
			problems = append(problems, svc+" served no part of the trace")
		}
	}
	for _, p := range published {
		publisher, typ, _ := strings.Cut(p, " ")
		if !relayed[publisher] {
			problems = append(problems, publisher+"'s relay sent "+typ+" outside the trace")
		}
		for _, name := range cfg.ServiceNames() {
			if slices.Contains(cfg.Service(name).Subscriptions, typ) && !consumed[name+" "+typ] {
				problems = append(problems, name+" consumed "+typ+" outside the trace")
			}
		}
	}
	if len(published) == 0 {
		problems = append(problems, "no event was published within the trace")
	}
	slices.Sort(problems)
	problems = slices.Compact(problems)
	if len(problems) > 0 {
		return fmt.Errorf("the trace is broken:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

func builtinConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("switchyard.yaml", []byte(fullPlatform), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// One order placed through the gateway is one trace: gateway, orders, users,
// inventory, payments, each relay and every consumer continue the same trace.
func TestOneOrderIsOneTraceAcrossEveryHop(t *testing.T) {
	// An external OTLP/HTTP collector, named the standard way, gets every span too.
	collector := observe.NewHub(observe.HubConfig{})
	srv := httptest.NewServer(collector)
	defer srv.Close()
	s := startUp(t, fullPlatform, "OTEL_EXPORTER_OTLP_ENDPOINT="+srv.URL)
	id, spans := s.orderTrace(t)
	if err := continuity(builtinConfig(t), spans); err != nil {
		t.Fatalf("trace %s (%d spans): %v", id, len(spans), err)
	}
	if external, err := collector.Trace(id); err != nil || len(external.Spans) != len(spans) {
		t.Errorf("the external collector has %d of the trace's %d spans (%v)", len(external.Spans), len(spans), err)
	}
	services := map[string]bool{}
	for _, sp := range spans {
		services[sp.Service] = true
	}
	t.Logf("trace %s: %d spans from %v", id, len(spans), services)

	// switchyard logs --trace tells the order's story across the services.
	out, err := execIn(s.dir, "logs", "--trace", id).Output()
	if err != nil {
		t.Fatalf("switchyard logs --trace: %v", err)
	}
	for _, svc := range []string{"gateway", "orders", "inventory", "payments"} {
		if !strings.Contains(string(out), fmt.Sprintf("%-13s| ", svc)) {
			t.Errorf("no %s line in logs --trace:\n%s", svc, out)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !strings.Contains(line, id) {
			t.Errorf("a line of another trace: %s", line)
		}
	}
	// --service and --level narrow it; bad flags are refused, naming the flag.
	out, _ = execIn(s.dir, "logs", "--service", "orders", "--level", "info", "-n", "3").Output()
	if n := strings.Count(string(out), "orders       | "); n != 3 {
		t.Errorf("logs --service orders -n 3 printed %d orders lines:\n%s", n, out)
	}
	for _, bad := range [][]string{{"--level", "loud"}, {"--trace", "xyz"}, {"-n", "0"}} {
		cmd := execIn(s.dir, append([]string{"logs"}, bad...)...)
		msg, err := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(msg), bad[0]) {
			t.Errorf("logs %v: %v %s; want exit 2 naming %s", bad, err, msg, bad[0])
		}
	}
}

// The same order with one hop — inventory — neither reading nor passing on trace
// context (OTEL_PROPAGATORS=none for it alone): the continuity check must fail and
// name inventory.
func TestATraceIsBrokenWhereAHopDropsTheContext(t *testing.T) {
	s := startUp(t, fullPlatform, "INVENTORY_OTEL_PROPAGATORS=none")
	_, spans := s.orderTrace(t)
	err := continuity(builtinConfig(t), spans)
	if err == nil {
		t.Fatal("the continuity check passed with inventory dropping the trace context")
	}
	if !strings.Contains(err.Error(), "inventory served no part of the trace") {
		t.Fatalf("the check failed, but not at inventory: %v", err)
	}
	t.Logf("as expected: %v", err)
}

// logs --follow prints the lines of a running stack as they arrive, filtered, until
// it is stopped.
func TestLogsFollow(t *testing.T) {
	hub := observe.NewHub(observe.HubConfig{})
	srv := httptest.NewServer(hub)
	defer srv.Close()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ".switchyard"), 0o700); err != nil {
		t.Fatal(err)
	}
	stack := fmt.Sprintf(`{"pid":1,"data_dir":%q,"hub":%q,"broker":{"kind":"nats"},"services":[]}`, filepath.Join(dir, ".switchyard"), srv.URL)
	if err := os.WriteFile(filepath.Join(dir, ".switchyard", "stack.json"), []byte(stack), 0o600); err != nil {
		t.Fatal(err)
	}
	hub.Log("orders", []byte(`{"level":"INFO","msg":"before"}`))
	out := &lockedBuffer{}
	cmd := execIn(dir, "logs", "--follow", "--service", "orders", "--level", "warn")
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	time.Sleep(300 * time.Millisecond)
	hub.Log("orders", []byte(`{"level":"INFO","msg":"too quiet"}`))
	hub.Log("payments", []byte(`{"level":"ERROR","msg":"another service"}`))
	hub.Log("orders", []byte(`{"level":"WARN","msg":"breaker opened"}`))
	waitUntil(t, "the followed line", 5*time.Second, func() bool { return strings.Contains(out.String(), "breaker opened") })
	for _, not := range []string{"before", "too quiet", "another service"} {
		if strings.Contains(out.String(), not) {
			t.Errorf("logs --follow printed %q:\n%s", not, out.String())
		}
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
}
