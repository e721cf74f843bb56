package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
)

// simulated is a two-service system, both simulated: rides calls pricing over
// rest and publishes an event that pricing consumes.
const simulated = `version: 1
services:
  pricing:
    listen: 127.0.0.1:0
    subscriptions: [rides.ride.requested.v1]
    simulate:
      endpoints:
        - endpoint: GET /v1/prices/{zone}
          latency: {p50: 4ms, p99: 20ms}
      handlers:
        - event: rides.ride.requested.v1
          latency: 2ms
  rides:
    listen: 127.0.0.1:0
    dependencies:
      pricing: {protocol: rest}
    publishes: [rides.ride.requested.v1]
    simulate:
      seed: 7
      endpoints:
        - endpoint: POST /v1/rides
          latency: 10ms
          error_rate: 0.01
          calls:
            - {to: pricing, endpoint: "GET /v1/prices/{zone}", count: 2, parallel: true}
          publishes:
            - {type: rides.ride.requested.v1, data: {zone: "{{request.zone}}"}}
        - endpoint: WS /v1/rides/{id}/updates
          interval: 1s
          messages: 5
`

func TestASimulateBlockDecodes(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("sim.yaml", []byte(simulated), nil)
	if err != nil {
		t.Fatal(err)
	}
	rides, pricing := cfg.Service("rides"), cfg.Service("pricing")
	if !rides.Simulated() || !pricing.Simulated() || cfg.Service("nobody").Simulated() {
		t.Fatal("Simulated() is wrong")
	}
	post := rides.Simulate.Endpoints[0]
	if post.Latency.P50 != 10*time.Millisecond || post.Latency.P99 != 10*time.Millisecond {
		t.Errorf("a fixed latency is p50 = p99: %+v", post.Latency)
	}
	if l := pricing.Simulate.Endpoints[0].Latency; l.P50 != 4*time.Millisecond || l.P99 != 20*time.Millisecond {
		t.Errorf("a distribution: %+v", l)
	}
	if c := post.Calls[0]; c.To != "pricing" || c.Count != 2 || !c.Parallel {
		t.Errorf("call: %+v", c)
	}
	if got := post.Publishes[0].Data["zone"]; got != "{{request.zone}}" {
		t.Errorf("emit data: %v", got)
	}
	if rides.Simulate.Seed != 7 || rides.Simulate.Endpoints[1].Messages != 5 {
		t.Errorf("seed or stream: %+v", rides.Simulate)
	}
	if pricing.Simulate.Endpoint("GET /v1/prices/north") == nil || pricing.Simulate.Endpoint("POST /v1/prices/north") != nil {
		t.Error("Endpoint matches by method and path pattern")
	}
	if rides.Replicas != 1 {
		t.Errorf("replicas default to 1, got %d", rides.Replicas)
	}
}

