package resilience_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/resilience"
)

// dependency is a real HTTP server whose behaviour a test scripts per request.
type dependency struct {
	url   string
	calls atomic.Int64
}

func serve(t *testing.T, h func(n int64, w http.ResponseWriter, r *http.Request)) *dependency {
	t.Helper()
	d := &dependency{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := d.calls.Add(1)
		io.Copy(io.Discard, r.Body)
		h(n, w, r)
	}))
	t.Cleanup(srv.Close)
	d.url = srv.URL
	return d
}

func policy(t *testing.T, cfg resilience.Config) *resilience.Policy {
	t.Helper()
	if cfg.Dependency == "" {
		cfg.Dependency = "dep"
	}
	p, err := resilience.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var transport = &http.Transport{MaxIdleConnsPerHost: 100}

func call(p *resilience.Policy, method, url string, header http.Header) (*http.Response, error) {
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(`{"x":1}`)
	}
	req, _ := http.NewRequest(method, url, body)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := p.Do(req.Context(), req, transport.RoundTrip)
	if resp != nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

func TestOnlyCallsSafeToRepeatAreRetried(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		method string
		header http.Header
		want   int64
	}{
		{"GET is retried", http.MethodGet, nil, 3},
		{"PUT is retried", http.MethodPut, nil, 3},
		{"POST without an idempotency key is sent once", http.MethodPost, nil, 1},
		{"POST with an idempotency key is retried", http.MethodPost, http.Header{"Idempotency-Key": {"k1"}}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dep := serve(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(502) })
			p := policy(t, resilience.Config{MaxAttempts: 3, Backoff: time.Millisecond, ConsecutiveFailures: 100})
			resp, err := call(p, tc.method, dep.url, tc.header)
			if err != nil || resp.StatusCode != 502 {
				t.Fatalf("got %v, %v; want the last 502", resp, err)
			}
			if n := dep.calls.Load(); n != tc.want {
				t.Errorf("%d attempts, want %d", n, tc.want)
			}
		})
	}
}

func TestAFailureThenSuccessIsRetriedIntoSuccess(t *testing.T) {
	t.Parallel()
	dep := serve(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, "ok")
	})
	p := policy(t, resilience.Config{Backoff: time.Millisecond})
	resp, err := call(p, http.MethodGet, dep.url, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("got %v, %v", resp, err)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	dep := serve(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(429)
			return
		}
	})
	p := policy(t, resilience.Config{Backoff: time.Millisecond, Timeout: 3 * time.Second})
	began := time.Now()
	resp, err := call(p, http.MethodGet, dep.url, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("got %v, %v", resp, err)
	}
	if took := time.Since(began); took < time.Second {
		t.Errorf("retried after %s despite Retry-After: 1", took)
	}
}

// Under a total outage, retries stay within 20 % of calls + 10/s: without the
// budget, three attempts per call would triple the load.
func TestRetriesStayWithinTheBudgetUnderAFailureBurst(t *testing.T) {
	t.Parallel()
	dep := serve(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) })
	reg := prometheus.NewRegistry()
	m, _ := resilience.NewMetrics(reg)
	p := policy(t, resilience.Config{MaxAttempts: 3, Backoff: time.Microsecond, MaxBackoff: time.Microsecond,
		ConsecutiveFailures: 1 << 20, Metrics: m}) // keep the breaker out of it
	const calls = 1000
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for range calls {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			call(p, http.MethodGet, dep.url, nil)
		}()
	}
	wg.Wait()
	retries := dep.calls.Load() - calls
	allowed := int64(0.2*calls) + 10*10
	t.Logf("%d calls, %d retries (allowed %d; no budget would allow %d)", calls, retries, allowed, 2*calls)
	if retries > allowed {
		t.Errorf("%d retries exceed the budget of %d", retries, allowed)
	}
	if got := testutil.ToFloat64(m.RetriesCounter("dep")); int64(got) != retries {
		t.Errorf("retries metric %v, server saw %d", got, retries)
	}
	if testutil.ToFloat64(m.BudgetExhaustedCounter("dep")) == 0 {
		t.Error("budget exhaustion not recorded")
	}
}

// blackHole accepts connections and never answers.
func blackHole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "http://" + ln.Addr().String()
}

