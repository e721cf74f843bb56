package assistant

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/diagram"
	"github.com/switchyard/switchyard/internal/analysis"
	"github.com/switchyard/switchyard/internal/yamledit"
	"github.com/switchyard/switchyard/observe"
	"github.com/switchyard/switchyard/problem"
)

// text is a tool result of one text block beside its structured output.
func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

// fieldError is a bad argument, named.
func fieldError(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
}

type none struct{}

type serviceInfo struct {
	Name        string   `json:"name"`
	Owner       string   `json:"owner,omitempty"`
	Description string   `json:"description,omitempty"`
	Listen      string   `json:"listen"`
	Simulated   bool     `json:"simulated,omitempty"`
	Replicas    int      `json:"replicas,omitempty"`
	Contracts   []string `json:"contracts,omitempty"`
}

type edgeInfo struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Protocol string `json:"protocol"`
	Policy   string `json:"policy"`
}

type eventInfo struct {
	Type       string   `json:"type"`
	Publishers []string `json:"publishers"`
	Consumers  []string `json:"consumers"`
}

type routeInfo struct {
	Prefix    string `json:"prefix"`
	Service   string `json:"service,omitempty"`
	Upstream  string `json:"upstream,omitempty"`
	Auth      string `json:"auth"`
	Timeout   string `json:"timeout"`
	RateLimit string `json:"rate_limit,omitempty"`
}

type description struct {
	Source   string        `json:"source"`
	Services []serviceInfo `json:"services"`
	Edges    []edgeInfo    `json:"edges"`
	Events   []eventInfo   `json:"events"`
	Routes   []routeInfo   `json:"routes,omitempty"`
}

// policyText summarises an effective policy in a line.
func policyText(p config.Policy) string {
	c := analysis.Policy(p)
	breaker := fmt.Sprintf("breaker at %.0f%% of ≥%d calls in %s, open %s", 100*c.FailureRatio, c.MinCalls, c.Window, c.OpenFor)
	switch {
	case c.NoBreaker:
		breaker = "no breaker"
	case c.ConsecutiveFailures > 0:
		breaker = fmt.Sprintf("breaker after %d failures in a row, open %s", c.ConsecutiveFailures, c.OpenFor)
	}
	return fmt.Sprintf("timeout %s, %s per try, %d attempts (backoff %s–%s, budget %.0f%% + %d/s), %s, bulkhead %d",
		c.Timeout, c.TryTimeout, c.MaxAttempts, c.Backoff, c.MaxBackoff, 100*c.BudgetRatio, c.BudgetPerSecond, breaker, c.MaxConcurrent)
}