// Every bad simulate block is refused with the file, line, column and dotted key.
func TestBadSimulateBlocksAreRefusedWithFileLineAndKey(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, old, new string
		want           []string
	}{
		{"unknown key", "          latency: 10ms\n", "          latncy: 10ms\n",
			[]string{"sim.yaml:22:11: services.rides.simulate.endpoints.0.latncy:", `unknown key "latncy"`}},
		{"negative error rate", "error_rate: 0.01", "error_rate: -0.5",
			[]string{"sim.yaml:23:11: services.rides.simulate.endpoints.0.error_rate:", "want a share from 0 to 1, got -0.5"}},
		{"a rate above one", "count: 2, parallel: true}", "count: 2, parallel: true, probability: 1.5}",
			[]string{"services.rides.simulate.endpoints.0.calls.0.probability:", "got 1.5"}},
		{"a call to an undeclared dependency", "{to: pricing, endpoint", "{to: drivers, endpoint",
			[]string{"sim.yaml:25:16: services.rides.simulate.endpoints.0.calls.0.to:", "drivers is not a dependency of rides"}},
		{"an event not in publishes", "{type: rides.ride.requested.v1, data", "{type: rides.ride.cancelled.v1, data",
			[]string{"sim.yaml:27:16: services.rides.simulate.endpoints.0.publishes.0.type:", "rides.ride.cancelled.v1 is not among services.rides.publishes"}},
		{"a call to an endpoint the callee does not simulate", "endpoint: \"GET /v1/prices/{zone}\", count", "endpoint: \"GET /v1/quotes/{zone}\", count",
			[]string{"services.rides.simulate.endpoints.0.calls.0.endpoint:", `pricing simulates no endpoint "GET /v1/quotes/{zone}"; it serves "GET /v1/prices/{zone}"`}},
		{"a gRPC method over rest", "endpoint: \"GET /v1/prices/{zone}\", count", "endpoint: pricing.v1.Prices/Get, count",
			[]string{"calls.0.endpoint:", "pricing is called over rest"}},
		{"a malformed endpoint", "endpoint: POST /v1/rides\n", "endpoint: SEND /v1/rides\n",
			[]string{"sim.yaml:21:11: services.rides.simulate.endpoints.0.endpoint:", `want one of GET, POST, PUT, PATCH, DELETE or WS, got "SEND"`}},
		{"a platform path", "endpoint: POST /v1/rides\n", "endpoint: GET /metrics\n",
			[]string{"endpoints.0.endpoint:", "/metrics belongs to the platform"}},
		{"p99 below p50", "{p50: 4ms, p99: 20ms}", "{p50: 40ms, p99: 20ms}",
			[]string{"services.pricing.simulate.endpoints.0.latency.p99:", "20ms is below p50 40ms"}},
		{"a latency without a unit", "latency: 2ms", "latency: 2",
			[]string{"sim.yaml:12:20: services.pricing.simulate.handlers.0.latency:", `"2" is not a duration`}},
		{"a handler for an event not subscribed", "- event: rides.ride.requested.v1", "- event: rides.ride.paid.v1",
			[]string{"services.pricing.simulate.handlers.0.event:", "rides.ride.paid.v1 is not among services.pricing.subscriptions"}},
		{"a stream without an interval", "          interval: 1s\n", "",
			[]string{"services.rides.simulate.endpoints.1.interval:", "a stream needs the interval"}},
		{"stream fields on a request", "          error_rate: 0.01\n", "          error_rate: 0.01\n          messages: 3\n",
			[]string{"services.rides.simulate.endpoints.0:", "interval, messages and message_bytes are for streams"}},
		{"replicas", "  rides:\n    listen: 127.0.0.1:0\n", "  rides:\n    listen: 127.0.0.1:0\n    replicas: 11\n",
			[]string{"sim.yaml:15:5: services.rides.replicas:", "want 1 to 10, got 11"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(simulated, c.old) {
				t.Fatalf("the case's text %q is not in the file", c.old)
			}
			_, err := config.Load("sim.yaml", []byte(strings.Replace(simulated, c.old, c.new, 1)), nil)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestEndpointsParse(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in           string
		kind         config.EndpointKind
		method, path string
	}{
		{"GET /v1/rides/{id}", config.REST, "GET", "/v1/rides/{id}"},
		{"DELETE /v1/files/{path...}", config.REST, "DELETE", "/v1/files/{path...}"},
		{"rides.v1.RideService/Quote", config.GRPC, "POST", "/rides.v1.RideService/Quote"},
		{"WS /v1/rides/{id}/updates", config.Stream, "GET", "/v1/rides/{id}/updates"},
	} {
		kind, method, path, err := config.ParseEndpoint(c.in)
		if err != nil || kind != c.kind || method != c.method || path != c.path {
			t.Errorf("%q: %v %q %q %v", c.in, kind, method, path, err)
		}
	}
	for _, bad := range []string{"/v1/rides", "GET v1/rides", "GET /v1/{id", "GET /v1/{rest...}/more", "rides.RideService/", "Quote"} {
		if _, _, _, err := config.ParseEndpoint(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"/v1/prices/{zone}", "/v1/prices/north", true},
		{"/v1/prices/{zone}", "/v1/prices", false},
		{"/v1/files/{p...}", "/v1/files/a/b/c", true},
		{"/v1/prices/north", "/v1/quotes/north", false},
	} {
		if got := config.PathsMatch(c.a, c.b); got != c.want {
			t.Errorf("PathsMatch(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

func TestDeclaredTrafficIsCheckedAgainstTheGateway(t *testing.T) {
	t.Parallel()
	src := simulated + `gateway:
  routes:
    - {prefix: /api/v1/rides, service: rides, auth: none}
load:
  rate: 25
  mix:
    - {request: POST /api/v1/rides, weight: 3, body: {zone: north}}
    - {request: "WS /api/v1/rides/{id}/updates"}
`
	cfg, err := config.Load("sim.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.Load
	if l.Target != "gateway" || l.Rate != 25 || l.Duration.Std() != 30*time.Second || l.Mix[1].Weight != 1 || l.Mix[1].Messages != 3 {
		t.Errorf("defaults: %+v %+v", l, l.Mix[1])
	}
	_, err = config.Load("sim.yaml", []byte(strings.Replace(src, "POST /api/v1/rides", "POST /api/v1/drivers", 1)), nil)
	if err == nil || !strings.Contains(err.Error(), "load.mix.0.request: no gateway route serves /api/v1/drivers") {
		t.Errorf("a request no route serves: %v", err)
	}
	_, err = config.Load("sim.yaml", []byte(strings.Replace(src, "rate: 25", "rate: -1", 1)), nil)
	if err == nil || !strings.Contains(err.Error(), "load.rate:") {
		t.Errorf("a negative rate: %v", err)
	}
}

func TestErrorsFoundAfterLoadingArePlaced(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("sim.yaml", []byte(simulated), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.Errorf("services.rides.publishes.0", "no schema for %s", "rides.ride.requested.v1")
	if got := e.Error(); got != "sim.yaml:17:17: services.rides.publishes.0: no schema for rides.ride.requested.v1" {
		t.Errorf("got %q", got)
	}
}
