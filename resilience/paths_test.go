package resilience_test

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/switchyard/switchyard/resilience"
)

// outcome is one way a dependency can answer an attempt.
type outcome struct {
	name  string
	serve func(w http.ResponseWriter)
}

var outcomes = []outcome{
	{"200", func(w http.ResponseWriter) {}},
	{"201", func(w http.ResponseWriter) { w.WriteHeader(201) }},
	{"400", func(w http.ResponseWriter) { w.WriteHeader(400) }},
	{"404", func(w http.ResponseWriter) { w.WriteHeader(404) }},
	{"429", func(w http.ResponseWriter) { w.WriteHeader(429) }},
	{"429 with Retry-After", func(w http.ResponseWriter) { w.Header().Set("Retry-After", "0"); w.WriteHeader(429) }},
	{"500", func(w http.ResponseWriter) { w.WriteHeader(500) }},
	{"501", func(w http.ResponseWriter) { w.WriteHeader(501) }},
	{"502", func(w http.ResponseWriter) { w.WriteHeader(502) }},
	{"503", func(w http.ResponseWriter) { w.WriteHeader(503) }},
	{"503 with Retry-After", func(w http.ResponseWriter) { w.Header().Set("Retry-After", "0"); w.WriteHeader(503) }},
	{"504", func(w http.ResponseWriter) { w.WriteHeader(504) }},
	{"gRPC UNAVAILABLE", func(w http.ResponseWriter) { w.Header().Set("Grpc-Status", "14") }},
	{"gRPC NOT_FOUND", func(w http.ResponseWriter) { w.Header().Set("Grpc-Status", "5") }},
	{"connection dropped", func(w http.ResponseWriter) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	}},
	{"slower than the try timeout", func(w http.ResponseWriter) { time.Sleep(150 * time.Millisecond) }},
}

// run sends one GET whose attempts all meet o, under a policy of maxAttempts
// whose breaker opens after failures consecutive failures, and reports how many
// attempts were made and whether the breaker ended open.
func run(t *testing.T, o outcome, maxAttempts, failures int) (tries int, open bool) {
	t.Helper()
	d := serve(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { o.serve(w) })
	p := policy(t, resilience.Config{MaxAttempts: maxAttempts, Backoff: time.Millisecond, MaxBackoff: time.Millisecond,
		ConsecutiveFailures: failures, TryTimeout: 50 * time.Millisecond, Timeout: 2 * time.Second, BudgetPerSecond: 1000})
	req, _ := http.NewRequest(http.MethodGet, d.url, nil)
	resp, _ := p.Do(context.Background(), req, func(r *http.Request) (*http.Response, error) {
		tries++
		return transport.RoundTrip(r)
	})
	if resp != nil {
		resp.Body.Close()
	}
	return tries, p.BreakerOpen()
}

// The first attempt takes the fast path (no executor); the attempts after it are
// the retry executor's. Both must classify every outcome alike:
//
//   - retrying: the fast path hands a call to the executor exactly when the
//     executor would try it again itself, so with three attempts allowed a call
//     makes one or three, never two;
//   - the breaker: an outcome the fast path holds against the dependency, the
//     executor holds too (two consecutive failures, one on each path, open a
//     breaker that needs two).
func TestBothPathsDecideAlike(t *testing.T) {
	t.Parallel()
	for _, o := range outcomes {
		t.Run(o.name, func(t *testing.T) {
			t.Parallel()
			tries, _ := run(t, o, 3, 100)
			if tries != 1 && tries != 3 {
				t.Fatalf("%d attempts of 3 allowed: the fast path retried and the executor did not, or the reverse", tries)
			}
			_, fastCounts := run(t, o, 1, 1)
			if tries == 3 {
				if _, bothCount := run(t, o, 2, 2); bothCount != fastCounts {
					t.Errorf("the fast path counts it as a failure: %v; the executor: %v", fastCounts, bothCount)
				}
			}
			t.Logf("retried: %v, a failure for the breaker: %v", tries == 3, fastCounts)
		})
	}
}
