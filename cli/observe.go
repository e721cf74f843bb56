package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/diagram"
	"github.com/switchyard/switchyard/observe"
	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/telemetry"
)

// mountDiagrams adds the diagram routes to the hub's API:
//
//	GET /api/topology?since=15m&format=json|mermaid|text  the interaction diagram
//	GET /api/traces/{id}/sequence?format=json|mermaid|svg  one trace's sequence diagram
func mountDiagrams(hub *observe.Hub) {
	pw := hub.Problems()
	hub.Handle("GET /api/topology", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		since := cmp.Or(r.URL.Query().Get("since"), "15m")
		d, err := time.ParseDuration(since)
		if err != nil || d <= 0 {
			pw.Write(w, r, problem.InvalidField("since", "want a positive duration such as 15m, got %q", since))
			return
		}
		g := diagram.Interactions(hub.Traces.Spans(observe.TraceQuery{Since: time.Now().Add(-d)}))
		writeDiagram(w, r, pw, r.URL.Query().Get("format"), map[string]func(io.Writer) error{
			"json": func(w io.Writer) error { return json.NewEncoder(w).Encode(g) }, "mermaid": g.Mermaid, "text": g.Text})
	}))
	hub.Handle("GET /api/traces/{id}/sequence", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, err := hub.Trace(r.PathValue("id"))
		if err != nil {
			pw.Write(w, r, err)
			return
		}
		seq := diagram.SequenceOf(t)
		writeDiagram(w, r, pw, r.URL.Query().Get("format"), map[string]func(io.Writer) error{
			"json": func(w io.Writer) error { return json.NewEncoder(w).Encode(seq) }, "mermaid": seq.Mermaid, "svg": seq.SVG})
	}))
}

var diagramTypes = map[string]string{"json": "application/json", "mermaid": "text/vnd.mermaid; charset=utf-8",
	"text": "text/plain; charset=utf-8", "svg": "image/svg+xml"}

func writeDiagram(w http.ResponseWriter, r *http.Request, pw problem.Writer, format string, renderers map[string]func(io.Writer) error) {
	format = cmp.Or(format, "json")
	render, ok := renderers[format]
	if !ok {
		pw.Write(w, r, problem.InvalidField("format", "want one of %s, got %q", strings.Join(slices.Sorted(maps.Keys(renderers)), ", "), format))
		return
	}
	var b bytes.Buffer
	if err := render(&b); err != nil {
		pw.Write(w, r, err)
		return
	}
	w.Header().Set("Content-Type", diagramTypes[format])
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b.Bytes())
}

// spanSource is where `diagram` reads spans from: the local hub, a Jaeger query
// API, or an OTLP JSON file.
type spanSource struct {
	hub, jaeger, file, service string
	since                      time.Duration
	client                     *http.Client
}

// newSpanSource reads from jaeger or file when one is given (not both), else
// from the hub of the stack running from cfg's data directory.
func newSpanSource(cfg *config.Config, jaeger, file, service string, since time.Duration) (spanSource, error) {
	src := spanSource{jaeger: jaeger, file: file, service: service, since: since, client: httpClient(30 * time.Second)}
	if jaeger != "" && file != "" {
		return src, Usagef("--jaeger and --file are two sources; pick one")
	}
	if jaeger == "" && file == "" {
		var err error
		src.hub, err = localHub(cfg)
		return src, err
	}
	return src, nil
}

func (s spanSource) spans(ctx context.Context, traceID string) ([]observe.Span, error) {
	switch {
	case s.file != "":
		data, err := os.ReadFile(s.file)
		if err != nil {
			return nil, err
		}
		spans, err := observe.DecodeOTLPJSON(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.file, err)
		}
		if traceID != "" {
			spans = slices.DeleteFunc(spans, func(sp observe.Span) bool { return sp.TraceID != traceID })
		}
		return spans, nil
	case s.jaeger != "":
		u := strings.TrimSuffix(s.jaeger, "/") + "/api/traces/" + url.PathEscape(traceID)
		if traceID == "" {
			if s.service == "" {
				return nil, Usagef("--jaeger needs --service (Jaeger lists traces per service) or --trace")
			}
			u = strings.TrimSuffix(s.jaeger, "/") + "/api/traces?" + url.Values{"service": {s.service},
				"lookback": {s.since.String()}, "limit": {"1000"}}.Encode()
		}
		body, err := s.get(ctx, u)
		if err != nil {
			return nil, err
		}
		return observe.DecodeJaeger(body)
	}
	if traceID != "" {
		body, err := s.get(ctx, s.hub+"/api/traces/"+url.PathEscape(traceID))
		if err != nil {
			return nil, err
		}
		var t observe.Trace
		return t.Spans, json.Unmarshal(body, &t)
	}
	body, err := s.get(ctx, s.hub+"/api/spans?"+url.Values{"since": {s.since.String()}}.Encode())
	if err != nil {
		return nil, err
	}
	var out struct {
		Spans []observe.Span `json:"spans"`
	}
	return out.Spans, json.Unmarshal(body, &out)
}

