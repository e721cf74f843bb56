// Package faults runs fault scenarios against a declared system: a scenario file
// names the platform, the engines, the load, a schedule of faults and what must
// hold; the runner starts the platform under `switchyard up` (with a broker, a
// PostgreSQL server and proxies of its own when the scenario breaks them), sends
// the load through `switchyard load`, brings each fault at its time, then judges —
// the platform's own check command, every event consumed, the dead letters, each
// process's growth, readiness after each fault, the error rate and p99 in and
// after each fault's window — and writes a report: text, JSON and an SVG of the
// run with the faults marked.
//
// Faults are real: a SIGKILL or SIGSTOP of a service's process, found through the
// stack's stack.json (up's supervisor restarts a killed one on its address), of
// the runner's broker, or of every process of the runner's PostgreSQL (made with
// initdb); latency, a narrow pipe, resets, black holes or a peer gone on one edge,
// through a TCP proxy (testkit/faultproxy) whose address the caller is handed
// instead of the callee's; and deliveries broken on the broker itself —
// duplicated, late, reversed, or poison. A schedule can be drawn at random from a
// seed (the same seed draws the same schedule) and, when it fails, shrunk to a
// smaller one that still fails (Shrink).
//
// Why our own runner and not an existing chaos tool: those (Chaos Mesh, Litmus,
// Pumba) act on Kubernetes or containers, neither of which a laptop run has, and
// judge nothing of the system's own invariants; toxiproxy, which this uses for
// edges, breaks connections but brings no load, no schedule and no verdict.
package faults

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/event"
)

// Scenario is a scenario as written in its file.
type Scenario struct {
	// Version of the format; only 1 exists.
	Version int `yaml:"version"`
	// Name of the scenario, for the report [the file's name].
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Platform is the switchyard.yaml run, relative to the scenario's file [the
	// binary's built-in platform].
	Platform string `yaml:"platform"`
	// Broker is embedded (up's own) or private (a NATS server the runner starts —
	// the binary's own `broker`, every write synced — on a free port and owns, so
	// that faults can break it) [embedded].
	Broker string `yaml:"broker"`
	// Database is embedded (each service its own SQLite file, or what the platform
	// declares) or private (a PostgreSQL server the runner makes with initdb on a
	// free port and owns, so that faults can break it) [embedded].
	Database string `yaml:"database"`
	// DatabaseServices are the services whose database is on the private server
	// [every service]; the others keep theirs.
	DatabaseServices []string `yaml:"database_services"`
	// Redis is the platform's own (what it declares, or none) or private (a
	// redis-server the runner starts on a free port and owns) [the platform's].
	Redis string `yaml:"redis"`
	// Set changes the platform for the run, key=value as `switchyard lint --set`
	// takes them (services.orders.dependencies.payments.policy.bulkhead.max_concurrent=4):
	// a smaller bulkhead to exhaust, a shorter timeout to try.
	Set []string `yaml:"set"`
	// Replicas runs more processes of a service than the platform declares
	// (<SERVICE>_REPLICAS), for faults on one of them (kill: inventory#2).
	Replicas map[string]int `yaml:"replicas"`
	// Load is sent for the whole run.
	Load Load `yaml:"load"`
	// Faults are brought at their times.
	Faults []Fault `yaml:"faults"`
	// Random, when present, draws more faults from a vocabulary (see --seed).
	Random *Random `yaml:"random"`
	// Assert is what must hold.
	Assert Assert `yaml:"assert"`

	// Source is the file it was read from.
	Source string `yaml:"-"`
	// consumers are the platform's consumers of each event type, when known.
	consumers map[string][]string
}

// Load is the traffic of a run: `switchyard load` with these flags.
type Load struct {
	// Rate per second [10].
	Rate float64 `yaml:"rate"`
	// Duration of the load [30s].
	Duration config.Duration `yaml:"duration"`
	// Args are more flags for the load command (the binary's own: the shop's
	// --customers, --declines, --retry-window).
	Args []string `yaml:"args"`
}

