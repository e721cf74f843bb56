package rpc_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	inventoryv1 "github.com/switchyard/switchyard/api/gen/switchyard/inventory/v1"
	"github.com/switchyard/switchyard/api/gen/switchyard/inventory/v1/inventoryv1connect"
	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/balancer"
	"github.com/switchyard/switchyard/broker/brokertest"
	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/discovery/natskv"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/resilience"
	"github.com/switchyard/switchyard/rpc"
	"github.com/switchyard/switchyard/telemetry"
	"github.com/switchyard/switchyard/testkit/faultproxy"
)

// The test binary doubles as an instance process for the discovery test: with
// RPC_TEST_INSTANCE set it serves HTTP and registers itself until killed.
func TestMain(m *testing.M) {
	if os.Getenv("RPC_TEST_INSTANCE") != "" {
		os.Exit(instanceProcess())
	}
	os.Exit(m.Run())
}

func instanceProcess() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 1
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, os.Getenv("RPC_TEST_INSTANCE")) }))
	nc, err := nats.Connect(os.Getenv("RPC_TEST_NATS"))
	if err != nil {
		return 1
	}
	js, _ := jetstream.New(nc)
	hb, _ := time.ParseDuration(os.Getenv("RPC_TEST_HEARTBEAT"))
	kv, err := natskv.New(context.Background(), js, natskv.Config{Bucket: os.Getenv("RPC_TEST_BUCKET"), Heartbeat: hb})
	if err != nil {
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	inst := discovery.Instance{Service: "echo", ID: os.Getenv("RPC_TEST_INSTANCE"), Addr: ln.Addr().String()}
	if err := kv.Register(ctx, inst); err != nil {
		return 1
	}
	return 0
}