// recorded returns the spans of the local stack's hub over since, or of an OTLP
// JSON file when one is named: the traffic design --observed and lint forecast from.
func recorded(ctx context.Context, cfg *config.Config, file string, since time.Duration) ([]observe.Span, error) {
	src, err := newSpanSource(cfg, "", file, "", since)
	if err != nil {
		return nil, err
	}
	return src.spans(ctx, "")
}

func (s spanSource) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var p problem.Details
		if json.Unmarshal(body, &p) == nil && p.Detail != "" {
			return nil, fmt.Errorf("%s: %s", platform.RedactURL(u), p.Detail)
		}
		return nil, fmt.Errorf("%s: %s", platform.RedactURL(u), resp.Status)
	}
	return body, nil
}

func httpClient(timeout time.Duration) *http.Client { return &http.Client{Timeout: timeout} }

// localHub is the hub of the stack running from cfg's data directory.
func localHub(cfg *config.Config) (string, error) {
	st, err := readStack(cfg.DataDir)
	if err != nil {
		return "", err
	}
	if st.Hub == "" {
		return "", fmt.Errorf("the stack in %s has no trace hub (started by an older switchyard?)", cfg.DataDir)
	}
	return st.Hub, nil
}

func cmdDiagram(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("diagram")
	configPath := ConfigFlag(fs)
	since := fs.Duration("since", 15*time.Minute, "the window of traffic drawn, e.g. `15m`")
	traceID := fs.String("trace", "", "draw the sequence diagram of this trace `id` instead")
	format := fs.String("format", "text", "the output, `text|mermaid|svg|json`: text, mermaid or json (interactions); mermaid, svg or json (a --trace)")
	asJSON := fs.Bool("json", false, "the same as --format json")
	jaeger := fs.String("jaeger", "", "read spans from a Jaeger query API at this `URL` instead of the local stack")
	service := fs.String("service", "", "with --jaeger: the `service` whose traces are read")
	file := fs.String("file", "", "read spans from an OTLP JSON `file` instead of the local stack")
	save := fs.String("save", "", "also write the spans read to this OTLP JSON `file`")
	drift := fs.Bool("drift", true, "with the interaction diagram, compare it with switchyard.yaml")
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usagef("diagram takes no arguments, got %q", fs.Arg(0))
	}
	if *asJSON {
		formatGiven := false
		fs.Visit(func(f *flag.Flag) { formatGiven = formatGiven || f.Name == "format" })
		if formatGiven && *format != "json" {
			return Usagef("--json and --format %s: pick one", *format)
		}
		*format = "json"
	}
	if *traceID != "" && !observe.ValidTraceID(*traceID) {
		return Usagef("--trace: a trace id is 32 hex digits, got %q", *traceID)
	}
	cfg, _, err := e.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	src, err := newSpanSource(cfg, *jaeger, *file, *service, *since)
	if err != nil {
		return err
	}
	spans, err := src.spans(ctx, strings.ToLower(*traceID))
	if err != nil {
		return err
	}
	if *save != "" {
		data, err := observe.EncodeOTLPJSON(spans)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*save, data, 0o600); err != nil {
			return err
		}
	}
	if *traceID != "" {
		if len(spans) == 0 {
			return fmt.Errorf("trace %s has no spans in the source", *traceID)
		}
		seq := diagram.SequenceOf(observe.Trace{ID: *traceID, Spans: spans})
		switch *format {
		case "mermaid", "text":
			return seq.Mermaid(e.Stdout)
		case "svg":
			return seq.SVG(e.Stdout)
		case "json":
			return json.NewEncoder(e.Stdout).Encode(seq)
		}
		return Usagef("--format: a sequence diagram is mermaid, svg or json, not %q", *format)
	}
	g := diagram.Interactions(spans)
	switch *format {
	case "text":
		fmt.Fprintf(e.Stdout, "Interactions over the last %s (%d traces, %d spans):\n\n", *since, g.Traces, len(spans))
		if err := g.Text(e.Stdout); err != nil {
			return err
		}
	case "mermaid":
		return g.Mermaid(e.Stdout)
	case "json":
		return json.NewEncoder(e.Stdout).Encode(g)
	default:
		return Usagef("--format: an interaction diagram is text, mermaid or json, not %q", *format)
	}
	if !*drift {
		return nil
	}
	unseen, undeclared := diagram.Drift(diagram.Declared(cfg), g.Edges)
	fmt.Fprintf(e.Stdout, "\nDrift against %s:\n", cfg.Source)
	if len(unseen)+len(undeclared) == 0 {
		fmt.Fprintln(e.Stdout, "  none: every declared edge was seen, and nothing undeclared was.")
		return nil
	}
	tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	for _, d := range unseen {
		fmt.Fprintf(tw, "  declared, not seen:\t%s\n", edgeText(d))
	}
	for _, d := range undeclared {
		fmt.Fprintf(tw, "  seen, not declared:\t%s\t(%d)\n", edgeText(d), d.Calls)
	}
	return tw.Flush()
}