func TestTheBreakerOpensFailsFastAndClosesAfterAProbe(t *testing.T) {
	t.Parallel()
	hole := blackHole(t)
	var healed atomic.Bool
	good := serve(t, func(int64, http.ResponseWriter, *http.Request) {})
	p := policy(t, resilience.Config{TryTimeout: 50 * time.Millisecond, Timeout: 200 * time.Millisecond,
		MaxAttempts: 1, ConsecutiveFailures: 3, OpenFor: 300 * time.Millisecond})
	target := func() string {
		if healed.Load() {
			return good.url
		}
		return hole
	}
	for range 3 {
		if _, err := call(p, http.MethodGet, target(), nil); problem.KindOf(err) != problem.Timeout {
			t.Fatalf("a black-holed call: %v, want a timeout", err)
		}
	}
	if !p.BreakerOpen() {
		t.Fatal("breaker still closed after 3 consecutive failures")
	}
	began := time.Now()
	_, err := call(p, http.MethodGet, target(), nil)
	took := time.Since(began)
	var pe *problem.Error
	if !errors.As(err, &pe) || pe.Kind != problem.Unavailable || pe.RetryAfter <= 0 {
		t.Fatalf("open breaker returned %v, want Unavailable with Retry-After", err)
	}
	if took > 10*time.Millisecond {
		t.Errorf("an open breaker took %s to refuse", took)
	}
	if problem.From(err).Status != 503 {
		t.Errorf("the edge maps it to %d, want 503", problem.From(err).Status)
	}
	healed.Store(true)
	time.Sleep(350 * time.Millisecond)
	if resp, err := call(p, http.MethodGet, target(), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the half-open probe failed: %v %v", resp, err)
	}
	if p.BreakerOpen() {
		t.Error("breaker still open after a successful probe")
	}
}

// A dependency shedding load — 503 with Retry-After on every call — is alive and
// says when to come back: the breaker stays closed (opening it would refuse every
// call, not just the excess). The same 503 without Retry-After is a failure and
// opens it.
func TestLoadSheddingDoesNotOpenTheBreaker(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		retryAfter string
		opens      bool
	}{
		{"503 with Retry-After", "1", false},
		{"503 without Retry-After", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := serve(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				w.WriteHeader(http.StatusServiceUnavailable)
			})
			p := policy(t, resilience.Config{MaxAttempts: 1, ConsecutiveFailures: 3})
			for range 10 {
				resp, err := call(p, http.MethodGet, d.url, nil)
				if err != nil && !tc.opens {
					t.Fatalf("a shed call: %v, want the 503 answer", err)
				}
				if err == nil && resp.StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("status %d", resp.StatusCode)
				}
			}
			if p.BreakerOpen() != tc.opens {
				t.Errorf("breaker open = %v after ten 503s (Retry-After %q), want %v", p.BreakerOpen(), tc.retryAfter, tc.opens)
			}
		})
	}
}

