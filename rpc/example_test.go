package rpc_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/resilience"
	"github.com/switchyard/switchyard/rpc"
)

// A client of one dependency: its instances from a resolver (a static list here;
// natskv or dns in a platform), balanced per attempt, every call under the
// dependency's policy, with the caller's deadline sent along. Address requests to
// BaseURL: the client picks the instance.
func ExampleNewClient() {
	seats := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s, deadline sent: %v", r.Method, r.URL.Path, r.Header.Get(rpc.TimeoutHeader) != "")
	}))
	defer seats.Close()
	addr := strings.TrimPrefix(seats.URL, "http://")
	c, err := rpc.NewClient(context.Background(), rpc.ClientConfig{
		Service:  "seats",
		Resolver: discovery.NewStatic(discovery.Instance{Service: "seats", ID: "seats-1", Addr: addr}),
		Policy:   resilience.Config{Timeout: time.Second, MaxAttempts: 3},
	})
	if err != nil {
		panic(err)
	}
	resp, err := c.HTTPClient().Get(c.BaseURL() + "/v1/shows")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(c.BaseURL(), "→", string(body))
	// Output: http://seats → GET /v1/shows, deadline sent: true
}
