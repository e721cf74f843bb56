// Package diagram draws how services talked, from the spans they recorded: the
// interaction diagram of a window of traffic (who calls whom, over what, how often,
// how often it failed) as text in the style of the design seeds or as a Mermaid
// flowchart, and the sequence diagram of one trace (client, gateway, services,
// broker and databases; calls, replies, events, failures and retries) as Mermaid or
// SVG. It also compares what was seen with what switchyard.yaml declares.
//
// Nothing here is guessed from configuration: an edge exists because a span says a
// call, an event or a statement happened.
package diagram

import (
	"cmp"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/observe"
	"github.com/switchyard/switchyard/telemetry"
)

// Protocol is how two participants talk.
type Protocol string

// The protocols an edge can have.
const (
	HTTP  Protocol = "HTTP"
	GRPC  Protocol = "gRPC"
	Event Protocol = "event"
	SQL   Protocol = "SQL"
)

// Async reports whether the sender does not wait for the receiver.
func (p Protocol) Async() bool { return p == Event }

// The participants that are not services.
const (
	Client = "client" // whoever called the platform from outside
	Bus    = "bus"    // the broker
)

// DatabaseOf names the participant for a service's own database.
func DatabaseOf(service string) string { return service + "-db" }

// Edge is one observed (or declared) kind of interaction between two participants.
type Edge struct {
	From     string   `json:"from"`
	To       string   `json:"to"`
	Protocol Protocol `json:"protocol"`
	// Label is the event type, for event edges.
	Label string `json:"label,omitempty"`
	// Calls counts calls, events published or delivered, or statements.
	Calls int `json:"calls"`
	// Errors counts those that failed.
	Errors int `json:"errors"`
	// Retries counts attempts that failed and were tried again (calls) or
	// redeliveries (events).
	Retries int `json:"retries,omitempty"`
	// BreakerOpen counts the calls an open circuit breaker refused before they
	// reached the callee.
	BreakerOpen int `json:"breaker_open,omitempty"`
}

// ErrorRate is Errors over Calls.
func (e Edge) ErrorRate() float64 {
	if e.Calls == 0 {
		return 0
	}
	return float64(e.Errors) / float64(e.Calls)
}

func (e Edge) key() string {
	return e.From + "\x00" + e.To + "\x00" + string(e.Protocol) + "\x00" + e.Label
}

// Flow is an event's whole path: published by From, delivered by the bus to To.
type Flow struct {
	From  string `json:"from"`
	Type  string `json:"type"`
	To    string `json:"to"`
	Count int    `json:"count"`
}

// Graph is the interaction diagram of a set of spans.
type Graph struct {
	Edges []Edge `json:"edges"`
	Flows []Flow `json:"flows"`
	// Traces is how many traces the spans came from.
	Traces int `json:"traces"`
}

