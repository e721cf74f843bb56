package config

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// Simulate describes how a service behaves before its code exists: what each of its
// endpoints answers and how long it takes, whom it calls and which events it
// publishes while answering, and how it handles the events it consumes. A service
// declaring one runs as a simulation (package simulate) on the same platform as
// real code: its own process, database, outbox and inbox, the real call stack.
type Simulate struct {
	// Seed makes the simulation's choices (latencies, errors, outcomes) repeat from
	// run to run; 0 draws a new seed at every start.
	Seed uint64 `yaml:"seed"`
	// Endpoints are what the service serves.
	Endpoints []*Endpoint `yaml:"endpoints"`
	// Handlers say how the service handles each event type it subscribes to; a
	// subscribed type without one is handled at once, making no calls.
	Handlers []*Handler `yaml:"handlers"`
}

// Endpoint is one simulated endpoint.
type Endpoint struct {
	// Endpoint names it: "GET /v1/rides/{id}" (REST: a method and a path pattern),
	// "rides.v1.RideService/Quote" (a unary gRPC method) or "WS /v1/rides/{id}/updates"
	// (a WebSocket stream). Required.
	Endpoint string `yaml:"endpoint"`
	// Latency is the service's own processing time per request, beside the calls it
	// makes: a duration ("8ms"), or a distribution {p50: 8ms, p99: 40ms} [0].
	Latency Latency `yaml:"latency"`
	// ErrorRate is the share of requests answered with ErrorStatus, 0 to 1 [0].
	ErrorRate float64 `yaml:"error_rate"`
	// ErrorStatus is the HTTP status of a simulated error, 400 to 599 [503]
	// (gRPC: its code, e.g. 503 → unavailable).
	ErrorStatus int `yaml:"error_status"`
	// ResponseBytes is the size of a generated answer [256]; Response replaces it.
	ResponseBytes int `yaml:"response_bytes"`
	// Response is the answer, a template: strings "{{id}}" (a new id),
	// "{{now}}", "{{request.<field>}}" and "{{path.<name>}}" are filled in. For a
	// gRPC method whose generated code the binary links, it is the response
	// message in its JSON form.
	Response any `yaml:"response"`
	// Outcomes, when given, are weighted alternative answers (an approval and a
	// decline), each with its own status, response and events.
	Outcomes []*Outcome `yaml:"outcomes"`
	// Calls are made, in order, before the answer.
	Calls []*Call `yaml:"calls"`
	// Publishes are the events each request writes through the outbox.
	Publishes []*Emit `yaml:"publishes"`

	// Interval between the messages of a stream (WS). Required for a stream.
	Interval Duration `yaml:"interval"`
	// Messages a stream sends before closing; 0 sends until the client leaves.
	Messages int `yaml:"messages"`
	// MessageBytes is the size of each message of a stream [128].
	MessageBytes int `yaml:"message_bytes"`
}

// Outcome is one weighted answer of an endpoint.
type Outcome struct {
	// Weight relative to the other outcomes; required, positive.
	Weight float64 `yaml:"weight"`
	// Status of the answer [200].
	Status int `yaml:"status"`
	// Response replaces the endpoint's (see Endpoint.Response).
	Response any `yaml:"response"`
	// Publishes are written besides the endpoint's own.
	Publishes []*Emit `yaml:"publishes"`
}

// Call is a call a simulated endpoint or handler makes to a declared dependency.
type Call struct {
	// To is the dependency, by name; it must be declared under dependencies.
	To string `yaml:"to"`
	// Endpoint on the dependency: "GET /v1/drivers/{id}" over rest,
	// "drivers.v1.DriverService/Nearby" over grpc. Path parameters are filled with
	// new ids.
	Endpoint string `yaml:"endpoint"`
	// Count is how many such calls each request makes [1].
	Count int `yaml:"count"`
	// Probability that a request makes them, 0 to 1 [1].
	Probability *float64 `yaml:"probability"`
	// Parallel sends the Count calls at once instead of one after another.
	Parallel bool `yaml:"parallel"`
	// Optional calls may fail without failing the request.
	Optional bool `yaml:"optional"`
	// Body is the request body (REST) or message (gRPC, in its JSON form), a
	// template like Endpoint.Response [none].
	Body any `yaml:"body"`
}

