package diagram

import (
	"cmp"
	"fmt"
	"html"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/observe"
	"github.com/switchyard/switchyard/telemetry"
)

// Arrow is the kind of a sequence diagram message.
type Arrow int

// The message kinds.
const (
	Call   Arrow = iota // a synchronous request: solid, filled head
	Reply               // its answer: dotted
	Async               // an event sent or delivered: solid, open head
	Failed              // a request, attempt or delivery that failed: a cross
	Note                // a note over a participant (a saga step)
)

// Message is one arrow (or note) of a sequence diagram.
type Message struct {
	At    time.Time `json:"at"`
	From  string    `json:"from"`
	To    string    `json:"to"`
	Text  string    `json:"text"`
	Arrow Arrow     `json:"arrow"`
	// Count is how many identical messages in a row this one stands for.
	Count int `json:"count"`
}

// Sequence is the sequence diagram of one trace.
type Sequence struct {
	TraceID      string    `json:"trace_id"`
	Participants []string  `json:"participants"`
	Messages     []Message `json:"messages"`
}

// SequenceOf draws trace t:
//
//   - a server span is a call from its caller (the service of its parent span, or the
//     client for a root) and, when it ends, a reply carrying the status code — a
//     failed reply when the span failed;
//   - each failed attempt a client span records is a failed call; a client span that
//     failed with no server span below it is one too (the callee never answered);
//   - an event is an asynchronous message from its sender to the bus (when the relay
//     sent it, else when it was written; again when a dead letter is replayed) and
//     from the bus to each consumer — a failed one when the handler failed;
//   - a statement is a call to the service's database (repeats in a row folded);
//   - a saga step is a note over its service.
func SequenceOf(t observe.Trace) Sequence {
	spans := slices.Clone(t.Spans)
	observe.SortSpans(spans)
	h := newHops(spans)
	var msgs []Message
	for i := range spans {
		before, after := h.of(&spans[i])
		msgs = append(append(msgs, before...), after...)
	}
	slices.SortStableFunc(msgs, func(a, b Message) int { return a.At.Compare(b.At) })
	return Sequence{TraceID: t.ID, Participants: participants(msgs), Messages: fold(msgs)}
}

// hops says what each span of a trace draws.
type hops struct {
	byID     map[string]*observe.Span
	children map[string]int
	sent     map[string]bool // message ids the relay's send spans cover
}

func newHops(spans []observe.Span) *hops {
	h := &hops{byID: make(map[string]*observe.Span, len(spans)), children: map[string]int{}, sent: map[string]bool{}}
	for i := range spans {
		s := &spans[i]
		h.byID[s.SpanID] = s
		h.children[s.ParentID]++
		if s.Kind == observe.Producer && relayed(s) && s.Attr("messaging.message.id") != "" {
			h.sent[s.Attr("messaging.message.id")] = true
		}
	}
	return h
}