// Interactions derives the edges the spans prove:
//
//   - a client span to a peer service is a call (HTTP or gRPC by rpc.system), failed
//     when the span failed, with a retry for each failed attempt it records;
//   - a server span with no parent among the spans is a call from outside (client);
//   - a span carrying an event type is a publication (producer; counted once per
//     message) or a delivery (consumer; a redelivery counts as a retry);
//   - a span carrying db.system.name is a statement on the service's database.
func Interactions(spans []observe.Span) Graph {
	byID := make(map[string]*observe.Span, len(spans))
	traces := map[string]bool{}
	for i := range spans {
		byID[spans[i].SpanID] = &spans[i]
		traces[spans[i].TraceID] = true
	}
	edges := map[string]*Edge{}
	add := func(e Edge, failed bool, retries int) *Edge {
		k := e.key()
		got, ok := edges[k]
		if !ok {
			got = &e
			edges[k] = got
		}
		got.Calls++
		if failed {
			got.Errors++
		}
		got.Retries += retries
		return got
	}
	published := map[string]bool{}
	flows := map[Flow]int{}
	for _, s := range spans {
		eventType := s.Attr("cloudevents.event_type")
		switch {
		case s.Attr("db.system.name", "db.system") != "":
			add(Edge{From: s.Service, To: DatabaseOf(s.Service), Protocol: SQL}, s.Error, 0)
		case s.Kind == observe.Client && s.Peer() != "":
			e := add(Edge{From: s.Service, To: s.Peer(), Protocol: protocolOf(s)}, s.Error, failedAttempts(s))
			if slices.ContainsFunc(s.Events, func(ev observe.Event) bool { return ev.Name == "breaker open" }) {
				e.BreakerOpen++
			}
		case s.Kind == observe.Server && byID[s.ParentID] == nil:
			// No parent, or one outside the spans (a client that sends its own
			// traceparent): a call from outside.
			add(Edge{From: Client, To: s.Service, Protocol: protocolOf(s)}, s.Error, 0)
		case s.Kind == observe.Producer && eventType != "":
			id := s.Attr("messaging.message.id")
			if id != "" && published[id] {
				continue // the relay's send of a message already counted when written
			}
			published[id] = true
			add(Edge{From: s.Service, To: Bus, Protocol: Event, Label: eventType}, s.Error, 0)
		case s.Kind == observe.Consumer && eventType != "":
			redelivery := 0
			if a := s.Attr(telemetry.KeyDeliveryAttempt); a != "" && a != "1" {
				redelivery = 1
			}
			add(Edge{From: Bus, To: s.Service, Protocol: Event, Label: eventType}, s.Error, redelivery)
			if p := byID[s.ParentID]; p != nil && redelivery == 0 {
				flows[Flow{From: p.Service, Type: eventType, To: s.Service}]++
			}
		}
	}
	g := Graph{Traces: len(traces)}
	for _, e := range edges {
		g.Edges = append(g.Edges, *e)
	}
	SortEdges(g.Edges)
	for f, n := range flows {
		f.Count = n
		g.Flows = append(g.Flows, f)
	}
	slices.SortFunc(g.Flows, func(a, b Flow) int {
		return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.Type, b.Type), cmp.Compare(a.To, b.To))
	})
	return g
}

// SortEdges orders edges: calls from outside first, then by caller, callee,
// protocol and label.
func SortEdges(edges []Edge) {
	rank := func(e Edge) int {
		switch {
		case e.From == Client:
			return 0
		case e.Protocol == SQL:
			return 3
		case e.Protocol == Event:
			return 2
		}
		return 1
	}
	slices.SortFunc(edges, func(a, b Edge) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To),
			cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Label, b.Label))
	})
}

func protocolOf(s observe.Span) Protocol {
	if s.Attr("rpc.system.name", "rpc.system") == "grpc" || strings.HasPrefix(s.Attr("http.route", "url.path"), "/switchyard.") {
		return GRPC
	}
	return HTTP
}

func failedAttempts(s observe.Span) int {
	n := 0
	for _, e := range s.Events {
		if e.Name == "attempt failed" {
			n++
		}
	}
	if s.Error && n > 0 {
		n-- // the last failed attempt was not retried
	}
	return n
}

// Drift compares declared edges with observed ones (SQL and client edges are not
// declared and are ignored): declared but never seen, and seen but not declared.
func Drift(declared, observed []Edge) (unseen, undeclared []Edge) {
	seen := map[string]bool{}
	for _, e := range observed {
		seen[e.key()] = true
	}
	want := map[string]bool{}
	for _, e := range declared {
		want[e.key()] = true
		if !seen[e.key()] {
			unseen = append(unseen, e)
		}
	}
	for _, e := range observed {
		if e.Protocol != SQL && e.From != Client && !want[e.key()] {
			undeclared = append(undeclared, e)
		}
	}
	SortEdges(unseen)
	SortEdges(undeclared)
	return unseen, undeclared
}