// Fault is one fault of the schedule: exactly one of Kill, Stop, Broker,
// Database, Edge and Deliveries.
type Fault struct {
	// At is when it starts, from the start of the load — or, with When, from when
	// it starts waiting for its trigger.
	At config.Duration `yaml:"at"`
	// When holds the fault back until something happens in the system (a saga
	// step tried, a counter risen); a trigger that never fires before the load
	// ends leaves the fault not brought, which fails the run.
	When *Trigger `yaml:"when,omitempty"`
	// Kill sends SIGKILL to the named service's processes (every replica), or to
	// one replica, service#N (#1 the first); up's supervisor restarts them on
	// their address.
	Kill string `yaml:"kill,omitempty"`
	// Stop sends SIGSTOP to the named service's processes, SIGCONT after For.
	Stop string `yaml:"stop,omitempty"`
	// Broker kills (kill) or freezes (stop) the private broker, bringing it back
	// after For.
	Broker string `yaml:"broker,omitempty"`
	// Database kills (kill: every process of the server, SIGKILL) or freezes (stop)
	// the private PostgreSQL server, bringing it back after For.
	Database string `yaml:"database,omitempty"`
	// Redis kills (kill; back empty after For) or freezes (stop) the private Redis.
	Redis string `yaml:"redis,omitempty"`
	// Edge is "caller -> callee" — callee a service, broker, database or redis — whose
	// connections the runner's proxy breaks for For, in one of the ways below.
	Edge string `yaml:"edge,omitempty"`
	// Latency delays every answer on the edge, give or take Jitter.
	Latency config.Duration `yaml:"latency,omitempty"`
	Jitter  config.Duration `yaml:"jitter,omitempty"`
	// Bandwidth narrows the answers to this many KB a second.
	Bandwidth int `yaml:"bandwidth_kbps,omitempty"`
	// Reset resets every connection as soon as data flows (TCP RST).
	Reset bool `yaml:"reset,omitempty"`
	// BlackHole swallows everything and answers nothing: only a timeout ends a call.
	BlackHole bool `yaml:"blackhole,omitempty"`
	// Down closes the edge's connections and refuses new ones.
	Down bool `yaml:"down,omitempty"`
	// Deliveries delivers the events of type Event published during For again:
	// duplicate (at once), late (after Delay) or reversed (each second's in
	// reverse order) — to every consumer group of that type; or, with poison,
	// publishes ten events a second of that type no consumer can take (data
	// against the schema, or no CloudEvent at all), each of which must end in the
	// dead letters of every group that consumes the type.
	Deliveries string `yaml:"deliveries,omitempty"`
	// Event is the type whose deliveries break (Deliveries).
	Event string `yaml:"event,omitempty"`
	// Delay is how late a late delivery comes [2s].
	Delay config.Duration `yaml:"delay,omitempty"`
	// For is how long the fault lasts (all but Kill) [5s].
	For config.Duration `yaml:"for,omitempty"`
}

// Kind names the fault's kind: kill, stop, broker-kill, broker-stop,
// database-kill, database-stop, latency, bandwidth, reset, blackhole, down
// (the edge faults), duplicate, late, reversed (the delivery faults).
func (f Fault) Kind() string {
	switch {
	case f.Kill != "":
		return "kill"
	case f.Stop != "":
		return "stop"
	case f.Broker != "":
		return "broker-" + f.Broker
	case f.Database != "":
		return "database-" + f.Database
	case f.Redis != "":
		return "redis-" + f.Redis
	case f.Deliveries != "":
		return f.Deliveries
	}
	return f.edgeKind()
}

// edgeKind is the way an edge fault breaks the edge, "" when none is set.
func (f Fault) edgeKind() string {
	switch {
	case f.Latency > 0:
		return "latency"
	case f.Bandwidth > 0:
		return "bandwidth"
	case f.Reset:
		return "reset"
	case f.BlackHole:
		return "blackhole"
	case f.Down:
		return "down"
	}
	return ""
}

// Target is what the fault hits.
func (f Fault) Target() string {
	switch {
	case f.Kill != "":
		return f.Kill
	case f.Stop != "":
		return f.Stop
	case f.Broker != "":
		return "broker"
	case f.Database != "":
		return "database"
	case f.Redis != "":
		return "redis"
	case f.Deliveries != "":
		return f.Event
	}
	return f.Edge
}

// Lasts is how long the fault is on: a kill is instant (the restart is the
// supervisor's), the others last For.
func (f Fault) Lasts() time.Duration {
	if f.Kill != "" {
		return 0
	}
	return f.For.Or(5 * time.Second)
}

