// Package faults runs fault scenarios against a declared system: a scenario file
// names the platform, the load, a schedule of faults and what must hold; the
// runner starts the platform under `switchyard up` (with a broker of its own when
// the scenario breaks the broker), sends the load through `switchyard load`,
// brings each fault at its time, then judges — the platform's own check command,
// the error rate and p99 in and after each fault's window — and writes a report:
// text, JSON and an SVG of the run with the faults marked.
//
// Faults are real: a SIGKILL or SIGSTOP of a service's process, found through the
// stack's stack.json (up's supervisor restarts a killed one on its address), or of
// the private nats-server the runner owns. A schedule can be drawn at random
// from a seed (the same seed draws the same schedule) and, when it fails, shrunk
// to a smaller one that still fails (Shrink).
package faults

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/config"
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
	// Broker is embedded (up's own) or private (a nats-server the runner starts on
	// a free port and owns, so that faults can break it) [embedded].
	Broker string `yaml:"broker"`
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

// Fault is one fault of the schedule: exactly one of Kill, Stop and Broker.
type Fault struct {
	// At is when it starts, from the start of the load.
	At config.Duration `yaml:"at"`
	// Kill sends SIGKILL to the named service's processes (every replica); up's
	// supervisor restarts them on their address.
	Kill string `yaml:"kill"`
	// Stop sends SIGSTOP to the named service's processes, SIGCONT after For.
	Stop string `yaml:"stop"`
	// Broker kills (kill) or freezes (stop) the private broker, bringing it back
	// after For.
	Broker string `yaml:"broker"`
	// For is how long the fault lasts (Stop, Broker) [5s].
	For config.Duration `yaml:"for"`
}

// Kind names the fault's kind: kill, stop, broker-kill, broker-stop.
func (f Fault) Kind() string {
	switch {
	case f.Kill != "":
		return "kill"
	case f.Stop != "":
		return "stop"
	}
	return "broker-" + f.Broker
}

// Target is what the fault hits.
func (f Fault) Target() string {
	switch {
	case f.Kill != "":
		return f.Kill
	case f.Stop != "":
		return f.Stop
	}
	return "broker"
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
	if d := f.Lasts(); d > 0 {
		s += fmt.Sprintf(" for %s", d)
	}
	return s
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
}

// Bound is a limit during the faults and after them; negative means none.
type Bound struct {
	During *float64 `yaml:"during"`
	After  *float64 `yaml:"after"`
}

var kinds = []string{"kill", "stop", "broker-kill", "broker-stop"}

// LoadFile reads a scenario strictly: an unknown key, a bad value or a fault that
// names no known service is an error naming the file, line and key. services
// lists the platform's services, to check names against (nil skips the check).
func LoadFile(path string, services []string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, services)
}

// Parse reads a scenario from data (named source in errors).
func Parse(source string, data []byte, services []string) (*Scenario, error) {
	var s Scenario
	doc, err := config.Decode(source, data, &s)
	if err != nil {
		return nil, err
	}
	s.Source = source
	var errs config.Errors
	bad := func(key, format string, args ...any) {
		errs = append(errs, doc.Errorf(key, format, args...))
	}
	known := func(key, name string) {
		if services != nil && !slices.Contains(services, name) {
			bad(key, "no service %q in the platform (%s)", name, strings.Join(services, ", "))
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
	if s.Load.Rate < 0 || s.Load.Rate > 10000 {
		bad("load.rate", "want 0 to 10000 requests a second, got %v", s.Load.Rate)
	}
	if s.Load.Duration < 0 {
		bad("load.duration", "must not be negative")
	}
	for i, f := range s.Faults {
		key := fmt.Sprintf("faults.%d", i)
		set := 0
		for _, v := range []string{f.Kill, f.Stop, f.Broker} {
			if v != "" {
				set++
			}
		}
		switch {
		case set != 1:
			bad(key, "a fault is exactly one of kill: <service>, stop: <service> or broker: kill|stop")
		case f.Kill != "":
			known(key+".kill", f.Kill)
		case f.Stop != "":
			known(key+".stop", f.Stop)
		case f.Broker != "kill" && f.Broker != "stop":
			bad(key+".broker", "want kill or stop, got %q", f.Broker)
		case s.Broker != "private":
			bad(key+".broker", "the broker can be broken only when the runner owns it: set broker: private")
		}
		if f.At < 0 || f.For < 0 {
			bad(key, "at and for must not be negative")
		}
		if f.Kill != "" && f.For != 0 {
			bad(key+".for", "a kill is instant (the supervisor restarts the service); stop it for a while instead")
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