func edgeText(e diagram.Edge) string {
	s := fmt.Sprintf("%s --%s--> %s", e.From, e.Protocol, e.To)
	if e.Label != "" {
		s += "  " + e.Label
	}
	return s
}

func cmdLogs(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("logs")
	configPath := ConfigFlag(fs)
	service := fs.String("service", "", "only this `service`'s lines")
	level := fs.String("level", "", "only lines at this `level` or above (debug, info, warn, error)")
	traceID := fs.String("trace", "", "only the lines of this trace `id`: one request's story across services")
	follow := fs.Bool("follow", false, "keep printing lines as they arrive")
	limit := fs.Int("n", 200, "print at most the last `N` lines first")
	raw := fs.Bool("json", false, "print each line as the service wrote it")
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usagef("logs takes no arguments, got %q", fs.Arg(0))
	}
	if *level != "" && !slices.Contains([]string{"debug", "info", "warn", "error"}, *level) {
		return Usagef("--level: want debug, info, warn or error, got %q", *level)
	}
	if *traceID != "" && !observe.ValidTraceID(*traceID) {
		return Usagef("--trace: a trace id is 32 hex digits, got %q", *traceID)
	}
	if *limit < 1 || *limit > 10000 {
		return Usagef("-n: want 1 to 10000, got %d", *limit)
	}
	cfg, _, err := e.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	hub, err := localHub(cfg)
	if err != nil {
		return err
	}
	src := spanSource{hub: hub, client: &http.Client{Timeout: 70 * time.Second}}
	q := url.Values{"service": {*service}, "level": {*level}, "trace": {strings.ToLower(*traceID)}, "limit": {fmt.Sprint(*limit)}}
	for {
		body, err := src.get(ctx, hub+"/api/logs?"+q.Encode())
		if err != nil && ctx.Err() != nil {
			return nil //nolint:nilerr // Ctrl-C ends --follow: not a failure
		}
		if err != nil {
			return err
		}
		var page struct {
			Lines  []observe.Line `json:"lines"`
			Cursor uint64         `json:"cursor"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return err
		}
		for _, l := range page.Lines {
			if *raw {
				fmt.Fprintf(e.Stdout, "%s\n", l.Raw)
				continue
			}
			fmt.Fprintf(e.Stdout, "%-13s| %s\n", l.Service, renderLine(l))
		}
		if !*follow {
			return nil
		}
		q.Set("after", fmt.Sprint(page.Cursor))
		q.Set("wait", "30s")
		q.Set("limit", "10000")
	}
}

func renderLine(l observe.Line) string {
	if strings.HasPrefix(l.Raw, "{") {
		return string(telemetry.Render([]byte(l.Raw)))
	}
	return l.Raw
}
