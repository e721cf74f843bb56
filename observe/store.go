package observe

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Traces keeps the most recent traces in memory, bounded by trace count, spans per
// trace and spans in total; the trace seen first is forgotten first. Safe for
// concurrent use.
type Traces struct {
	maxTraces, maxSpansPerTrace, maxSpans int

	mu     sync.Mutex
	traces map[string]*Trace
	order  []string // trace ids, first seen first
	spans  int
	// dropped counts spans refused because their trace was full.
	dropped int
}

// TraceLimits bound a Traces store. Zero fields take the default in brackets.
type TraceLimits struct {
	Traces        int // [2000]
	SpansPerTrace int // [2000]
	Spans         int // [200000]
}

// NewTraces returns an empty store.
func NewTraces(l TraceLimits) *Traces {
	return &Traces{
		maxTraces:        orDefault(l.Traces, 2000),
		maxSpansPerTrace: orDefault(l.SpansPerTrace, 2000),
		maxSpans:         orDefault(l.Spans, 200_000),
		traces:           map[string]*Trace{},
	}
}

func orDefault(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}

// Add stores spans, forgetting the oldest traces to stay within the limits.
func (s *Traces) Add(spans ...Span) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range spans {
		t, ok := s.traces[sp.TraceID]
		if !ok {
			t = &Trace{ID: sp.TraceID}
			s.traces[sp.TraceID] = t
			s.order = append(s.order, sp.TraceID)
		}
		if len(t.Spans) >= s.maxSpansPerTrace {
			s.dropped++
			continue
		}
		t.Spans = append(t.Spans, sp)
		s.spans++
	}
	for len(s.order) > 0 && (len(s.order) > s.maxTraces || s.spans > s.maxSpans) {
		oldest := s.order[0]
		s.order = s.order[1:]
		s.spans -= len(s.traces[oldest].Spans)
		delete(s.traces, oldest)
	}
}

// Get returns a copy of the trace with id, spans ordered by start.
func (s *Traces) Get(id string) (Trace, bool) {
	s.mu.Lock()
	t, ok := s.traces[id]
	var out Trace
	if ok {
		out = Trace{ID: t.ID, Spans: slices.Clone(t.Spans)}
	}
	s.mu.Unlock()
	SortSpans(out.Spans)
	return out, ok
}

// TraceQuery selects traces.
type TraceQuery struct {
	// Service, when set, keeps traces with a span of that service.
	Service string
	// Since keeps traces with a span that ended at or after it.
	Since time.Time
	// Limit is the most traces returned, newest first [50].
	Limit int
	// Value, when set, keeps traces with a span carrying it as an attribute value
	// (an order id, a saga id, a user id).
	Value string
}

// List summarizes the newest traces matching q.
func (s *Traces) List(q TraceQuery) []Summary {
	limit := orDefault(q.Limit, 50)
	var picked []Trace
	s.mu.Lock()
	for _, id := range slices.Backward(s.order) {
		if len(picked) == limit {
			break
		}
		t := s.traces[id]
		if matches(t, q) {
			picked = append(picked, Trace{ID: t.ID, Spans: slices.Clone(t.Spans)})
		}
	}
	s.mu.Unlock()
	out := make([]Summary, 0, len(picked))
	for _, t := range picked {
		out = append(out, Summarize(t))
	}
	return out
}

func matches(t *Trace, q TraceQuery) bool {
	service, recent, value := q.Service == "", q.Since.IsZero(), q.Value == ""
	for _, sp := range t.Spans {
		service = service || sp.Service == q.Service
		recent = recent || !sp.End.Before(q.Since)
		if !value {
			for _, v := range sp.Attributes {
				if v == q.Value {
					value = true
					break
				}
			}
		}
		if service && recent && value {
			return true
		}
	}
	return false
}

// Spans returns every stored span of the traces matching q (Limit ignored): the
// traffic of a window, for an interaction diagram.
func (s *Traces) Spans(q TraceQuery) []Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Span
	for _, id := range s.order {
		if t := s.traces[id]; matches(t, q) {
			out = append(out, t.Spans...)
		}
	}
	return out
}

// Stats reports what the store holds and what it refused.
func (s *Traces) Stats() (traces, spans, dropped int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.traces), s.spans, s.dropped
}

// Line is one log line of one service.
type Line struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Service string    `json:"service"`
	Level   string    `json:"level"`
	Message string    `json:"msg"`
	TraceID string    `json:"trace_id,omitempty"`
	// Raw is the line as the service wrote it (a JSON record, or plain text).
	Raw string `json:"raw"`
}

// Logs keeps the most recent log lines of every service in a ring. Safe for
// concurrent use; readers can wait for lines newer than those they have.
type Logs struct {
	mu      sync.Mutex
	ring    []Line
	next    int    // ring index the next line goes to
	seq     uint64 // sequence number of the last line added
	arrived chan struct{}
}

// NewLogs returns a ring of capacity lines [20000].
func NewLogs(capacity int) *Logs {
	return &Logs{ring: make([]Line, 0, orDefault(capacity, 20_000)), arrived: make(chan struct{})}
}

// Add appends a line, numbering it; the oldest line goes when the ring is full.
func (l *Logs) Add(line Line) {
	l.mu.Lock()
	l.seq++
	line.Seq = l.seq
	if len(l.ring) < cap(l.ring) {
		l.ring = append(l.ring, line)
	} else {
		l.ring[l.next] = line
	}
	l.next = (l.next + 1) % cap(l.ring)
	close(l.arrived)
	l.arrived = make(chan struct{})
	l.mu.Unlock()
}

// LogQuery selects log lines.
type LogQuery struct {
	Service string
	// Level is the least severe level kept (debug, info, warn, error) [all].
	Level   string
	TraceID string
	// After keeps lines numbered above it (a follower's cursor).
	After uint64
	// Limit is the most lines returned, the newest [1000].
	Limit int
}

// Query returns the matching lines, oldest first, and the last sequence number
// examined (the cursor to pass as After next time).
func (l *Logs) Query(q LogQuery) (lines []Line, cursor uint64) {
	limit := orDefault(q.Limit, 1000)
	least := 0
	if q.Level != "" {
		least = levelRank(q.Level)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.ring)
	for i := range n {
		// Walk newest to oldest, so the limit keeps the newest.
		line := l.ring[(l.next-1-i+2*n)%n]
		if line.Seq <= q.After || len(lines) == limit {
			break
		}
		if (q.Service == "" || line.Service == q.Service) && levelRank(line.Level) >= least &&
			(q.TraceID == "" || line.TraceID == q.TraceID) {
			lines = append(lines, line)
		}
	}
	slices.Reverse(lines)
	return lines, max(l.seq, q.After)
}

// Wait blocks until a line numbered above after arrives or ctx ends.
func (l *Logs) Wait(ctx context.Context, after uint64) {
	l.mu.Lock()
	if l.seq > after {
		l.mu.Unlock()
		return
	}
	ch := l.arrived
	l.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

func levelRank(level string) int {
	switch level {
	case "DEBUG", "debug":
		return 0
	case "", "INFO", "info":
		return 1
	case "WARN", "warn", "WARNING", "warning":
		return 2
	case "ERROR", "error":
		return 3
	}
	return 1
}