func (f Fault) String() string {
	s := fmt.Sprintf("at %s %s %s", f.At, f.Kind(), f.Target())
	if f.When != nil {
		s = fmt.Sprintf("from %s %s, %s %s", f.At, f.When, f.Kind(), f.Target())
	}
	switch {
	case f.Latency > 0 && f.Jitter > 0:
		s += fmt.Sprintf(" %s±%s", f.Latency, f.Jitter)
	case f.Latency > 0:
		s += " " + f.Latency.String()
	case f.Bandwidth > 0:
		s += fmt.Sprintf(" %d KB/s", f.Bandwidth)
	case f.Deliveries == "late":
		s += " by " + f.Delay.Or(2*time.Second).String()
	}
	if d := f.Lasts(); d > 0 {
		s += fmt.Sprintf(" for %s", d)
	}
	return s
}

// Ends are the two ends of an edge, "caller -> callee".
func (f Fault) Ends() (caller, callee string) {
	caller, callee, _ = strings.Cut(f.Edge, "->")
	return strings.TrimSpace(caller), strings.TrimSpace(callee)
}

// Random draws faults from a vocabulary.
type Random struct {
	// Faults is how many to draw [3].
	Faults int `yaml:"faults"`
	// Kinds to draw from: kill, stop, broker-kill, broker-stop [kill, stop].
	Kinds []string `yaml:"kinds"`
	// Services to hit [every declared service].
	Services []string `yaml:"services"`
	// From and To bound when faults start [a tenth to two thirds of the load].
	From config.Duration `yaml:"from"`
	To   config.Duration `yaml:"to"`
	// For bounds how long a stop lasts [1s to 5s].
	For config.Duration `yaml:"for"`
	// Edges to break, for the edge kinds (latency, reset, blackhole, down).
	Edges []string `yaml:"edges"`
	// Events whose deliveries to break, for duplicate.
	Events []string `yaml:"events"`
}

// Assert is what must hold after (and during) the run.
type Assert struct {
	// Check runs the binary's `check --wait <settle>` after the load [true].
	Check *bool `yaml:"check"`
	// Command, instead of check, is a command run after the load; it must exit 0.
	// "{bin}" is the switchyard binary, "{data}" the stack's data directory.
	Command []string `yaml:"command"`
	// Settle is how long the check may wait for every saga to end and every outbox
	// to drain [30s].
	Settle config.Duration `yaml:"settle"`
	// ErrorRate bounds the share of failed requests during each fault's window
	// (its start to its end plus Recovery) and after the last window.
	ErrorRate Bound `yaml:"error_rate"`
	// P99 bounds the 99th percentile latency after the last window.
	P99 config.Duration `yaml:"p99_after"`
	// Recovery is how long after a fault ends it still counts as during [5s].
	Recovery config.Duration `yaml:"recovery"`
	// Ready bounds how long after each fault ends every process answers /readyz
	// with 200 again (a restarted service, a database reconnected) [unbounded;
	// measured either way].
	Ready config.Duration `yaml:"ready_within"`
	// DeadLetters bounds the dead letters on the broker after the run [0]; -1
	// leaves them unjudged.
	DeadLetters *int `yaml:"dead_letters"`
	// Leaks bounds how much each process grew from before the load to after it
	// settled, read from its /metrics.
	Leaks Leaks `yaml:"leaks"`
	// Metrics bound how much counters of the services' /metrics rose over the
	// run: proof that a fault did what it was for (a bulkhead refused calls), or
	// that something never happened (no saga stuck).
	Metrics []MetricBound `yaml:"metrics"`
}

// MetricBound bounds the rise of one service's metric (a counter, or a
// histogram's count), summed over the series with Labels, from before the load to
// after the run; a process restarted meanwhile counts from zero.
type MetricBound struct {
	Service string            `yaml:"service"`
	Metric  string            `yaml:"metric"`
	Labels  map[string]string `yaml:"labels"`
	AtLeast *float64          `yaml:"at_least"`
	AtMost  *float64          `yaml:"at_most"`
}

func (m MetricBound) trigger() *Trigger {
	return &Trigger{Service: m.Service, Metric: m.Metric, Labels: m.Labels}
}

// Leaks bounds each process's growth over a run; a process restarted meanwhile
// is not compared. Zero fields take the default in brackets; -1 leaves one
// unjudged.
type Leaks struct {
	// Goroutines more than before the load [100].
	Goroutines int `yaml:"goroutines"`
	// RSSMB is resident memory more than before the load, in MiB [128].
	RSSMB int `yaml:"rss_mb"`
	// FDs is open file descriptors (sockets among them) more than before [64].
	FDs int `yaml:"fds"`
	// Services whose processes are held to these bounds [every process].
	Services []string `yaml:"services"`
}

