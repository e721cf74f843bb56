package gateway_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/switchyard/switchyard/gateway"
)

// The single entry point: a route per public path prefix, rewritten to the
// service's own path and sent through a transport (an rpc client, in a platform);
// per-route auth, timeout, body limit and rate limit; anything else a problem.
func ExampleNew() {
	seats := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "seats saw %s", r.URL.Path)
	}))
	defer seats.Close()
	gw, err := gateway.New(gateway.Config{Routes: []gateway.Route{{
		Prefix: "/api/v1/shows", Auth: gateway.AuthNone, Timeout: 5 * time.Second,
		RateLimit: gateway.Limit{Rate: 100, Burst: 200},
		Upstream:  gateway.Upstream{Name: "seats", Host: strings.TrimPrefix(seats.URL, "http://"), Transport: http.DefaultTransport},
	}}})
	if err != nil {
		panic(err)
	}
	for _, path := range []string{"/api/v1/shows/jazz-night", "/api/v1/nowhere"} {
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		body, _, _ := strings.Cut(rec.Body.String(), ",")
		fmt.Println(rec.Code, rec.Header().Get("Content-Type"), body)
	}
	// Output:
	// 200 text/plain; charset=utf-8 seats saw /v1/shows/jazz-night
	// 404 application/problem+json {"type":"urn:switchyard:problem:not-found"
}
