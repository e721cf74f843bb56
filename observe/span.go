// Package observe keeps what a running platform says about itself — its spans and
// its log lines — so that the platform can be asked how its services talked.
//
// Under `switchyard up` one [Hub] receives every service's spans over OTLP/HTTP
// (the same protocol an OpenTelemetry Collector, Jaeger or Tempo accepts, so a
// service exports to the hub and to any of those the same way) and every service's
// log lines from the supervisor, keeps the recent ones in bounded memory, and
// answers queries: traces, spans over a window, log lines by service, level and
// trace. The diagram package turns its spans into interaction and sequence diagrams.
//
// Why our own store and not a Collector or Jaeger: `up` must run on a machine with
// only Go, in one binary; an in-process store bounded by count is all a developer's
// machine needs. In production, export to a real backend and point `switchyard
// diagram` at its query API (Jaeger) or at an OTLP JSON file.
package observe

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Span is one finished span, flattened from OTLP: what the diagrams and the
// dashboard need, nothing more.
type Span struct {
	TraceID  string `json:"trace_id"`
	SpanID   string `json:"span_id"`
	ParentID string `json:"parent_id,omitempty"`
	// Service is the resource's service.name.
	Service string `json:"service"`
	// Instance is the resource's service.instance.id.
	Instance string    `json:"instance,omitempty"`
	Name     string    `json:"name"`
	Kind     Kind      `json:"kind"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	// Error is set when the span's status is Error; Status holds its message.
	Error  bool   `json:"error,omitempty"`
	Status string `json:"status,omitempty"`
	// Attributes are stringified; only the ones a reader needs are used.
	Attributes map[string]string `json:"attributes,omitempty"`
	Events     []Event           `json:"events,omitempty"`
}

// Event is a span event (a failed attempt, a recorded error).
type Event struct {
	Name       string            `json:"name"`
	Time       time.Time         `json:"time"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Kind is a span's kind, as OpenTelemetry names them.
type Kind string

// The span kinds.
const (
	Internal Kind = "internal"
	Server   Kind = "server"
	Client   Kind = "client"
	Producer Kind = "producer"
	Consumer Kind = "consumer"
)

// Duration is how long the span took.
func (s Span) Duration() time.Duration { return s.End.Sub(s.Start) }

// Attr returns the first of keys the span carries, or "".
func (s Span) Attr(keys ...string) string {
	for _, k := range keys {
		if v, ok := s.Attributes[k]; ok {
			return v
		}
	}
	return ""
}

// Peer is the service a client span calls: its service.peer.name, or
// peer.service in traces of instrumentation that follows older conventions.
func (s Span) Peer() string { return s.Attr("service.peer.name", "peer.service") }

// Operation is what a request or call span did: its RPC method
// (package.Service/Method), or its HTTP method and path (from url.path on a
// server span, url.full on a client's).
func (s Span) Operation() string {
	if m := s.Attr("rpc.method"); m != "" {
		return m
	}
	path := s.Attr("url.path")
	if full := s.Attr("url.full"); path == "" && full != "" {
		if u, err := url.Parse(full); err == nil {
			path = u.Path
		}
	}
	return strings.TrimSpace(s.Attr("http.request.method") + " " + path)
}

// DeadlineAttribute is the span attribute recording, in milliseconds, the time a
// request's deadline left it on arrival (server spans) or when the call began
// (client spans).
const DeadlineAttribute = "switchyard.deadline.remaining_ms"

// DeadlineLeft is what the span's deadline left it (DeadlineAttribute), if it
// recorded one.
func (s Span) DeadlineLeft() (time.Duration, bool) {
	ms, err := strconv.ParseInt(s.Attr(DeadlineAttribute), 10, 64)
	if err != nil {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

// Trace is the spans of one trace, ordered by start.
type Trace struct {
	ID    string `json:"trace_id"`
	Spans []Span `json:"spans"`
}

// Summary describes a trace in a list.
type Summary struct {
	ID       string    `json:"trace_id"`
	Root     string    `json:"root"`
	Services []string  `json:"services"`
	Start    time.Time `json:"start"`
	Duration float64   `json:"duration_ms"`
	Spans    int       `json:"spans"`
	Errors   int       `json:"errors"`
}

// Summarize describes t: its root (the span without a parent in the trace, else the
// earliest), the services it touched, its extent and its failed spans.
func Summarize(t Trace) Summary {
	s := Summary{ID: t.ID, Spans: len(t.Spans)}
	if len(t.Spans) == 0 {
		return s
	}
	ids := make(map[string]bool, len(t.Spans))
	for _, sp := range t.Spans {
		ids[sp.SpanID] = true
	}
	var root *Span
	start, end := t.Spans[0].Start, t.Spans[0].End
	for i, sp := range t.Spans {
		if !ids[sp.ParentID] && (root == nil || sp.Start.Before(root.Start)) {
			root = &t.Spans[i]
		}
		if sp.Start.Before(start) {
			start = sp.Start
		}
		if sp.End.After(end) {
			end = sp.End
		}
		if sp.Error {
			s.Errors++
		}
		if !slices.Contains(s.Services, sp.Service) {
			s.Services = append(s.Services, sp.Service)
		}
	}
	slices.Sort(s.Services)
	if root == nil { // every span's parent is in the trace: a cycle only a forger makes
		root = &t.Spans[0]
	}
	s.Root = root.Service + ": " + root.Name
	s.Start = start
	s.Duration = float64(end.Sub(start).Microseconds()) / 1000
	return s
}

// SortSpans orders spans by start time, parents before children that start with them.
func SortSpans(spans []Span) {
	slices.SortStableFunc(spans, func(a, b Span) int { return a.Start.Compare(b.Start) })
}