// Emit is an event a simulated endpoint or handler publishes.
type Emit struct {
	// Type is the event type; the service must declare it under publishes.
	Type string `yaml:"type"`
	// Probability that a request publishes it, 0 to 1 [1].
	Probability *float64 `yaml:"probability"`
	// Subject of the event, a template [a new id].
	Subject string `yaml:"subject"`
	// Data are fields set over data generated from the event's schema; templates.
	Data map[string]any `yaml:"data"`
}

// Handler is how a simulated service handles one event type.
type Handler struct {
	// Event is the type; the service must subscribe to it.
	Event string `yaml:"event"`
	// Latency is the processing time per event [0].
	Latency Latency `yaml:"latency"`
	// ErrorRate is the share of deliveries failing (redelivered, then dead-lettered).
	ErrorRate float64 `yaml:"error_rate"`
	// Calls and Publishes are made while handling; templates may read the event's
	// data as "{{event.<field>}}".
	Calls     []*Call `yaml:"calls"`
	Publishes []*Emit `yaml:"publishes"`
}

// Latency is a processing time: fixed, or log-normal with the given median and
// 99th percentile.
type Latency struct {
	P50 time.Duration `yaml:"p50"`
	P99 time.Duration `yaml:"p99"`
}

// UnmarshalYAML reads "8ms" or {p50: 8ms, p99: 40ms}, placing a bad value.
func (l *Latency) UnmarshalYAML(node ast.Node) error {
	parse := func(n ast.Node) (time.Duration, error) {
		var d Duration
		if err := d.UnmarshalYAML(n); err != nil {
			return 0, err
		}
		return d.Std(), nil
	}
	if m, ok := node.(*ast.MappingNode); ok || node.Type() == ast.MappingValueType {
		var values []*ast.MappingValueNode
		if ok {
			values = m.Values
		} else {
			values = []*ast.MappingValueNode{node.(*ast.MappingValueNode)}
		}
		for _, kv := range values {
			d, err := parse(kv.Value)
			if err != nil {
				return err
			}
			switch k := kv.Key.GetToken().Value; k {
			case "p50":
				l.P50 = d
			case "p99":
				l.P99 = d
			default:
				return &positionError{tok: kv.Key.GetToken(), msg: fmt.Sprintf("unknown key %q: a latency is a duration, or {p50: ..., p99: ...}", k)}
			}
		}
		if l.P99 == 0 {
			l.P99 = l.P50
		}
		return nil
	}
	d, err := parse(node)
	if err != nil {
		return err
	}
	l.P50, l.P99 = d, d
	return nil
}

// MarshalYAML writes the latency back the way it is read.
func (l Latency) MarshalYAML() (any, error) {
	if l.P50 == l.P99 {
		return l.P50.String(), nil
	}
	return map[string]string{"p50": l.P50.String(), "p99": l.P99.String()}, nil
}

// EndpointKind is the kind of an endpoint, from how it is written.
type EndpointKind int

// The kinds of endpoint.
const (
	REST EndpointKind = iota + 1
	GRPC
	Stream
)