// off reports whether every bound is off (-1).
func (l Leaks) off() bool { return l.Goroutines == -1 && l.RSSMB == -1 && l.FDs == -1 }

// Bound is a limit during the faults and after them; negative means none.
type Bound struct {
	During *float64 `yaml:"during"`
	After  *float64 `yaml:"after"`
}

var (
	kinds      = []string{"kill", "stop", "broker-kill", "broker-stop", "database-kill", "database-stop", "redis-kill", "redis-stop", "latency", "reset", "blackhole", "down", "duplicate"}
	edgeKinds  = []string{"latency", "reset", "blackhole", "down"}
	deliveries = []string{"duplicate", "late", "reversed", "poison"}
)

// Platform is what a scenario is checked against: the services and who calls
// whom (the gateway's calls under "gateway").
type Platform struct {
	Services []string
	Calls    map[string][]string
	// Consumers are the services subscribed to each event type.
	Consumers map[string][]string
}

// PlatformOf describes a loaded platform.
func PlatformOf(cfg *config.Config) *Platform {
	p := &Platform{Services: cfg.ServiceNames(), Calls: map[string][]string{}, Consumers: map[string][]string{}}
	for name, s := range cfg.Services {
		for dep := range s.Dependencies {
			p.Calls[name] = append(p.Calls[name], dep)
		}
		for _, t := range s.Subscriptions {
			p.Consumers[t] = append(p.Consumers[t], name)
		}
	}
	if g := cfg.GatewayService(); g != nil {
		for dep := range g.Dependencies {
			p.Calls["gateway"] = append(p.Calls["gateway"], dep)
		}
	}
	return p
}

// LoadFile reads a scenario strictly: an unknown key, a bad value or a fault that
// names no known service or edge is an error naming the file, line and key.
// platform is checked against (nil skips those checks).
func LoadFile(path string, platform *Platform) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, platform)
}