// backend is a real HTTP server standing in for one instance of a dependency.
func backend(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func instancesAt(service string, addrs ...string) *discovery.Static {
	var list []discovery.Instance
	for i, a := range addrs {
		list = append(list, discovery.Instance{Service: service, ID: fmt.Sprintf("%s-%d", service, i), Addr: a})
	}
	return discovery.NewStatic(list...)
}

func client(t *testing.T, cfg rpc.ClientConfig) *rpc.Client {
	t.Helper()
	c, err := rpc.NewClient(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

func get(c *rpc.Client, path string) (int, error) {
	resp, err := c.HTTPClient().Get(c.BaseURL() + path)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// A black-holed dependency, behind a real TCP fault proxy, opens the breaker after
// its configured failures; while open, calls fail in under 10 ms with a problem the
// HTTP edge renders as 503 + Retry-After; once healed, a probe closes it.
func TestABlackHoledDependencyOpensTheBreakerUntilItHeals(t *testing.T) {
	t.Parallel()
	proxy := faultproxy.New(t, backend(t, func(http.ResponseWriter, *http.Request) {}))
	c := client(t, rpc.ClientConfig{Service: "users", Resolver: instancesAt("users", proxy.Addr()),
		Policy: resilience.Config{TryTimeout: 100 * time.Millisecond, Timeout: 300 * time.Millisecond, MaxAttempts: 1,
			ConsecutiveFailures: 5, OpenFor: 500 * time.Millisecond}})
	if code, err := get(c, "/"); err != nil || code != 200 {
		t.Fatalf("before the fault: %d %v", code, err)
	}
	if err := proxy.BlackHole(); err != nil {
		t.Fatal(err)
	}
	failures := 0
	for !c.Policy().BreakerOpen() {
		if _, err := get(c, "/"); err == nil {
			t.Fatal("a call through a black hole succeeded")
		}
		failures++
		if failures > 5 {
			t.Fatalf("breaker still closed after %d failures", failures)
		}
	}
	if failures != 5 {
		t.Errorf("breaker opened after %d failures, configured 5", failures)
	}
	began := time.Now()
	_, err := get(c, "/")
	took := time.Since(began)
	if took > 10*time.Millisecond {
		t.Errorf("an open breaker took %s to refuse", took)
	}
	rec := httptest.NewRecorder()
	problem.Writer{}.Write(rec, httptest.NewRequest("GET", "/api/v1/me", nil), err)
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
		t.Errorf("the edge answered %d with Retry-After %q, want 503 with one", rec.Code, rec.Header().Get("Retry-After"))
	}
	if err := proxy.Heal(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(550 * time.Millisecond)
	if code, err := get(c, "/"); err != nil || code != 200 {
		t.Fatalf("the probe after healing: %d %v", code, err)
	}
	if c.Policy().BreakerOpen() {
		t.Error("breaker still open after a successful probe")
	}
}

// A dependency with no instance yet (its first instance still starting, or all of
// them away) is nobody's failure: calls are refused at once, the breaker stays
// closed, and the first call after an instance appears goes through — not five
// seconds of an open breaker later.
func TestNoInstanceDoesNotOpenTheBreaker(t *testing.T) {
	t.Parallel()
	resolver := discovery.NewStatic()
	c := client(t, rpc.ClientConfig{Service: "users", Resolver: resolver,
		Policy: resilience.Config{MaxAttempts: 1, ConsecutiveFailures: 3, OpenFor: 5 * time.Second}})
	for range 10 {
		if _, err := get(c, "/"); problem.KindOf(err) != problem.Unavailable {
			t.Fatalf("a call with no instance: %v, want Unavailable", err)
		}
	}
	if c.Policy().BreakerOpen() {
		t.Fatal("the breaker opened because the dependency had no instance")
	}
	addr := backend(t, func(http.ResponseWriter, *http.Request) {})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go resolver.Register(ctx, discovery.Instance{Service: "users", ID: "users-1", Addr: addr})
	waitFor(t, "the first call to the new instance", 2*time.Second, func() bool {
		code, err := get(c, "/")
		return err == nil && code == 200
	})
}

// Three instances, one answering 500: nearly every idempotent call succeeds and the
// bad instance is ejected.
func TestOneBadInstanceOfThreeIsEjectedAndCallsSucceed(t *testing.T) {
	t.Parallel()
	ok := func(w http.ResponseWriter, _ *http.Request) {}
	bad := backend(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) })
	var ejected atomic.Value
	c := client(t, rpc.ClientConfig{Service: "catalog", Resolver: instancesAt("catalog", backend(t, ok), bad, backend(t, ok)),
		Balancer: balancer.Config{EjectAfter: 3, OnEject: func(inst discovery.Instance, _ time.Time) { ejected.Store(inst.Addr) }},
		Policy:   resilience.Config{Backoff: time.Millisecond, ConsecutiveFailures: 1000}})
	const calls = 2000
	succeeded := 0
	for range calls {
		if code, err := get(c, "/v1/products"); err == nil && code == 200 {
			succeeded++
		}
	}
	rate := float64(succeeded) / calls
	t.Logf("%d of %d calls succeeded (%.2f%%)", succeeded, calls, 100*rate)
	if rate < 0.99 {
		t.Errorf("success rate %.4f, want ≥ 0.99", rate)
	}
	if ejected.Load() != bad {
		t.Errorf("ejected %v, want the bad instance %s", ejected.Load(), bad)
	}
}

// A killed instance process disappears from resolution within the registry's
// expiry: three heartbeats, and one to confirm it is gone.
func TestAKilledInstanceLeavesResolutionWithinTheExpiry(t *testing.T) {
	t.Parallel()
	const heartbeat = 300 * time.Millisecond
	url := brokertest.Embedded(t)
	bucket := "rpctest_" + discovery.NewID()
	nc := brokertest.Connect(t, url)
	js, _ := jetstream.New(nc)
	kv, err := natskv.New(context.Background(), js, natskv.Config{Bucket: bucket, Heartbeat: heartbeat})
	if err != nil {
		t.Fatal(err)
	}
	var procs []*exec.Cmd
	for _, id := range []string{"a", "b"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "RPC_TEST_INSTANCE="+id, "RPC_TEST_NATS="+url, "RPC_TEST_BUCKET="+bucket, "RPC_TEST_HEARTBEAT="+heartbeat.String())
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	c := client(t, rpc.ClientConfig{Service: "echo", Resolver: kv})
	waitFor(t, "two instances", 10*time.Second, func() bool { return len(c.Balancer().Endpoints()) == 2 })

	if err := procs[0].Process.Kill(); err != nil {
		t.Fatal(err)
	}
	procs[0].Wait()
	began := time.Now()
	took := waitFor(t, "the killed instance to leave", kv.Expiry()+time.Second, func() bool { return len(c.Balancer().Endpoints()) == 1 })
	t.Logf("killed instance left the client's view after %s (heartbeat %s)", took.Round(10*time.Millisecond), heartbeat)
	if took > kv.Expiry()+heartbeat/2 { // expiry, plus half a heartbeat for the rescan
		t.Errorf("took %s, more than the expiry (%s)", took, kv.Expiry())
	}
	_ = began
	for range 20 {
		if code, err := get(c, "/"); err != nil || code != 200 {
			t.Fatalf("a call after the kill: %d %v", code, err)
		}
	}
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) time.Duration {
	t.Helper()
	began := time.Now()
	for !ok() {
		if time.Since(began) > d {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(began)
}

// A full outage: retries never exceed the budget (counted at the server), and a POST
// without an idempotency key is never retried.
func TestRetriesAreBudgetedAndPOSTWithoutAKeyIsNeverRetried(t *testing.T) {
	t.Parallel()
	var got atomic.Int64
	var posts atomic.Int64
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		if r.Method == http.MethodPost {
			posts.Add(1)
		}
		w.WriteHeader(503)
	})
	c := client(t, rpc.ClientConfig{Service: "payments", Resolver: instancesAt("payments", addr),
		Balancer: balancer.Config{EjectAfter: 1 << 20},
		Policy:   resilience.Config{MaxAttempts: 3, Backoff: time.Microsecond, MaxBackoff: time.Microsecond, ConsecutiveFailures: 1 << 20}})
	const calls = 500
	for range calls {
		get(c, "/")
	}
	retries := got.Load() - calls
	allowed := int64(0.2*calls) + 100
	t.Logf("%d calls, %d retries, budget %d", calls, retries, allowed)
	if retries > allowed {
		t.Errorf("%d retries exceed the budget of %d", retries, allowed)
	}
	for range 50 {
		resp, err := c.HTTPClient().Post(c.BaseURL()+"/v1/charges", "application/json", strings.NewReader(`{}`))
		if err == nil {
			resp.Body.Close()
		}
	}
	if n := posts.Load(); n != 50 {
		t.Errorf("50 POSTs without an idempotency key reached the server %d times", n)
	}
}

// With one dependency hung, calls beyond its bulkhead are refused within 5 ms, and
// another dependency's latency is unaffected.
func TestAHungDependencyIsContainedByItsBulkhead(t *testing.T) {
	t.Parallel()
	hung := faultproxy.New(t, backend(t, func(http.ResponseWriter, *http.Request) {}))
	if err := hung.BlackHole(); err != nil {
		t.Fatal(err)
	}
	healthy := backend(t, func(http.ResponseWriter, *http.Request) {})
	slow := client(t, rpc.ClientConfig{Service: "payments", Resolver: instancesAt("payments", hung.Addr()),
		Policy: resilience.Config{MaxConcurrent: 4, Timeout: 5 * time.Second, TryTimeout: 5 * time.Second, ConsecutiveFailures: 1000}})
	fast := client(t, rpc.ClientConfig{Service: "catalog", Resolver: instancesAt("catalog", healthy), Policy: resilience.Config{MaxConcurrent: 4}})

	base := latency(t, fast, 50)
	for range 4 {
		go get(slow, "/")
	}
	waitFor(t, "four calls stuck in the hung dependency", 2*time.Second, func() bool {
		return int(slow.Balancer().Endpoints()[0].InFlight()) == 4
	})
	began := time.Now()
	_, err := get(slow, "/")
	if took := time.Since(began); took > 5*time.Millisecond {
		t.Errorf("the fifth call waited %s before being refused", took)
	}
	if !strings.Contains(fmt.Sprint(err), "bulkhead full") {
		t.Errorf("fifth call: %v, want a bulkhead refusal", err)
	}
	during := latency(t, fast, 50)
	t.Logf("healthy dependency p50: %s before, %s while the other hangs", base, during)
	if during > 3*base+2*time.Millisecond {
		t.Errorf("the healthy dependency slowed from %s to %s", base, during)
	}
}

// latency returns the median of n calls.
func latency(t *testing.T, c *rpc.Client, n int) time.Duration {
	t.Helper()
	var ds []time.Duration
	for range n {
		began := time.Now()
		if code, err := get(c, "/"); err != nil || code != 200 {
			t.Fatalf("healthy call: %d %v", code, err)
		}
		ds = append(ds, time.Since(began))
	}
	for i := range ds {
		for j := i + 1; j < len(ds); j++ {
			if ds[j] < ds[i] {
				ds[i], ds[j] = ds[j], ds[i]
			}
		}
	}
	return ds[len(ds)/2]
}

// A 1 s deadline at the caller reaches a REST callee as at most 1 s remaining, and
// the callee's work stops when it passes.
func TestTheCallersDeadlineReachesARESTCallee(t *testing.T) {
	t.Parallel()
	type observed struct {
		header    int64
		remaining time.Duration
		worked    time.Duration
	}
	seen := make(chan observed, 1)
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		rpc.Deadline(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ms, _ := strconv.ParseInt(r.Header.Get(rpc.TimeoutHeader), 10, 64)
			dl, _ := r.Context().Deadline()
			o := observed{header: ms, remaining: time.Until(dl)}
			began := time.Now()
			for r.Context().Err() == nil && time.Since(began) < 5*time.Second { // "work"
				time.Sleep(5 * time.Millisecond)
			}
			o.worked = time.Since(began)
			seen <- o
		})).ServeHTTP(w, r)
	})
	c := client(t, rpc.ClientConfig{Service: "users", Resolver: instancesAt("users", addr),
		Policy: resilience.Config{Timeout: 10 * time.Second, TryTimeout: 10 * time.Second, MaxAttempts: 1}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL()+"/v1/users/1", nil)
	if resp, err := c.HTTPClient().Do(req); err == nil {
		resp.Body.Close()
	}
	o := <-seen
	t.Logf("callee saw %dms in the header, %s remaining, worked %s", o.header, o.remaining.Round(time.Millisecond), o.worked.Round(time.Millisecond))
	if o.header <= 0 || o.header > 1000 || o.remaining > time.Second || o.remaining <= 0 {
		t.Errorf("callee's deadline: header %dms, remaining %s; want ≤ 1s", o.header, o.remaining)
	}
	if o.worked > 1100*time.Millisecond {
		t.Errorf("callee worked %s past a 1s deadline", o.worked)
	}
}