// of returns the messages span s draws: those before what it caused, and those
// after (a server span's reply).
func (h *hops) of(s *observe.Span) (before, after []Message) {
	eventType := s.Attr("cloudevents.event_type")
	switch {
	case s.Attr("db.system.name", "db.system") != "":
		arrow := Call
		if s.Error {
			arrow = Failed
		}
		return []Message{{At: s.Start, From: s.Service, To: DatabaseOf(s.Service), Text: s.Name, Arrow: arrow}}, nil
	case s.Kind == observe.Server:
		caller := Client // no parent among the spans: a call from outside
		if p := h.byID[s.ParentID]; p != nil {
			caller = p.Service
		}
		if caller == s.Service {
			return nil, nil
		}
		reply, arrow := s.Attr("rpc.response.status_code", "http.response.status_code"), Reply
		if s.Error {
			arrow = Failed
			reply = strings.TrimSpace(reply + " " + s.Status)
		}
		if left, ok := ranOut(s); ok {
			arrow = Failed
			reply = strings.TrimSpace(reply + " — deadline ran out here (" + left.String() + " left on arrival)")
		}
		return []Message{{At: s.Start, From: caller, To: s.Service, Text: operationOf(*s), Arrow: Call}},
			[]Message{{At: s.End, From: s.Service, To: caller, Text: cmp.Or(reply, "done"), Arrow: arrow}}
	case s.Kind == observe.Client && s.Peer() != "":
		peer := s.Peer()
		for _, e := range s.Events {
			if e.Name == "attempt failed" {
				before = append(before, Message{At: e.Time, From: s.Service, To: peer,
					Text: "attempt failed: " + cmp.Or(e.Attributes[telemetry.KeyOutcome], "error"), Arrow: Failed})
			}
		}
		if s.Error && h.children[s.SpanID] == 0 {
			text := s.Name + ": " + cmp.Or(s.Status, "failed")
			if left, ok := ranOut(s); ok {
				text += " — deadline ran out here (" + left.String() + " left when called)"
			}
			after = append(after, Message{At: s.End, From: s.Service, To: peer, Text: text, Arrow: Failed})
		}
		return before, after
	case s.Kind == observe.Producer && eventType != "":
		relayed, replayed := relayed(s), s.Attr(telemetry.KeyDeadLetterID) != ""
		if !relayed && !replayed && h.sent[s.Attr("messaging.message.id")] {
			return nil, nil // drawn when the relay sent it
		}
		text, arrow := eventType, Async
		if replayed {
			text = "replay " + eventType + " (dead letter " + s.Attr(telemetry.KeyDeadLetterID) + ")"
		}
		if s.Error {
			arrow = Failed
		}
		return []Message{{At: s.Start, From: s.Service, To: Bus, Text: text, Arrow: arrow}}, nil
	case s.Kind == observe.Consumer && eventType != "":
		text, arrow := eventType, Async
		if a := s.Attr(telemetry.KeyDeliveryAttempt); a != "" && a != "1" {
			text += " (redelivery " + a + ")"
		}
		if s.Error {
			arrow = Failed
			text += ": " + s.Status
		}
		return []Message{{At: s.Start, From: Bus, To: s.Service, Text: text, Arrow: arrow}}, nil
	case s.Attr(telemetry.KeySagaStep) != "":
		return []Message{{At: s.Start, From: s.Service, To: s.Service,
			Text: "saga " + s.Attr(telemetry.KeySagaAction) + " " + s.Attr(telemetry.KeySagaStep), Arrow: Note}}, nil
	}
	return nil, nil
}

// ranOut reports whether span s outlasted the deadline it arrived with, and what
// that deadline left it.
func ranOut(s *observe.Span) (time.Duration, bool) {
	left, ok := s.DeadlineLeft()
	return left, ok && s.Duration() >= left
}

// operationOf names a server span's operation: its name, unless that names a
// subtree route (a gRPC service mounted at its prefix, in a trace of a tool that
// names spans so), when the method's full path says more.
func operationOf(s observe.Span) string {
	if strings.HasSuffix(s.Name, "/") {
		if p := s.Attr("url.path"); p != "" {
			return s.Attr("http.request.method") + " " + p
		}
	}
	return s.Name
}

// relayed says whether a producer span is a relay's send of an event written
// before (messaging operation send, not a replay), rather than its writing.
func relayed(s *observe.Span) bool {
	return s.Attr("messaging.operation.name") == "send" || s.Attr(telemetry.KeyOutbox) != ""
}

// fold merges identical messages in a row into one with a count.
func fold(msgs []Message) []Message {
	var out []Message
	for _, m := range msgs {
		m.Count = 1
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.From == m.From && last.To == m.To && last.Text == m.Text && last.Arrow == m.Arrow {
				last.Count++
				continue
			}
		}
		out = append(out, m)
	}
	return out
}

// participants orders the lifelines: the client, then services as they first take
// part, each database right of its service, the bus last.
func participants(msgs []Message) []string {
	var services []string
	dbs := map[string]bool{}
	bus := false
	for _, m := range msgs {
		for _, p := range []string{m.From, m.To} {
			switch {
			case p == Bus:
				bus = true
			case p == Client:
			case strings.HasSuffix(p, "-db") && m.Arrow != Note && p == DatabaseOf(m.From):
				dbs[p] = true
			case !slices.Contains(services, p):
				services = append(services, p)
			}
		}
	}
	var out []string
	for _, m := range msgs {
		if m.From == Client || m.To == Client {
			out = append(out, Client)
			break
		}
	}
	for _, s := range services {
		out = append(out, s)
		if dbs[DatabaseOf(s)] {
			out = append(out, DatabaseOf(s))
		}
	}
	if bus {
		out = append(out, Bus)
	}
	return out
}