// Parse reads a scenario from data (named source in errors).
func Parse(source string, data []byte, platform *Platform) (*Scenario, error) {
	var s Scenario
	doc, err := config.Decode(source, data, &s)
	if err != nil {
		return nil, err
	}
	s.Source = source
	if platform != nil {
		s.consumers = platform.Consumers
	}
	var errs config.Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, doc.Errorf(key, format, args...))
	}
	known := func(key, name string) {
		name, n, replica := strings.Cut(name, "#")
		if i, err := strconv.Atoi(n); replica && (err != nil || i < 1) {
			bad(key, "a replica is <service>#<n>, n from 1, got %q", name+"#"+n)
		}
		if platform != nil && !slices.Contains(platform.Services, name) {
			bad(key, "no service %q in the platform (%s)", name, strings.Join(platform.Services, ", "))
		}
	}
	edge := func(key, e string) {
		caller, callee, ok := strings.Cut(e, "->")
		caller, callee = strings.TrimSpace(caller), strings.TrimSpace(callee)
		switch {
		case !ok || caller == "" || callee == "":
			bad(key, "want caller -> callee (a service, broker or database), got %q", e)
		case callee == "broker" && s.Broker != "private":
			bad(key, "an edge to the broker needs the runner's broker: set broker: private")
		case callee == "database" && s.Database != "private":
			bad(key, "an edge to the database needs the runner's database: set database: private")
		case callee == "redis" && s.Redis != "private":
			bad(key, "an edge to Redis needs the runner's Redis: set redis: private")
		case callee == "database" && len(s.DatabaseServices) > 0 && !slices.Contains(s.DatabaseServices, caller):
			bad(key, "%s's database is not on the private server (database_services)", caller)
		case platform == nil:
		case caller != "gateway" && !slices.Contains(platform.Services, caller):
			bad(key, "no service %q in the platform (%s)", caller, strings.Join(platform.Services, ", "))
		case callee != "broker" && callee != "database" && callee != "redis" && !slices.Contains(platform.Calls[caller], callee):
			bad(key, "%s does not call %s (it calls %s)", caller, callee, strings.Join(platform.Calls[caller], ", "))
		}
	}
	if s.Version != 1 {
		bad("version", "want 1, got %d", s.Version)
	}
	switch s.Broker {
	case "", "embedded", "private":
	default:
		bad("broker", "want embedded or private, got %q", s.Broker)
	}
	switch s.Database {
	case "", "embedded", "private":
	default:
		bad("database", "want embedded or private, got %q", s.Database)
	}
	if s.Redis != "" && s.Redis != "private" {
		bad("redis", "want private (or nothing: the platform's own), got %q", s.Redis)
	}
	if len(s.DatabaseServices) > 0 && s.Database != "private" {
		bad("database_services", "these go on the runner's PostgreSQL: set database: private")
	}
	for i, name := range s.DatabaseServices {
		known(fmt.Sprintf("database_services.%d", i), name)
	}
	for i, kv := range s.Set {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			bad(fmt.Sprintf("set.%d", i), "want key=value, e.g. services.orders.dependencies.payments.policy.bulkhead.max_concurrent=4, got %q", kv)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.Replicas)) {
		known("replicas."+name, name)
		if n := s.Replicas[name]; n < 1 || n > 10 {
			bad("replicas."+name, "want 1 to 10, got %d", n)
		}
	}
	if s.Load.Rate < 0 || s.Load.Rate > 10000 {
		bad("load.rate", "want 0 to 10000 requests a second, got %v", s.Load.Rate)
	}
	if s.Load.Duration < 0 {
		bad("load.duration", "must not be negative")
	}
	for i, f := range s.Faults {
		key := fmt.Sprintf("faults.%d", i)
		set := 0
		for _, v := range []string{f.Kill, f.Stop, f.Broker, f.Database, f.Redis, f.Edge, f.Deliveries} {
			if v != "" {
				set++
			}
		}
		switch {
		case set != 1:
			bad(key, "a fault is exactly one of kill: <service>, stop: <service>, broker: kill|stop, database: kill|stop, redis: kill|stop, edge: <caller> -> <callee> or deliveries: duplicate|late|reversed|poison")
		case f.Kill != "":
			known(key+".kill", f.Kill)
		case f.Stop != "":
			known(key+".stop", f.Stop)
		case f.Broker != "" && f.Broker != "kill" && f.Broker != "stop":
			bad(key+".broker", "want kill or stop, got %q", f.Broker)
		case f.Broker != "" && s.Broker != "private":
			bad(key+".broker", "the broker can be broken only when the runner owns it: set broker: private")
		case f.Database != "" && f.Database != "kill" && f.Database != "stop":
			bad(key+".database", "want kill or stop, got %q", f.Database)
		case f.Database != "" && s.Database != "private":
			bad(key+".database", "the database can be broken only when the runner owns it: set database: private")
		case f.Edge != "":
			edge(key+".edge", f.Edge)
			ways := 0
			for _, on := range []bool{f.Latency > 0, f.Bandwidth > 0, f.Reset, f.BlackHole, f.Down} {
				if on {
					ways++
				}
			}
			if ways != 1 {
				bad(key, "an edge fault breaks the edge one way: latency: <d>, bandwidth_kbps: <n>, reset: true, blackhole: true or down: true")
			}
		case f.Redis != "" && f.Redis != "kill" && f.Redis != "stop":
			bad(key+".redis", "want kill or stop, got %q", f.Redis)
		case f.Redis != "" && s.Redis != "private":
			bad(key+".redis", "Redis can be broken only when the runner owns it: set redis: private")
		case f.Broker != "" || f.Database != "" || f.Redis != "":
		case !slices.Contains(deliveries, f.Deliveries):
			bad(key+".deliveries", "want one of %s, got %q", strings.Join(deliveries, ", "), f.Deliveries)
		default:
			if _, err := event.ParseType(f.Event); err != nil {
				bad(key+".event", "deliveries break one event type: %v", err)
			}
		}
		if f.Edge == "" && (f.Latency != 0 || f.Jitter != 0 || f.Bandwidth != 0 || f.Reset || f.BlackHole || f.Down) {
			bad(key, "latency, jitter, bandwidth_kbps, reset, blackhole and down break an edge: name it with edge:")
		}
		if f.Jitter > 0 && f.Latency == 0 {
			bad(key+".jitter", "jitter varies a latency: set latency too")
		}
		if f.Deliveries == "" && (f.Event != "" || f.Delay != 0) {
			bad(key, "event and delay go with deliveries:")
		}
		if f.At < 0 || f.For < 0 || f.Latency < 0 || f.Jitter < 0 || f.Delay < 0 || f.Bandwidth < 0 {
			bad(key, "times and rates must not be negative")
		}
		if f.Kill != "" && f.For != 0 {
			bad(key+".for", "a kill is instant (the supervisor restarts the service); stop it for a while instead")
		}
		if w := f.When; w != nil {
			if w.Service != "gateway" {
				known(key+".when.service", w.Service)
			}
			if (w.SagaStep == "") == (w.Metric == "") {
				bad(key+".when", "a trigger is one of saga_step: <step> or metric: <name> (with labels, rises)")
			}
			if w.SagaStep != "" && len(w.Labels) > 0 {
				bad(key+".when.labels", "labels go with metric:")
			}
			if w.Rises < 0 {
				bad(key+".when.rises", "must not be negative")
			}
		}
	}
	if r := s.Random; r != nil {
		if r.Faults < 0 || r.Faults > 50 {
			bad("random.faults", "want 1 to 50, got %d", r.Faults)
		}
		for i, k := range r.Kinds {
			if !slices.Contains(kinds, k) {
				bad(fmt.Sprintf("random.kinds.%d", i), "want one of %s, got %q", strings.Join(kinds, ", "), k)
			}
			if strings.HasPrefix(k, "broker-") && s.Broker != "private" {
				bad(fmt.Sprintf("random.kinds.%d", i), "%s needs broker: private", k)
			}
			if strings.HasPrefix(k, "database-") && s.Database != "private" {
				bad(fmt.Sprintf("random.kinds.%d", i), "%s needs database: private", k)
			}
			if strings.HasPrefix(k, "redis-") && s.Redis != "private" {
				bad(fmt.Sprintf("random.kinds.%d", i), "%s needs redis: private", k)
			}
			if slices.Contains(edgeKinds, k) && len(r.Edges) == 0 {
				bad(fmt.Sprintf("random.kinds.%d", i), "%s breaks an edge: list them under random.edges", k)
			}
			if k == "duplicate" && len(r.Events) == 0 {
				bad(fmt.Sprintf("random.kinds.%d", i), "duplicate breaks deliveries: list the event types under random.events")
			}
		}
		for i, e := range r.Edges {
			edge(fmt.Sprintf("random.edges.%d", i), e)
		}
		for i, t := range r.Events {
			if _, err := event.ParseType(t); err != nil {
				bad(fmt.Sprintf("random.events.%d", i), "%v", err)
			}
		}
		for i, name := range r.Services {
			known(fmt.Sprintf("random.services.%d", i), name)
		}
		if r.To != 0 && r.To < r.From {
			bad("random.to", "%s is before from %s", r.To, r.From)
		}
	}
	if len(s.Assert.Command) > 0 && s.Assert.Check != nil && *s.Assert.Check {
		bad("assert.command", "a command replaces check; drop check: true")
	}
	if l := s.Assert.Leaks; l.Goroutines < -1 || l.RSSMB < -1 || l.FDs < -1 {
		bad("assert.leaks", "a bound is a number of goroutines, MiB or descriptors, or -1 for none")
	}
	for i, name := range s.Assert.Leaks.Services {
		if name != "gateway" {
			known(fmt.Sprintf("assert.leaks.services.%d", i), name)
		}
	}
	for i, m := range s.Assert.Metrics {
		key := fmt.Sprintf("assert.metrics.%d", i)
		if m.Service != "gateway" {
			known(key+".service", m.Service)
		}
		if m.Metric == "" {
			bad(key+".metric", "name the metric")
		}
		if m.AtLeast == nil && m.AtMost == nil {
			bad(key, "bound it: at_least, at_most, or both")
		}
	}
	if d := s.Assert.DeadLetters; d != nil && *d < -1 {
		bad("assert.dead_letters", "want a number of dead letters, or -1 for none, got %d", *d)
	}
	for key, v := range map[string]*float64{"assert.error_rate.during": s.Assert.ErrorRate.During, "assert.error_rate.after": s.Assert.ErrorRate.After} {
		if v != nil && (*v < 0 || *v > 1) {
			bad(key, "want a share from 0 to 1, got %v", *v)
		}
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b *config.Error) int { return a.Line - b.Line })
		return nil, errs
	}
	if s.Name == "" {
		s.Name = strings.TrimSuffix(baseName(source), ".yaml")
	}
	if s.Load.Rate == 0 {
		s.Load.Rate = 10
	}
	if s.Load.Duration == 0 {
		s.Load.Duration = config.Duration(30 * time.Second)
	}
	return &s, nil
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// Checks reports whether the platform's check runs after the load.
func (a Assert) Checks() bool { return len(a.Command) == 0 && (a.Check == nil || *a.Check) }
