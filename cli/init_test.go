package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/config"
)

// The questions on a terminal make the same system as the flags would.
func TestInitAsksTheTemplatesQuestions(t *testing.T) {
	answers := strings.Join([]string{
		"rides",
		"riders rider-team Riders and their accounts.",
		"trips trips-team",
		"",
		"trips -> riders grpc",
		"",
		"trips: trips.trip.requested.v1 -> riders",
		"",
		"trips: /v1/trips/{id}/updates",
		"",
		"trips",
		"",
	}, "\n") + "\n"
	var out bytes.Buffer
	sys, err := ask(strings.NewReader(answers), &out)
	if err != nil {
		t.Fatal(err)
	}
	if err := sys.parse(); err != nil {
		t.Fatal(err)
	}
	if sys.Name != "rides" || len(sys.Services) != 2 || sys.Services[0].Description != "Riders and their accounts." ||
		sys.calls[0] != (callSpec{"trips", "riders", "grpc"}) || sys.events[0].subscribers[0] != "riders" ||
		sys.streams[0].path != "/v1/trips/{id}/updates" || sys.Entry[0] != "trips" || sys.Broker != "nats" {
		t.Errorf("got %+v", sys)
	}
	for _, q := range []string{"The system's name", "Its services", "Synchronous calls", "Events", "Real-time streams", "through the gateway", "broker"} {
		if !strings.Contains(out.String(), q) {
			t.Errorf("init did not ask %q:\n%s", q, out.String())
		}
	}
	e := &Env{App: &App{Name: "switchyard"}}
	files, err := e.project(sys)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load("switchyard.yaml", files["switchyard.yaml"], nil)
	if err != nil {
		t.Fatalf("the written platform does not load: %v\n%s", err, files["switchyard.yaml"])
	}
	trips := cfg.Service("trips")
	if !trips.Simulated() || trips.Dependencies["riders"].Protocol != "grpc" || trips.Simulate.Endpoint("WS /v1/trips/{id}/updates") == nil ||
		cfg.Service("riders").Simulate.Endpoint("rides.riders.v1.RidersService/Get") == nil || cfg.Load == nil || len(cfg.Load.Mix) != 3 {
		t.Errorf("the written platform:\n%s", files["switchyard.yaml"])
	}
	if _, ok := files["events/trips.trip.requested.v1.json"]; !ok {
		t.Error("no schema for the event")
	}
}

func TestInitRefusesASystemThatIsNotWhole(t *testing.T) {
	for _, c := range []struct {
		sys  system
		want string
	}{
		{system{Name: "x", Services: []serviceSpec{{Name: "a"}}, Calls: []string{"a -> b"}}, `calls[0]: "a -> b": no service "b" among the services`},
		{system{Name: "x", Services: []serviceSpec{{Name: "a"}}, Calls: []string{"a => a"}}, `calls[0]: "a => a": want "caller -> callee"`},
		{system{Name: "x", Services: []serviceSpec{{Name: "a"}}, Events: []string{"a: OrderPlaced -> a"}}, `events[0]: "a: OrderPlaced -> a": want`},
		{system{Name: "x", Services: []serviceSpec{{Name: "a"}}, Events: []string{"a: a.thing.made -> a"}}, `"a.thing.made" is not an event type`},
		{system{Name: "x", Services: []serviceSpec{{Name: "A"}}}, `services[0]: "A" is not a service name`},
		{system{Name: "x", Services: []serviceSpec{{Name: "a"}}, Streams: []string{"a: updates"}}, `streams[0]: "a: updates": want "service: /path"`},
		{system{Name: "x"}, "services: list at least one"},
		{system{Name: "x", Services: []serviceSpec{{Name: "a"}}, Broker: "rabbit"}, `broker: want nats or kafka, got "rabbit"`},
	} {
		err := c.sys.parse()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.sys, err, c.want)
		}
	}
}