// Mermaid writes the sequence as a Mermaid sequenceDiagram.
func (s Sequence) Mermaid(w io.Writer) error {
	var b strings.Builder
	b.WriteString("sequenceDiagram\n")
	for _, p := range s.Participants {
		kind := "participant"
		if p == Client {
			kind = "actor"
		}
		fmt.Fprintf(&b, "  %s %s as %s\n", kind, nodeID(p), mermaidText(p))
	}
	for _, m := range s.Messages {
		text := mermaidText(label(m))
		if m.Arrow == Note {
			fmt.Fprintf(&b, "  Note over %s: %s\n", nodeID(m.From), text)
			continue
		}
		fmt.Fprintf(&b, "  %s%s%s: %s\n", nodeID(m.From), mermaidArrow(m), nodeID(m.To), text)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func label(m Message) string {
	if m.Count > 1 {
		return fmt.Sprintf("%s ×%d", m.Text, m.Count)
	}
	return m.Text
}

func mermaidArrow(m Message) string {
	switch m.Arrow {
	case Reply:
		return "-->>"
	case Async:
		return "-)"
	case Failed:
		return "-x"
	}
	return "->>"
}

// SVG writes the sequence as a standalone SVG image: lifelines, solid calls, dotted
// replies, open-headed events, red crosses for failures.
func (s Sequence) SVG(w io.Writer) error {
	const (
		colW, rowH, top, left = 150, 26, 50, 20
	)
	x := map[string]int{}
	for i, p := range s.Participants {
		x[p] = left + colW/2 + i*colW
	}
	width := left*2 + colW*max(len(s.Participants), 1)
	height := top + rowH*(len(s.Messages)+1) + 20
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="system-ui, sans-serif" font-size="12">`+"\n", width, height, width, height)
	b.WriteString(`<defs><marker id="filled" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#333"/></marker>` +
		`<marker id="open" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10" fill="none" stroke="#333"/></marker>` +
		`<marker id="cross" viewBox="0 0 10 10" refX="5" refY="5" markerWidth="9" markerHeight="9"><path d="M0,0 L10,10 M10,0 L0,10" stroke="#c0392b" stroke-width="2"/></marker></defs>` + "\n")
	for _, p := range s.Participants {
		fill := "#eef3fb"
		switch {
		case p == Client:
			fill = "#fff7e0"
		case p == Bus:
			fill = "#f3eefb"
		case strings.HasSuffix(p, "-db"):
			fill = "#eefbf1"
		}
		fmt.Fprintf(&b, `<g class="participant" data-name="%s"><rect x="%d" y="10" width="%d" height="26" rx="4" fill="%s" stroke="#667"/><text x="%d" y="27" text-anchor="middle">%s</text>`+
			`<line x1="%d" y1="36" x2="%d" y2="%d" stroke="#aab" stroke-dasharray="3,3"/></g>`+"\n",
			html.EscapeString(p), x[p]-colW/2+8, colW-16, fill, x[p], html.EscapeString(p), x[p], x[p], height-10)
	}
	for i, m := range s.Messages {
		y := top + rowH*(i+1)
		text := html.EscapeString(label(m))
		if m.Arrow == Note {
			fmt.Fprintf(&b, `<g class="note"><rect x="%d" y="%d" width="%d" height="18" fill="#fffbe6" stroke="#d4b106"/><text x="%d" y="%d" text-anchor="middle" font-style="italic">%s</text></g>`+"\n",
				x[m.From]-colW/2+4, y-13, colW-8, x[m.From], y, text)
			continue
		}
		x1, x2 := x[m.From], x[m.To]
		dash, marker, stroke := "", "filled", "#333"
		switch m.Arrow {
		case Reply:
			dash = ` stroke-dasharray="5,3"`
		case Async:
			dash, marker = ` stroke-dasharray="2,2"`, "open"
		case Failed:
			marker, stroke = "cross", "#c0392b"
		}
		fmt.Fprintf(&b, `<g class="message arrow-%d"><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"%s marker-end="url(#%s)"/><text x="%d" y="%d" text-anchor="middle" fill="%s">%s</text></g>`+"\n",
			m.Arrow, x1, y, x2, y, stroke, dash, marker, (x1+x2)/2, y-4, stroke, text)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
