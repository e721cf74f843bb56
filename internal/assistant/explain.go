package assistant

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/diagram"
	"github.com/switchyard/switchyard/observe"
	"github.com/switchyard/switchyard/telemetry"
)

type explainIn struct {
	OrderID string `json:"order_id" jsonschema:"the order's id, as the orders API returned it"`
}

// step is one saga step's try, in order.
type step struct {
	At      time.Time `json:"at"`
	Service string    `json:"service"`
	Saga    string    `json:"saga"`
	Step    string    `json:"step"`
	Action  string    `json:"action"`
	// Result is ok, refused (the step said no: a business outcome) or error.
	Result string `json:"result"`
	Reason string `json:"reason,omitempty"`
	// About says what the step does, from the saga's definition.
	About string `json:"about,omitempty"`
	// Calls are the calls the step made.
	Calls []callUse `json:"calls,omitempty"`
}

// callUse is one call the order's requests or steps made.
type callUse struct {
	At        time.Time `json:"at"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Operation string    `json:"operation"`
	Status    string    `json:"status,omitempty"`
	Failed    bool      `json:"failed,omitempty"`
	// Decisions are what the policies decided on the call: failed attempts,
	// retries, an open breaker, a full bulkhead, a spent budget.
	Decisions []string `json:"decisions,omitempty"`
	// DeadlineLeft is the time the call's deadline left it when it began.
	DeadlineLeft string `json:"deadline_left,omitempty"`
}

type eventUse struct {
	At      time.Time `json:"at"`
	Service string    `json:"service"`
	// Direction is published or consumed.
	Direction string `json:"direction"`
	Type      string `json:"type"`
	Failed    bool   `json:"failed,omitempty"`
	Detail    string `json:"detail,omitempty"`
}

type edgeUse struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Protocol string `json:"protocol"`
	Label    string `json:"label,omitempty"`
	Calls    int    `json:"calls"`
	Errors   int    `json:"errors"`
	Declared bool   `json:"declared"`
	Policy   string `json:"policy,omitempty"`
}

// caseFile is everything the traces say about one order.
type caseFile struct {
	Order  string   `json:"order"`
	Traces []string `json:"traces"`
	// Outcome is what became of the saga: done, compensated (a step failed and
	// what came before was undone), or in flight.
	Outcome     string     `json:"outcome"`
	Timeline    []step     `json:"timeline"`
	FailedStep  *step      `json:"failed_step,omitempty"`
	Calls       []callUse  `json:"calls"`
	Events      []eventUse `json:"events"`
	DeadLetters []letter   `json:"dead_letters"`
	Edges       []edgeUse  `json:"edges"`
	Summary     string     `json:"summary"`
}

func (s *server) explainOrder(ctx context.Context, _ *mcp.CallToolRequest, in explainIn) (*mcp.CallToolResult, any, error) {
	id := strings.TrimSpace(in.OrderID)
	if id == "" || len(id) > 128 || strings.ContainsAny(id, " /?#") {
		return nil, nil, fieldError("order_id", "want an order's id, got %q", in.OrderID)
	}
	cfg, _, err := s.current()
	if err != nil {
		return nil, nil, err
	}
	traces, err := s.tracesWith(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if len(traces) == 0 {
		return nil, nil, fieldError("order_id", "no trace in the hub mentions %s (the hub keeps the most recent traces)", id)
	}
	cf := s.caseFile(cfg, id, traces)
	if letters, err := s.letters(ctx, cfg, "", 500); err == nil {
		for _, l := range letters {
			if l.Subject == id {
				cf.DeadLetters = append(cf.DeadLetters, l)
			}
		}
	}
	cf.Summary = cf.summarize()
	return text(cf.Summary), cf, nil
}

// caseFile assembles the order's story from its traces.
func (s *server) caseFile(cfg *config.Config, id string, traces []observe.Trace) caseFile {
	cf := caseFile{Order: id, Outcome: "in flight", Timeline: []step{}, Calls: []callUse{}, Events: []eventUse{}, DeadLetters: []letter{}}
	steps := s.sagaSteps(cfg)
	var all []observe.Span
	for _, t := range traces {
		cf.Traces = append(cf.Traces, t.ID)
		all = append(all, t.Spans...)
	}
	observe.SortSpans(all)
	byID := map[string]*observe.Span{}
	for i := range all {
		byID[all[i].SpanID] = &all[i]
	}
	// stepOf finds the saga step span a span ran under.
	stepOf := func(sp *observe.Span) *observe.Span {
		for p := byID[sp.ParentID]; p != nil; p = byID[p.ParentID] {
			if p.Attr(telemetry.KeySagaStep) != "" {
				return p
			}
		}
		return nil
	}
	stepIndex := map[string]int{}
	for i := range all {
		sp := &all[i]
		switch {
		case sp.Attr(telemetry.KeySagaStep) != "":
			st := step{At: sp.Start, Service: sp.Service, Saga: sp.Attr(telemetry.KeySaga), Step: sp.Attr(telemetry.KeySagaStep), Action: sp.Attr(telemetry.KeySagaAction), Result: "ok"}
			switch {
			case sp.Attr(telemetry.KeySagaRefusal) != "":
				st.Result, st.Reason = "refused", sp.Attr(telemetry.KeySagaRefusal)
			case sp.Error:
				st.Result, st.Reason = "error", sp.Status
			}
			for _, info := range steps[st.Saga] {
				if info.Name == st.Step {
					st.About = info.About
					if st.Action != "do" {
						st.About = cmp.Or(info.UndoAbout, info.About)
					}
				}
			}
			stepIndex[sp.SpanID] = len(cf.Timeline)
			cf.Timeline = append(cf.Timeline, st)
		case sp.Kind == observe.Client && sp.Peer() != "":
			c := callUse{At: sp.Start, From: sp.Service, To: sp.Peer(), Operation: sp.Operation(),
				Status: sp.Attr("rpc.response.status_code", "http.response.status_code"), Failed: sp.Error}
			if sp.Error {
				c.Status = strings.TrimSpace(c.Status + " " + sp.Status)
			}
			if left, ok := sp.DeadlineLeft(); ok {
				c.DeadlineLeft = left.String()
			}
			for _, e := range sp.Events {
				d := e.Name
				if o := e.Attributes[telemetry.KeyOutcome]; o != "" {
					d += " (" + o + ")"
				}
				if e.Name != "exception" {
					c.Decisions = append(c.Decisions, d)
				}
			}
			cf.Calls = append(cf.Calls, c)
			if st := stepOf(sp); st != nil {
				if i, ok := stepIndex[st.SpanID]; ok {
					cf.Timeline[i].Calls = append(cf.Timeline[i].Calls, c)
				}
			}
		case sp.Attr("cloudevents.event_type") != "" && (sp.Kind == observe.Producer || sp.Kind == observe.Consumer):
			e := eventUse{At: sp.Start, Service: sp.Service, Direction: "published", Type: sp.Attr("cloudevents.event_type"), Failed: sp.Error, Detail: sp.Status}
			if sp.Kind == observe.Consumer {
				e.Direction = "consumed"
			}
			if sp.Kind == observe.Producer && sp.Attr("messaging.operation.name") == "send" {
				e.Direction = "relayed"
			}
			for _, ev := range sp.Events {
				if strings.HasPrefix(ev.Name, "dead letter") || strings.HasPrefix(ev.Name, "redeliver") {
					e.Detail = strings.TrimSpace(e.Detail + " " + ev.Name)
				}
			}
			cf.Events = append(cf.Events, e)
		}
	}
	for i := range cf.Timeline {
		st := &cf.Timeline[i]
		if st.Action == "do" && st.Result != "ok" && cf.FailedStep == nil {
			cf.FailedStep = st
		}
	}
	undone := slices.ContainsFunc(cf.Timeline, func(s step) bool { return s.Action != "do" })
	switch {
	case cf.FailedStep != nil || undone:
		cf.Outcome = "compensated"
	case len(cf.Timeline) > 0 && len(steps[cf.Timeline[0].Saga]) > 0 && countDone(cf.Timeline) == len(steps[cf.Timeline[0].Saga]):
		cf.Outcome = "done"
	}
	if cf.FailedStep != nil {
		fs := *cf.FailedStep
		cf.FailedStep = &fs
	}
	declared := diagram.Declared(cfg)
	for _, e := range diagram.Interactions(all).Edges {
		if e.From == diagram.Client || e.To == diagram.Bus || e.From == diagram.Bus || strings.HasSuffix(e.To, "-db") {
			continue
		}
		u := edgeUse{From: e.From, To: e.To, Protocol: string(e.Protocol), Label: e.Label, Calls: e.Calls, Errors: e.Errors}
		for _, d := range declared {
			if d.From == e.From && d.To == e.To {
				u.Declared = true
			}
		}
		if p := cfg.Process(e.From); p != nil && p.Dependencies[e.To] != nil {
			u.Policy = policyText(p.Dependencies[e.To].Policy)
		}
		cf.Edges = append(cf.Edges, u)
	}
	return cf
}

func countDone(timeline []step) int {
	seen := map[string]bool{}
	for _, s := range timeline {
		if s.Action == "do" && s.Result == "ok" {
			seen[s.Step] = true
		}
	}
	return len(seen)
}

// summarize tells the case in a few sentences.
func (cf caseFile) summarize() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Order %s: %s, over %d trace(s).\n", cf.Order, cf.Outcome, len(cf.Traces))
	if f := cf.FailedStep; f != nil {
		fmt.Fprintf(&b, "Failed step: %s in %s's %s saga", f.Step, f.Service, f.Saga)
		if f.About != "" {
			fmt.Fprintf(&b, " (%s)", f.About)
		}
		fmt.Fprintf(&b, " — %s: %s.\n", f.Result, cmp.Or(f.Reason, "no reason recorded"))
		for _, c := range f.Calls {
			fmt.Fprintf(&b, "  it called %s %s: %s", c.To, c.Operation, cmp.Or(c.Status, "no answer"))
			if len(c.Decisions) > 0 {
				fmt.Fprintf(&b, "; policy: %s", strings.Join(c.Decisions, ", "))
			}
			b.WriteString("\n")
		}
	}
	if len(cf.Timeline) > 0 {
		b.WriteString("Saga timeline:\n")
		for _, s := range cf.Timeline {
			fmt.Fprintf(&b, "  %s %s %s: %s", s.At.Format("15:04:05.000"), s.Action, s.Step, s.Result)
			if s.Reason != "" {
				fmt.Fprintf(&b, " (%s)", s.Reason)
			}
			b.WriteString("\n")
		}
	}
	var decided []string
	for _, c := range cf.Calls {
		for _, d := range c.Decisions {
			decided = append(decided, fmt.Sprintf("%s → %s %s: %s", c.From, c.To, c.Operation, d))
		}
	}
	if len(decided) > 0 {
		fmt.Fprintf(&b, "Policy decisions:\n  %s\n", strings.Join(decided, "\n  "))
	}
	var types []string
	for _, e := range cf.Events {
		if e.Direction != "consumed" && !slices.Contains(types, e.Type) {
			types = append(types, e.Type)
		}
	}
	if len(types) > 0 {
		fmt.Fprintf(&b, "Events: %s.\n", strings.Join(types, ", "))
	}
	if len(cf.DeadLetters) > 0 {
		fmt.Fprintf(&b, "Dead letters: %d (%s: %s).\n", len(cf.DeadLetters), cf.DeadLetters[0].Type, cf.DeadLetters[0].LastError)
	}
	var undeclared []string
	for _, e := range cf.Edges {
		if !e.Declared {
			undeclared = append(undeclared, e.From+" → "+e.To)
		}
	}
	fmt.Fprintf(&b, "Edges involved: %d", len(cf.Edges))
	if len(undeclared) > 0 {
		fmt.Fprintf(&b, ", undeclared: %s", strings.Join(undeclared, ", "))
	}
	b.WriteString(".\n")
	return b.String()
}