func TestAFullBulkheadRefusesAtOnceAndIsolatesOtherDependencies(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hung := serve(t, func(_ int64, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	fast := serve(t, func(int64, http.ResponseWriter, *http.Request) {})
	hungPolicy := policy(t, resilience.Config{Dependency: "hung", MaxConcurrent: 2, TryTimeout: 5 * time.Second, Timeout: 5 * time.Second, ConsecutiveFailures: 100})
	fastPolicy := policy(t, resilience.Config{Dependency: "fast", MaxConcurrent: 2})

	for range 2 {
		go call(hungPolicy, http.MethodGet, hung.url, nil)
	}
	for hung.calls.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	began := time.Now()
	_, err := call(hungPolicy, http.MethodGet, hung.url, nil)
	if took := time.Since(began); took > 5*time.Millisecond {
		t.Errorf("the third call waited %s before being refused", took)
	}
	if !strings.Contains(problem.From(err).Detail, "bulkhead full") {
		t.Errorf("got %v, want a bulkhead refusal", err)
	}
	began = time.Now()
	if resp, err := call(fastPolicy, http.MethodGet, fast.url, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("the other dependency: %v %v", resp, err)
	}
	if took := time.Since(began); took > 50*time.Millisecond {
		t.Errorf("the other dependency took %s while one was hung", took)
	}
}

func TestTheOverallDeadlineBoundsRetries(t *testing.T) {
	t.Parallel()
	slow := serve(t, func(_ int64, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
		}
	})
	p := policy(t, resilience.Config{TryTimeout: 100 * time.Millisecond, Timeout: 250 * time.Millisecond, MaxAttempts: 10, Backoff: time.Millisecond, ConsecutiveFailures: 100})
	began := time.Now()
	_, err := call(p, http.MethodGet, slow.url, nil)
	if took := time.Since(began); took > 400*time.Millisecond {
		t.Errorf("call took %s with a 250ms deadline", took)
	}
	if problem.KindOf(err) != problem.Timeout {
		t.Errorf("got %v, want a timeout", err)
	}
}

func TestACallersEarlierDeadlineWins(t *testing.T) {
	t.Parallel()
	slow := serve(t, func(_ int64, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	p := policy(t, resilience.Config{Timeout: 5 * time.Second, TryTimeout: 5 * time.Second, MaxAttempts: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, slow.url, nil)
	began := time.Now()
	p.Do(req.Context(), req, transport.RoundTrip)
	if took := time.Since(began); took > 300*time.Millisecond {
		t.Errorf("call took %s despite the caller's 100ms deadline", took)
	}
}

func TestHedgingAnswersFromTheFasterAttempt(t *testing.T) {
	t.Parallel()
	dep := serve(t, func(n int64, _ http.ResponseWriter, r *http.Request) {
		if n == 1 {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}
	})
	p := policy(t, resilience.Config{HedgeDelay: 50 * time.Millisecond, TryTimeout: 3 * time.Second, Timeout: 3 * time.Second})
	began := time.Now()
	resp, err := call(p, http.MethodGet, dep.url, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("got %v %v", resp, err)
	}
	if took := time.Since(began); took > time.Second {
		t.Errorf("hedged call took %s", took)
	}
}

func TestFallbackAnswersWhenTheDependencyIsDown(t *testing.T) {
	t.Parallel()
	p := policy(t, resilience.Config{MaxAttempts: 1, TryTimeout: 20 * time.Millisecond, Timeout: 50 * time.Millisecond,
		Fallback: func(req *http.Request, err error) (*http.Response, error) {
			return &http.Response{StatusCode: 200, Header: http.Header{"X-Fallback": {"cache"}}, Body: io.NopCloser(strings.NewReader("stale")), Request: req}, nil
		}})
	resp, err := call(p, http.MethodGet, blackHole(t), nil)
	if err != nil || resp.Header.Get("X-Fallback") != "cache" {
		t.Fatalf("got %v %v, want the fallback", resp, err)
	}
}

// The body of a response is read after Do returns; the deadline must not cut it off.
func TestTheResponseBodyOutlivesDo(t *testing.T) {
	t.Parallel()
	dep := serve(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		time.Sleep(50 * time.Millisecond)
		io.WriteString(w, "late body")
	})
	p := policy(t, resilience.Config{})
	req, _ := http.NewRequest(http.MethodGet, dep.url, nil)
	resp, err := p.Do(req.Context(), req, transport.RoundTrip)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(b) != "late body" {
		t.Errorf("body = %q, %v", b, err)
	}
}

func TestBudgetArithmetic(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_000_000, 0)
	b := resilience.NewBudget(0.2, 1, func() time.Time { return now })
	for range 100 {
		b.RecordExecution()
	}
	granted := 0
	for b.TryAcquirePermit() {
		granted++
	}
	if granted != 30 { // 0.2 × 100 + 1/s × 10 s
		t.Errorf("granted %d retries, want 30", granted)
	}
	now = now.Add(11 * time.Second) // the window slides past everything
	if calls, retries := b.Counts(); calls != 0 || retries != 0 {
		t.Errorf("after the window: %d calls, %d retries", calls, retries)
	}
	if !b.TryAcquirePermit() {
		t.Error("the per-second allowance is gone")
	}
}

func TestBadConfigurationIsRefused(t *testing.T) {
	t.Parallel()
	if _, err := resilience.New(resilience.Config{}); err == nil {
		t.Error("no dependency name accepted")
	}
	if _, err := resilience.New(resilience.Config{Dependency: "x", Timeout: time.Second, TryTimeout: 2 * time.Second}); err == nil {
		t.Error("per-try timeout above the overall one accepted")
	}
}

// With the breaker disabled, a dependency failing every time still receives every
// call: nothing refuses on its behalf.
func TestADisabledBreakerNeverOpens(t *testing.T) {
	t.Parallel()
	d := serve(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	p := policy(t, resilience.Config{MaxAttempts: 1, NoBreaker: true, MinCalls: 1, FailureRatio: 0.1})
	for range 200 {
		if _, err := call(p, http.MethodGet, d.url, nil); err != nil {
			t.Fatalf("a call was refused: %v", err)
		}
	}
	if p.BreakerOpen() || d.calls.Load() != 200 {
		t.Errorf("breaker open %v, %d of 200 calls arrived", p.BreakerOpen(), d.calls.Load())
	}
}