// fakeInventory is a gRPC handler whose GetStock works until its context ends.
type fakeInventory struct {
	inventoryv1connect.UnimplementedInventoryServiceHandler
	remaining chan time.Duration
	worked    chan time.Duration
}

func (f *fakeInventory) GetStock(ctx context.Context, _ *connect.Request[inventoryv1.GetStockRequest]) (*connect.Response[inventoryv1.GetStockResponse], error) {
	dl, _ := ctx.Deadline()
	f.remaining <- time.Until(dl)
	began := time.Now()
	for ctx.Err() == nil && time.Since(began) < 5*time.Second {
		time.Sleep(5 * time.Millisecond)
	}
	f.worked <- time.Since(began)
	return nil, ctx.Err()
}

func grpcServer(t *testing.T, guard func(http.Handler) http.Handler, h inventoryv1connect.InventoryServiceHandler) string {
	t.Helper()
	mux := http.NewServeMux()
	path, handler := inventoryv1connect.NewInventoryServiceHandler(h, rpc.HandlerOptions()...)
	rpc.MountGRPC(mux, guard, rpc.GRPCService{Name: inventoryv1connect.InventoryServiceName, Path: path, Handler: handler})
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = &protocols
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func noGuard(h http.Handler) http.Handler { return h }

// Over gRPC the deadline travels as grpc-timeout.
func TestTheCallersDeadlineReachesAGRPCCallee(t *testing.T) {
	t.Parallel()
	inv := &fakeInventory{remaining: make(chan time.Duration, 1), worked: make(chan time.Duration, 1)}
	addr := grpcServer(t, noGuard, inv)
	c := client(t, rpc.ClientConfig{Service: "inventory", Protocol: rpc.GRPC, Resolver: instancesAt("inventory", addr),
		Policy: resilience.Config{Timeout: 10 * time.Second, TryTimeout: 10 * time.Second, MaxAttempts: 1}})
	stub := inventoryv1connect.NewInventoryServiceClient(c.HTTPClient(), c.BaseURL(), connect.WithGRPC())
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := stub.GetStock(ctx, connect.NewRequest(&inventoryv1.GetStockRequest{}))
	if connect.CodeOf(err) != connect.CodeDeadlineExceeded {
		t.Errorf("GetStock past its deadline: %v", err)
	}
	remaining, worked := <-inv.remaining, <-inv.worked
	t.Logf("gRPC callee saw %s remaining, worked %s", remaining.Round(time.Millisecond), worked.Round(time.Millisecond))
	if remaining > time.Second || remaining <= 0 || worked > 1100*time.Millisecond {
		t.Errorf("callee: %s remaining, worked %s", remaining, worked)
	}
}

func newIdentity(name string) authn.Identity {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	return authn.Identity{Service: name, Key: key}
}

// A callee that requires service credentials refuses calls without them, or from a
// service it does not accept, and a forged identity header changes nothing.
func TestCalleesRefuseCallsWithoutValidServiceCredentials(t *testing.T) {
	t.Parallel()
	orders, gateway := newIdentity("orders"), newIdentity("gateway")
	verifier := authn.NewServiceVerifier("inventory", authn.Bundle{"orders": orders.Public(), "gateway": gateway.Public()}, []string{"orders"}, nil)
	var reached atomic.Int64
	inv := &countingInventory{reached: &reached}
	guard := func(h http.Handler) http.Handler { return verifier.RequireService(rpc.WriteError(problem.Writer{}), h) }
	addr := grpcServer(t, guard, inv)

	call := func(tokens *authn.ServiceTokens, header map[string]string) error {
		c := client(t, rpc.ClientConfig{Service: "inventory", Protocol: rpc.GRPC, Resolver: instancesAt("inventory", addr), Tokens: tokens,
			Policy: resilience.Config{MaxAttempts: 1}})
		stub := inventoryv1connect.NewInventoryServiceClient(c.HTTPClient(), c.BaseURL(), connect.WithGRPC())
		req := connect.NewRequest(&inventoryv1.ReserveStockRequest{OrderId: "o1"})
		for k, v := range header {
			req.Header().Set(k, v)
		}
		_, err := stub.ReserveStock(context.Background(), req)
		return err
	}
	if err := call(authn.NewServiceTokens(orders, nil), nil); err != nil {
		t.Fatalf("orders, an accepted caller: %v", err)
	}
	for name, tc := range map[string]struct {
		tokens *authn.ServiceTokens
		header map[string]string
		code   connect.Code
	}{
		"no credentials":                 {nil, nil, connect.CodeUnauthenticated},
		"a forged identity header":       {nil, map[string]string{"X-User-ID": "admin", "X-Service": "orders"}, connect.CodeUnauthenticated},
		"a service it does not accept":   {authn.NewServiceTokens(gateway, nil), nil, connect.CodePermissionDenied},
		"a key outside the trust bundle": {authn.NewServiceTokens(newIdentity("orders"), nil), nil, connect.CodeUnauthenticated},
	} {
		if err := call(tc.tokens, tc.header); connect.CodeOf(err) != tc.code {
			t.Errorf("%s: %v, want %v", name, err, tc.code)
		}
	}
	if n := reached.Load(); n != 1 {
		t.Errorf("the handler ran %d times; only the accepted call should reach it", n)
	}
}

type countingInventory struct {
	inventoryv1connect.UnimplementedInventoryServiceHandler
	reached *atomic.Int64
}

func (c *countingInventory) ReserveStock(context.Context, *connect.Request[inventoryv1.ReserveStockRequest]) (*connect.Response[inventoryv1.ReserveStockResponse], error) {
	c.reached.Add(1)
	return connect.NewResponse(&inventoryv1.ReserveStockResponse{}), nil
}

// Problems returned by a gRPC handler arrive as problems of the same kind.
func TestProblemsCrossGRPCIntact(t *testing.T) {
	t.Parallel()
	addr := grpcServer(t, noGuard, &failingInventory{})
	c := client(t, rpc.ClientConfig{Service: "inventory", Protocol: rpc.GRPC, Resolver: instancesAt("inventory", addr), Policy: resilience.Config{MaxAttempts: 1}})
	stub := inventoryv1connect.NewInventoryServiceClient(c.HTTPClient(), c.BaseURL(), connect.WithGRPC())
	_, err := stub.ReserveStock(context.Background(), connect.NewRequest(&inventoryv1.ReserveStockRequest{}))
	err = rpc.FromConnect(err)
	var pe *problem.Error
	if !errors.As(err, &pe) || pe.Kind != problem.Conflict || pe.Detail != "insufficient stock: prod-1 (0 available)" {
		t.Errorf("got %#v", err)
	}
}

type failingInventory struct {
	inventoryv1connect.UnimplementedInventoryServiceHandler
}

func (failingInventory) ReserveStock(context.Context, *connect.Request[inventoryv1.ReserveStockRequest]) (*connect.Response[inventoryv1.ReserveStockResponse], error) {
	return nil, problem.New(problem.Conflict, "insufficient stock: prod-1 (0 available)")
}

// The request id and trace context of the caller travel with the call.
func TestRequestIDAndTraceContextArePropagated(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var headers http.Header
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) { mu.Lock(); headers = r.Header.Clone(); mu.Unlock() })
	tracing, err := telemetry.NewTracing(context.Background(), telemetry.TraceConfig{Service: "orders", SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, rpc.ClientConfig{Service: "users", Resolver: instancesAt("users", addr), Tracer: tracing.Tracer("t")})
	ctx, span := tracing.Tracer("t").Start(telemetry.WithRequestID(context.Background(), "req-42"), "handler")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL()+"/", nil)
	resp, err := c.HTTPClient().Do(req)
	span.End()
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if headers.Get("X-Request-Id") != "req-42" || !strings.Contains(headers.Get("Traceparent"), span.SpanContext().TraceID().String()) {
		t.Errorf("callee got X-Request-Id %q, traceparent %q", headers.Get("X-Request-Id"), headers.Get("Traceparent"))
	}
}

