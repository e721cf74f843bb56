package resilience_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/resilience"
)

// One dependency's policy: an overall deadline and a per-try timeout, retries with
// backoff for calls safe to repeat, a breaker and a bulkhead. Here the dependency
// fails once and then answers: the GET is retried into success; the POST, not safe
// to repeat, is not.
func ExamplePolicy_Do() {
	var calls atomic.Int64
	dep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1)%2 == 1 {
			w.WriteHeader(http.StatusServiceUnavailable) // every other call fails
		}
	}))
	defer dep.Close()
	p, err := resilience.New(resilience.Config{
		Dependency: "seats", Timeout: 2 * time.Second, TryTimeout: 500 * time.Millisecond,
		MaxAttempts: 3, Backoff: time.Millisecond, ConsecutiveFailures: 5,
	})
	if err != nil {
		panic(err)
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		calls.Store(0)
		req, _ := http.NewRequest(method, dep.URL, nil)
		resp, err := p.Do(context.Background(), req, http.DefaultTransport.RoundTrip)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Printf("%s: %d after %d attempts\n", method, resp.StatusCode, calls.Load())
	}
	// Output:
	// GET: 200 after 2 attempts
	// POST: 503 after 1 attempts
}
