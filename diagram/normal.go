package diagram

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/observe"
)

// NormalOptions shape a normal sequence.
type NormalOptions struct {
	// Statements keeps the calls to databases (left out by default: they change
	// with the code more often than the conversation between services does).
	Statements bool
}

// NormalSequence draws trace t without its timings, in an order that depends on
// what caused what rather than on when it happened, so that the same flow draws
// the same diagram on every run:
//
//   - each hop's messages are followed by what it caused, depth first; a server
//     span's reply comes after what it caused before it answered, and what it left
//     running (what outlived the request: a saga going on) is drawn once the
//     whole flow has answered its caller;
//   - what a hop caused is in order of start, except that hops whose times
//     overlap (parallel branches) are ordered by what they draw;
//   - an event's deliveries come after its sending, ordered by consumer;
//   - no message carries a time; identical messages in a row are folded.
func NormalSequence(t observe.Trace, opt NormalOptions) Sequence {
	spans := slices.Clone(t.Spans)
	observe.SortSpans(spans)
	h := newHops(spans)
	kids := map[string][]*observe.Span{}
	var roots []*observe.Span
	for i := range spans {
		s := &spans[i]
		if h.byID[s.ParentID] == nil {
			roots = append(roots, s)
		} else {
			kids[s.ParentID] = append(kids[s.ParentID], s)
		}
	}
	n := &normalizer{h: h, kids: kids, opt: opt, drawn: map[string]drawing{}}
	d := n.order(roots)
	msgs := slices.Concat(d.now, d.later)
	for i := range msgs {
		msgs[i].At = time.Time{}
	}
	return Sequence{TraceID: t.ID, Participants: participants(msgs), Messages: fold(msgs)}
}

type normalizer struct {
	h     *hops
	kids  map[string][]*observe.Span
	opt   NormalOptions
	drawn map[string]drawing // by span id, memoised: ordering compares subtrees
}

// drawing is what a subtree draws: now, and what it left running to be drawn once
// the flow it is part of has answered.
type drawing struct{ now, later []Message }

// draw returns the messages of span s and of everything it caused.
func (n *normalizer) draw(s *observe.Span) drawing {
	if d, ok := n.drawn[s.SpanID]; ok {
		return d
	}
	before, after := n.h.of(s)
	if !n.opt.Statements && s.Attr("db.system.name", "db.system") != "" {
		before = nil
	}
	var early, late, deliveries []*observe.Span
	for _, c := range n.kids[s.SpanID] {
		switch {
		case c.Kind == observe.Consumer:
			deliveries = append(deliveries, c)
		case s.Kind == observe.Server && c.End.After(s.End):
			late = append(late, c) // outlived the request: left running after the answer
		default:
			early = append(early, c)
		}
	}
	e := n.order(early)
	d := drawing{now: slices.Concat(before, e.now, after), later: e.later}
	l := n.order(late)
	d.later = slices.Concat(d.later, l.now, l.later)
	ds := make([]drawing, len(deliveries))
	for i, c := range deliveries {
		ds[i] = n.draw(c)
	}
	slices.SortStableFunc(ds, func(a, b drawing) int { return cmp.Compare(key(a.now), key(b.now)) })
	for _, x := range ds {
		d.now = append(d.now, x.now...)
		d.later = append(d.later, x.later...)
	}
	n.drawn[s.SpanID] = d
	return d
}

// order draws sibling spans in order of start, those overlapping in time in
// order of what they draw.
func (n *normalizer) order(spans []*observe.Span) drawing {
	var out drawing
	for i := 0; i < len(spans); {
		// A run of siblings each overlapping the run so far: parallel branches.
		end, j := spans[i].End, i+1
		for j < len(spans) && spans[j].Start.Before(end) {
			if spans[j].End.After(end) {
				end = spans[j].End
			}
			j++
		}
		group := make([]drawing, 0, j-i)
		for _, s := range spans[i:j] {
			group = append(group, n.draw(s))
		}
		if len(group) > 1 {
			slices.SortStableFunc(group, func(a, b drawing) int { return cmp.Compare(key(a.now), key(b.now)) })
		}
		for _, g := range group {
			out.now = append(out.now, g.now...)
			out.later = append(out.later, g.later...)
		}
		i = j
	}
	return out
}

// key is what a subtree draws, as text to order by.
func key(msgs []Message) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(m.From)
		b.WriteByte('>')
		b.WriteString(m.To)
		b.WriteByte(':')
		b.WriteString(m.Text)
		b.WriteByte('\n')
	}
	return b.String()
}