// The policies' decisions are on the client span and in the metrics.
func TestDecisionsAreRecordedOnSpansAndMetrics(t *testing.T) {
	t.Parallel()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	reg := prometheus.NewRegistry()
	metrics, err := resilience.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	addr := backend(t, func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) <= 2 {
			w.WriteHeader(503)
		}
	})
	c := client(t, rpc.ClientConfig{Service: "catalog", Resolver: instancesAt("catalog", addr), Tracer: tp.Tracer("t"),
		Balancer: balancer.Config{EjectAfter: 100},
		Policy:   resilience.Config{MaxAttempts: 3, Backoff: time.Millisecond, ConsecutiveFailures: 3, OpenFor: time.Minute, MaxConcurrent: 1, Metrics: metrics}})
	if code, err := get(c, "/"); err != nil || code != 200 {
		t.Fatalf("third attempt should succeed: %d %v", code, err)
	}
	events := func() []string {
		var out []string
		for _, s := range spans.GetSpans() {
			for _, e := range s.Events {
				out = append(out, e.Name)
			}
		}
		spans.Reset()
		return out
	}
	if got := strings.Join(events(), ","); !strings.Contains(got, "retry 1") || !strings.Contains(got, "retry 2") {
		t.Errorf("span events %q, want retry 1 and retry 2", got)
	}
	if got := testutil.ToFloat64(metrics.RetriesCounter("catalog")); got != 2 {
		t.Errorf("retries metric %v, want 2", got)
	}
	n.Store(-100) // fail from now on: three failures open the breaker
	for range 3 {
		get(c, "/")
	}
	get(c, "/")
	if got := strings.Join(events(), ","); !strings.Contains(got, "breaker open") {
		t.Errorf("span events %q, want breaker open", got)
	}
	body, _ := testutil.CollectAndFormat(reg, expfmt.TypeTextPlain, "rpc_client_breaker_state", "rpc_client_calls_total")
	if !strings.Contains(string(body), `rpc_client_breaker_state{dependency="catalog"} 2`) || !strings.Contains(string(body), `outcome="rejected"`) {
		t.Errorf("metrics:\n%s", body)
	}
}