var (
	grpcMethod = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*(\.[a-zA-Z_][a-zA-Z0-9_]*)+/[A-Za-z_][A-Za-z0-9_]*$`)
	pathSeg    = regexp.MustCompile(`^([A-Za-z0-9._~!$&'()*+,;=:@%-]+|\{[a-z_][a-z0-9_]*\}|\{[a-z_][a-z0-9_]*\.\.\.\})$`)
	restMethod = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}
)

// ParseEndpoint splits an endpoint as written into its kind, its HTTP method ("" for
// gRPC) and its path (for gRPC, /package.Service/Method).
func ParseEndpoint(s string) (kind EndpointKind, method, path string, err error) {
	if grpcMethod.MatchString(s) {
		return GRPC, "POST", "/" + s, nil
	}
	method, path, ok := strings.Cut(s, " ")
	if !ok {
		return 0, "", "", fmt.Errorf("%q is neither \"METHOD /path\", \"WS /path\" nor a gRPC method package.Service/Method", s)
	}
	switch {
	case method == "WS":
		kind, method = Stream, "GET"
	case slices.Contains(restMethod, method):
		kind = REST
	default:
		return 0, "", "", fmt.Errorf("%q: want one of %s or WS, got %q", s, strings.Join(restMethod, ", "), method)
	}
	if !strings.HasPrefix(path, "/") {
		return 0, "", "", fmt.Errorf("%q: a path starts with /", s)
	}
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i, seg := range segs {
		if seg == "" && i == len(segs)-1 {
			continue // a trailing slash
		}
		if !pathSeg.MatchString(seg) || strings.HasSuffix(seg, "...}") && i != len(segs)-1 {
			return 0, "", "", fmt.Errorf("%q: path segment %q is neither a literal nor a {name} wildcard", s, seg)
		}
	}
	for _, reserved := range []string{"/livez", "/readyz", "/metrics", "/debug/"} {
		if path == reserved || strings.HasPrefix(path, reserved) && strings.HasSuffix(reserved, "/") {
			return 0, "", "", fmt.Errorf("%q: %s belongs to the platform", s, reserved)
		}
	}
	return kind, method, path, nil
}

// PathsMatch reports whether two path patterns can name the same request: the same
// number of segments, each pair equal or one of them a wildcard.
func PathsMatch(a, b string) bool {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	wild := func(s string) bool { return strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") }
	rest := func(s string) bool { return strings.HasSuffix(s, "...}") }
	for i := range max(len(as), len(bs)) {
		switch {
		case i < len(as) && rest(as[i]), i < len(bs) && rest(bs[i]):
			return true
		case i >= len(as) || i >= len(bs):
			return false
		case as[i] != bs[i] && !wild(as[i]) && !wild(bs[i]):
			return false
		}
	}
	return true
}

// Simulated reports whether the service runs as a simulation.
func (s *Service) Simulated() bool { return s != nil && s.Simulate != nil }

// Endpoint returns the simulated endpoint that serves a call written as e (method
// and path, or gRPC method), or nil.
func (s *Simulate) Endpoint(e string) *Endpoint {
	kind, method, path, err := ParseEndpoint(e)
	if err != nil || s == nil {
		return nil
	}
	for _, ep := range s.Endpoints {
		k, m, p, err := ParseEndpoint(ep.Endpoint)
		if err == nil && k == kind && m == method && PathsMatch(p, path) {
			return ep
		}
	}
	return nil
}

// validateSimulate checks a service's simulate block against its declaration and
// the declarations of the services it calls.
func (c *Config) validateSimulate(s *Service) Errors {
	var errs Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	prefix := "services." + s.Name + ".simulate"
	rate := func(key string, v float64) {
		if v < 0 || v > 1 || math.IsNaN(v) {
			bad(key, "want a share from 0 to 1, got %v", v)
		}
	}
	latency := func(key string, l Latency) {
		switch {
		case l.P99 < l.P50:
			bad(key+".p99", "%s is below p50 %s", l.P99, l.P50)
		case l.P99 > time.Minute:
			bad(key, "at most 1m, got %s", l.P99)
		}
	}
	emits := func(key string, list []*Emit) {
		for i, e := range list {
			k := fmt.Sprintf("%s.%d", key, i)
			switch {
			case e == nil || e.Type == "":
				bad(k, "type is required")
			case !slices.Contains(s.Publishes, e.Type):
				bad(k+".type", "%s is not among services.%s.publishes; declare it there first", e.Type, s.Name)
			}
			if e != nil && e.Probability != nil {
				rate(k+".probability", *e.Probability)
			}
		}
	}
	calls := func(key string, list []*Call) {
		for i, call := range list {
			k := fmt.Sprintf("%s.%d", key, i)
			if call == nil || call.To == "" {
				bad(k, "to is required: the dependency called")
				continue
			}
			dep, ok := s.Dependencies[call.To]
			if !ok {
				bad(k+".to", "%s is not a dependency of %s; declare it under services.%s.dependencies", call.To, s.Name, s.Name)
				continue
			}
			kind, _, _, err := ParseEndpoint(call.Endpoint)
			switch {
			case call.Endpoint == "":
				bad(k+".endpoint", "the endpoint called is required")
			case err != nil:
				bad(k+".endpoint", "%v", err)
			case kind == Stream:
				bad(k+".endpoint", "a stream is opened by clients, not called")
			case dep != nil && dep.Protocol == "rest" && kind != REST:
				bad(k+".endpoint", "%s is called over rest: want \"METHOD /path\", got %q", call.To, call.Endpoint)
			case dep != nil && dep.Protocol == "grpc" && kind != GRPC:
				bad(k+".endpoint", "%s is called over grpc: want a method package.Service/Method, got %q", call.To, call.Endpoint)
			default:
				if callee := c.Services[call.To]; callee.Simulated() && callee.Simulate.Endpoint(call.Endpoint) == nil {
					bad(k+".endpoint", "%s simulates no endpoint %q; it serves %s", call.To, call.Endpoint, callee.Simulate.endpointList())
				}
			}
			if call.Count < 0 || call.Count > 100 {
				bad(k+".count", "want 1 to 100, got %d", call.Count)
			}
			if call.Probability != nil {
				rate(k+".probability", *call.Probability)
			}
		}
	}

	seen := map[string]int{}
	for i, ep := range s.Simulate.Endpoints {
		key := fmt.Sprintf("%s.endpoints.%d", prefix, i)
		if ep == nil || ep.Endpoint == "" {
			bad(key, "endpoint is required: \"METHOD /path\", \"WS /path\" or package.Service/Method")
			continue
		}
		kind, method, path, err := ParseEndpoint(ep.Endpoint)
		if err != nil {
			bad(key+".endpoint", "%v", err)
			continue
		}
		if j, dup := seen[method+" "+path]; dup {
			bad(key+".endpoint", "%q is also endpoint %d", ep.Endpoint, j)
		}
		seen[method+" "+path] = i
		latency(key+".latency", ep.Latency)
		rate(key+".error_rate", ep.ErrorRate)
		if ep.ErrorStatus != 0 && (ep.ErrorStatus < 400 || ep.ErrorStatus > 599) {
			bad(key+".error_status", "want an HTTP error status, 400 to 599, got %d", ep.ErrorStatus)
		}
		if ep.ResponseBytes < 0 || ep.ResponseBytes > 1<<20 {
			bad(key+".response_bytes", "want 0 to 1048576, got %d", ep.ResponseBytes)
		}
		for j, o := range ep.Outcomes {
			ok := fmt.Sprintf("%s.outcomes.%d", key, j)
			if o == nil || o.Weight <= 0 || math.IsNaN(o.Weight) || math.IsInf(o.Weight, 0) {
				bad(ok+".weight", "want a positive weight")
				continue
			}
			if o.Status != 0 && (o.Status < 200 || o.Status > 599) {
				bad(ok+".status", "want an HTTP status, 200 to 599, got %d", o.Status)
			}
			emits(ok+".publishes", o.Publishes)
		}
		calls(key+".calls", ep.Calls)
		emits(key+".publishes", ep.Publishes)
		if kind == Stream {
			if ep.Interval.Std() <= 0 {
				bad(key+".interval", "a stream needs the interval between its messages, e.g. 1s")
			}
			if ep.Messages < 0 {
				bad(key+".messages", "must not be negative")
			}
			if ep.MessageBytes < 0 || ep.MessageBytes > 64<<10 {
				bad(key+".message_bytes", "want 0 to 65536, got %d", ep.MessageBytes)
			}
			if len(ep.Outcomes) > 0 || ep.Response != nil {
				bad(key, "a stream sends messages of message_bytes; outcomes and response are for requests")
			}
		} else if ep.Interval != 0 || ep.Messages != 0 || ep.MessageBytes != 0 {
			bad(key, "interval, messages and message_bytes are for streams (WS endpoints)")
		}
	}
	handled := map[string]int{}
	for i, h := range s.Simulate.Handlers {
		key := fmt.Sprintf("%s.handlers.%d", prefix, i)
		if h == nil || h.Event == "" {
			bad(key, "event is required: the type handled")
			continue
		}
		if !slices.Contains(s.Subscriptions, h.Event) {
			bad(key+".event", "%s is not among services.%s.subscriptions; subscribe to it first", h.Event, s.Name)
		}
		if j, dup := handled[h.Event]; dup {
			bad(key+".event", "%s is also handled by handler %d", h.Event, j)
		}
		handled[h.Event] = i
		latency(key+".latency", h.Latency)
		rate(key+".error_rate", h.ErrorRate)
		calls(key+".calls", h.Calls)
		emits(key+".publishes", h.Publishes)
	}
	return errs
}

func (s *Simulate) endpointList() string {
	var list []string
	for _, ep := range s.Endpoints {
		if k, _, _, err := ParseEndpoint(ep.Endpoint); err == nil && k != Stream {
			list = append(list, fmt.Sprintf("%q", ep.Endpoint))
		}
	}
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}