func describe(cfg *config.Config) description {
	d := description{Source: cfg.Source}
	pubs, subs := map[string][]string{}, map[string][]string{}
	for _, p := range cfg.Processes() {
		d.Services = append(d.Services, serviceInfo{Name: p.Name, Owner: p.Owner, Description: p.Description, Listen: p.Listen,
			Simulated: p.Simulated(), Replicas: p.Replicas, Contracts: p.Contracts})
		for _, to := range slices.Sorted(maps.Keys(p.Dependencies)) {
			dep := p.Dependencies[to]
			d.Edges = append(d.Edges, edgeInfo{From: p.Name, To: to, Protocol: dep.Protocol, Policy: policyText(dep.Policy)})
		}
		for _, t := range p.Publishes {
			pubs[t] = append(pubs[t], p.Name)
		}
		for _, t := range p.Subscriptions {
			subs[t] = append(subs[t], p.Name)
		}
	}
	types := slices.Sorted(maps.Keys(pubs))
	for t := range subs {
		if !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	slices.Sort(types)
	for _, t := range types {
		d.Events = append(d.Events, eventInfo{Type: t, Publishers: nonNil(pubs[t]), Consumers: nonNil(subs[t])})
	}
	if g := cfg.Gateway; g != nil {
		for _, r := range g.Routes {
			ri := routeInfo{Prefix: r.Prefix, Service: r.Service, Upstream: r.Upstream, Auth: r.Auth, Timeout: r.Timeout.Or(30 * time.Second).String()}
			if rl := r.RateLimit; rl != nil {
				ri.RateLimit = fmt.Sprintf("%d per %s, burst %d", rl.Requests, rl.Per.Or(time.Second), max(rl.Burst, rl.Requests))
			}
			d.Routes = append(d.Routes, ri)
		}
	}
	return d
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (s *server) describe(_ context.Context, _ *mcp.CallToolRequest, _ none) (*mcp.CallToolResult, any, error) {
	cfg, _, err := s.current()
	if err != nil {
		return nil, nil, err
	}
	return nil, describe(cfg), nil
}

type analyzeIn struct {
	Rate float64  `json:"rate,omitempty" jsonschema:"requests per second entering each entry point, for the retry budgets (default: the declared load's rate, else 10)"`
	Set  []string `json:"set,omitempty" jsonschema:"changes to analyse, each key=value with a dotted key, e.g. services.orders.dependencies.payments.policy.retry.max_attempts=2"`
}

type analyzeOut struct {
	Report  analysis.Report   `json:"report"`
	Changed *analysis.Report  `json:"changed,omitempty"`
	Changes *analysis.Changes `json:"changes,omitempty"`
}

func (s *server) analyze(_ context.Context, _ *mcp.CallToolRequest, in analyzeIn) (*mcp.CallToolResult, any, error) {
	if in.Rate < 0 || in.Rate > 1e6 {
		return nil, nil, fieldError("rate", "want a positive number of requests per second, got %v", in.Rate)
	}
	cfg, raw, err := s.current()
	if err != nil {
		return nil, nil, err
	}
	var out analyzeOut
	if out.Report, err = s.Analyse(cfg, in.Rate); err != nil {
		return nil, nil, err
	}
	var b strings.Builder
	_ = out.Report.Text(&b)
	if len(in.Set) > 0 {
		for i, kv := range in.Set {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return nil, nil, fieldError(fmt.Sprintf("set[%d]", i), "want key=value, got %q", kv)
			}
			if raw, err = yamledit.Set(raw, k, v); err != nil {
				return nil, nil, fieldError(fmt.Sprintf("set[%d]", i), "%v", err)
			}
		}
		changed, err := s.Load(raw)
		if err != nil {
			return nil, nil, fieldError("set", "the changed configuration does not load: %v", err)
		}
		after, err := s.Analyse(changed, in.Rate)
		if err != nil {
			return nil, nil, err
		}
		diff := analysis.Diff(out.Report, after)
		out.Changed, out.Changes = &after, &diff
		b.Reset()
		fmt.Fprintf(&b, "With %s: %d errors (%d as declared)\n", strings.Join(in.Set, ", "), after.Errors(), out.Report.Errors())
		_ = diff.Text(&b)
	}
	return text(b.String()), out, nil
}

type diagramIn struct {
	Source string `json:"source,omitempty" jsonschema:"declared (the default) or observed: the running system's traffic"`
	Since  string `json:"since,omitempty" jsonschema:"with observed: the window of traffic, a duration such as 15m (default 15m)"`
}

type diagramOut struct {
	Mermaid string         `json:"mermaid"`
	Edges   []diagram.Edge `json:"edges"`
	// Unseen are declared edges the traffic did not exercise; Undeclared edges the
	// traffic took that nothing declares (observed only).
	Unseen     []diagram.Edge `json:"unseen,omitempty"`
	Undeclared []diagram.Edge `json:"undeclared,omitempty"`
}

func (s *server) diagram(ctx context.Context, _ *mcp.CallToolRequest, in diagramIn) (*mcp.CallToolResult, any, error) {
	cfg, _, err := s.current()
	if err != nil {
		return nil, nil, err
	}
	declared := diagram.Declared(cfg)
	var g diagram.Graph
	out := diagramOut{}
	switch in.Source {
	case "", "declared":
		g = diagram.Graph{Edges: declared}
	case "observed":
		since, err := window(in.Since)
		if err != nil {
			return nil, nil, err
		}
		spans, err := s.spans(ctx, since)
		if err != nil {
			return nil, nil, err
		}
		g = diagram.Interactions(spans)
		out.Unseen, out.Undeclared = diagram.Drift(declared, g.Edges)
	default:
		return nil, nil, fieldError("source", "want declared or observed, got %q", in.Source)
	}
	var b bytes.Buffer
	if err := g.Mermaid(&b); err != nil {
		return nil, nil, err
	}
	out.Mermaid, out.Edges = b.String(), g.Edges
	return text(out.Mermaid), out, nil
}

func window(s string) (time.Duration, error) {
	if s == "" {
		return 15 * time.Minute, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > 24*time.Hour {
		return 0, fieldError("since", "want a duration from 1s to 24h such as 15m, got %q", s)
	}
	return d, nil
}

type traceIn struct {
	TraceID string `json:"trace_id" jsonschema:"the trace's id: 32 hexadecimal digits"`
}

type traceOut struct {
	Summary observe.Summary   `json:"summary"`
	Mermaid string            `json:"mermaid"`
	Steps   []diagram.Message `json:"steps"`
}

func (s *server) trace(ctx context.Context, _ *mcp.CallToolRequest, in traceIn) (*mcp.CallToolResult, any, error) {
	if !observe.ValidTraceID(in.TraceID) {
		return nil, nil, fieldError("trace_id", "want 32 hexadecimal digits, got %q", in.TraceID)
	}
	t, err := s.getTrace(ctx, in.TraceID)
	if err != nil {
		return nil, nil, err
	}
	if len(t.Spans) == 0 {
		return nil, nil, fieldError("trace_id", "the trace hub holds no trace %s", in.TraceID)
	}
	seq := diagram.SequenceOf(t)
	var b bytes.Buffer
	if err := seq.Mermaid(&b); err != nil {
		return nil, nil, err
	}
	return text(b.String()), traceOut{Summary: observe.Summarize(t), Mermaid: b.String(), Steps: seq.Messages}, nil
}

type deadLettersIn struct {
	Group string `json:"group,omitempty" jsonschema:"only this consumer group's (a service name)"`
	Limit int    `json:"limit,omitempty" jsonschema:"the most returned, 1 to 500 (default 50)"`
}

type letter struct {
	ID        string    `json:"id"`
	Group     string    `json:"group"`
	Type      string    `json:"type"`
	Subject   string    `json:"subject,omitempty"`
	EventID   string    `json:"event_id"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	Last      time.Time `json:"last_failure"`
}

func (s *server) deadLetters(ctx context.Context, _ *mcp.CallToolRequest, in deadLettersIn) (*mcp.CallToolResult, any, error) {
	if in.Limit < 0 || in.Limit > 500 {
		return nil, nil, fieldError("limit", "want 1 to 500, got %d", in.Limit)
	}
	cfg, _, err := s.current()
	if err != nil {
		return nil, nil, err
	}
	if in.Group != "" && cfg.Service(in.Group) == nil {
		return nil, nil, fieldError("group", "no service %q is declared", in.Group)
	}
	letters, err := s.letters(ctx, cfg, in.Group, max(in.Limit, 50))
	if err != nil {
		return nil, nil, err
	}
	return nil, map[string]any{"dead_letters": letters}, nil
}

func (s *server) letters(ctx context.Context, cfg *config.Config, group string, limit int) ([]letter, error) {
	if s.DeadLetters == nil {
		return nil, errors.New("this system has no broker to hold dead letters")
	}
	dl, closeFn, err := s.DeadLetters(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	list, err := dl.List(ctx, group, limit)
	if err != nil {
		return nil, err
	}
	out := []letter{}
	for _, l := range list {
		out = append(out, letter{ID: l.ID, Group: l.Group, Type: l.Event.Type, Subject: l.Event.Subject, EventID: l.Event.ID,
			Attempts: l.Attempts, LastError: l.LastError, Last: l.LastFailure})
	}
	return out, nil
}

type validateIn struct {
	YAML string `json:"yaml" jsonschema:"the whole switchyard.yaml proposed, at most 256 KiB"`
}

type configError struct {
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
}

type validateOut struct {
	Valid  bool          `json:"valid"`
	Errors []configError `json:"errors"`
}

// check loads raw and lists what is wrong with it.
func (s *server) check(raw []byte) (*config.Config, []configError) {
	cfg, err := s.Load(raw)
	if err == nil {
		return cfg, nil
	}
	var errs config.Errors
	var one *config.Error
	switch {
	case errors.As(err, &errs):
	case errors.As(err, &one):
		errs = config.Errors{one}
	default:
		return nil, []configError{{Message: err.Error()}}
	}
	out := make([]configError, 0, len(errs))
	for _, e := range errs {
		out = append(out, configError{Line: e.Line, Column: e.Column, Key: e.Key, Message: e.Msg})
	}
	return nil, out
}

func (s *server) validate(_ context.Context, _ *mcp.CallToolRequest, in validateIn) (*mcp.CallToolResult, any, error) {
	if len(in.YAML) > MaxConfigBytes {
		return nil, nil, fieldError("yaml", "%d bytes is more than a switchyard.yaml may hold (%d)", len(in.YAML), MaxConfigBytes)
	}
	if strings.TrimSpace(in.YAML) == "" {
		return nil, nil, fieldError("yaml", "empty: give the whole file")
	}
	_, errs := s.check([]byte(in.YAML))
	out := validateOut{Valid: len(errs) == 0, Errors: nonNilErrors(errs)}
	if out.Valid {
		return text("valid"), out, nil
	}
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "line %d: %s: %s\n", e.Line, e.Key, e.Message)
	}
	return text(b.String()), out, nil
}

func nonNilErrors(e []configError) []configError {
	if e == nil {
		return []configError{}
	}
	return e
}

type replayIn struct {
	ID string `json:"id" jsonschema:"the dead letter's id, as dead_letters lists it"`
}

func (s *server) replay(ctx context.Context, _ *mcp.CallToolRequest, in replayIn) (*mcp.CallToolResult, any, error) {
	if in.ID == "" || len(in.ID) > 128 || strings.ContainsAny(in.ID, "/?#% ") {
		return nil, nil, fieldError("id", "want a dead letter's id as dead_letters lists it, got %q", in.ID)
	}
	if s.AdminToken == "" {
		return nil, nil, errors.New("replaying a dead letter needs an administrator's token: start the server with --admin-token-file or SWITCHYARD_ADMIN_TOKEN")
	}
	_, gateway, err := s.Stack()
	if err != nil {
		return nil, nil, err
	}
	if gateway == "" {
		return nil, nil, errors.New("no gateway runs: replays go through its administrators' API")
	}
	body, err := s.call(ctx, http.MethodPost, gateway+"/api/v1/admin/dead-letters/"+url.PathEscape(in.ID)+"/replay", s.AdminToken)
	if err != nil {
		return nil, nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, nil, err
	}
	return text("replayed " + in.ID), out, nil
}

// call sends a request to the hub or the gateway and returns the answer's body, a
// problem document's detail as the error.
func (s *server) call(ctx context.Context, method, u, token string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %d %s", method, req.URL.Path, resp.StatusCode, problem.FromResponse(resp).Detail)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
}

// hub is the running system's trace hub.
func (s *server) hub() (string, error) {
	if s.Stack == nil {
		return "", errors.New("no running system: start one with switchyard up")
	}
	hub, _, err := s.Stack()
	if err != nil {
		return "", err
	}
	if hub == "" {
		return "", errors.New("the running system has no trace hub")
	}
	return hub, nil
}

func (s *server) spans(ctx context.Context, since time.Duration) ([]observe.Span, error) {
	hub, err := s.hub()
	if err != nil {
		return nil, err
	}
	body, err := s.call(ctx, http.MethodGet, hub+"/api/spans?"+url.Values{"since": {since.String()}}.Encode(), "")
	if err != nil {
		return nil, err
	}
	var out struct {
		Spans []observe.Span `json:"spans"`
	}
	return out.Spans, json.Unmarshal(body, &out)
}

func (s *server) getTrace(ctx context.Context, id string) (observe.Trace, error) {
	hub, err := s.hub()
	if err != nil {
		return observe.Trace{}, err
	}
	body, err := s.call(ctx, http.MethodGet, hub+"/api/traces/"+url.PathEscape(id), "")
	if err != nil {
		return observe.Trace{}, err
	}
	var t observe.Trace
	return t, json.Unmarshal(body, &t)
}

// tracesWith returns the traces with a span carrying value as an attribute.
func (s *server) tracesWith(ctx context.Context, value string) ([]observe.Trace, error) {
	hub, err := s.hub()
	if err != nil {
		return nil, err
	}
	body, err := s.call(ctx, http.MethodGet, hub+"/api/traces?"+url.Values{"value": {value}, "limit": {"20"}, "since": {"24h"}}.Encode(), "")
	if err != nil {
		return nil, err
	}
	var list struct {
		Traces []observe.Summary `json:"traces"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, err
	}
	var out []observe.Trace
	for _, sum := range list.Traces {
		t, err := s.getTrace(ctx, sum.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func (s *server) designResource(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	if s.Design == nil {
		return nil, mcp.ResourceNotFoundError(req.Params.URI)
	}
	cfg, _, err := s.current()
	if err != nil {
		return nil, err
	}
	doc, err := s.Design(cfg)
	if err != nil {
		return nil, err
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: DesignURI, MIMEType: "text/markdown", Text: string(doc)}}}, nil
}