// A stream opened through the client (a WebSocket upgrade) is a call like any
// other in rpc_client_calls_total, though no retry or breaker governs it: the
// diagram draws it, so the counters must count it.
func TestAStreamsOpeningIsCountedAsACall(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	metrics, err := resilience.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	addr := backend(t, func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		_ = conn.Write(r.Context(), websocket.MessageText, []byte("hello"))
		_ = conn.Close(websocket.StatusNormalClosure, "")
	})
	c := client(t, rpc.ClientConfig{Service: "notifications", Resolver: instancesAt("notifications", addr),
		Policy: resilience.Config{MaxAttempts: 3, Backoff: time.Millisecond, Metrics: metrics}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, c.BaseURL()+"/stream", &websocket.DialOptions{HTTPClient: c.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if _, msg, err := conn.Read(ctx); err != nil || string(msg) != "hello" {
		t.Fatalf("read %q, %v", msg, err)
	}
	body, _ := testutil.CollectAndFormat(reg, expfmt.TypeTextPlain, "rpc_client_calls_total")
	if !strings.Contains(string(body), `rpc_client_calls_total{dependency="notifications",outcome="ok"} 1`+"\n") {
		t.Errorf("one stream opened, rpc_client_calls_total:\n%s", body)
	}
}

// The route a ServeMux matched below Deadline is seen by the middleware above it,
// which names spans and metrics after it.
func TestTheMatchedRouteSurvivesTheDeadline(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/users/{id}", func(http.ResponseWriter, *http.Request) {})
	req := httptest.NewRequest(http.MethodGet, "/v1/users/42", nil)
	req.Header.Set(rpc.TimeoutHeader, "500")
	rpc.Deadline(mux).ServeHTTP(httptest.NewRecorder(), req)
	if req.Pattern != "GET /v1/users/{id}" {
		t.Errorf("pattern %q after Deadline, want the mux's", req.Pattern)
	}
}
