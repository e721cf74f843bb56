package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/analysis"
	"github.com/switchyard/switchyard/internal/yamledit"
)

const lintUsage = `lint [--config path] [--json] [--rate N] [--set key=value]... [--observed [--since 15m] | --file otlp.json]`

// ErrLint is what lint returns when the analysis has errors: exit status 1.
type ErrLint struct{ Errors int }

func (e *ErrLint) Error() string {
	return fmt.Sprintf("the policy analysis found %d errors", e.Errors)
}

// setFlags collects repeated --set key=value flags.
type setFlags []string

func (s *setFlags) String() string { return strings.Join(*s, " ") }

func (s *setFlags) Set(v string) error {
	if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
		return fmt.Errorf("want key=value, e.g. services.orders.dependencies.payments.policy.retry.max_attempts=2, got %q", v)
	}
	*s = append(*s, v)
	return nil
}

// changeConfig applies key=value edits to the platform loaded from source (""
// for the built-in one) and loads the result as up would; what names the edits
// in errors (--set, set.0).
func (e *Env) changeConfig(cfg *config.Config, source, what string, sets []string) ([]byte, *config.Config, error) {
	raw, err := e.configRaw(source)
	if err != nil {
		return nil, nil, err
	}
	for _, kv := range sets {
		k, v, _ := strings.Cut(kv, "=")
		if raw, err = yamledit.Set(raw, k, v); err != nil {
			return nil, nil, Usagef("%s %s: %v", what, kv, err)
		}
	}
	changed, err := e.LoadConfigText(cfg.Source+" with "+strings.Join(sets, " "), filepath.Dir(source), raw)
	if err != nil {
		return nil, nil, err
	}
	return raw, changed, nil
}

// lintResult is lint's answer in --json.
type lintResult struct {
	Report   analysis.Report     `json:"report"`
	Changed  *analysis.Report    `json:"changed,omitempty"`
	Changes  *analysis.Changes   `json:"changes,omitempty"`
	Forecast []analysis.Forecast `json:"forecast,omitempty"`
}

// cmdLint analyses the policies and shape of the declared system; with --set it
// analyses a changed design beside it and, with recorded traffic, forecasts what
// the change does to every edge.
func cmdLint(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("lint")
	configPath := ConfigFlag(fs)
	asJSON := fs.Bool("json", false, "write the analysis as JSON")
	rate := fs.Float64("rate", 0, "`N` requests per second entering each entry point, for the retry budgets [the declared load's rate, else 10]")
	var sets setFlags
	fs.Var(&sets, "set", "analyse the design with this `key=value` changed (repeatable), and print the difference")
	observed := fs.Bool("observed", false, "forecast each edge from the traffic the local stack recorded over --since")
	since := fs.Duration("since", 15*time.Minute, "with --observed: the window of traffic, e.g. `15m`")
	file := fs.String("file", "", "forecast each edge from the spans in this OTLP JSON `file`")
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usagef("lint takes no arguments, got %q", fs.Arg(0))
	}
	if *rate < 0 {
		return Usagef("--rate must be positive")
	}
	cfg, source, err := e.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	var res lintResult
	if res.Report, err = e.analyse(cfg, *rate); err != nil {
		return err
	}
	final := res.Report
	var changed *config.Config
	if len(sets) > 0 {
		if _, changed, err = e.changeConfig(cfg, source, "--set", sets); err != nil {
			return err
		}
		after, err := e.analyse(changed, *rate)
		if err != nil {
			return err
		}
		diff := analysis.Diff(res.Report, after)
		res.Changed, res.Changes, final = &after, &diff, after
	}
	if *observed || *file != "" {
		spans, err := recorded(ctx, cfg, *file, *since)
		if err != nil {
			return err
		}
		if len(spans) == 0 {
			return fmt.Errorf("no recorded traffic to forecast from: run some first (%s load)", e.App.name())
		}
		res.Forecast = analysis.Forecasts(cfg, changed, analysis.Observe(spans))
	}
	if *asJSON {
		enc := json.NewEncoder(e.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else if err := res.text(e.Stdout); err != nil {
		return err
	}
	if n := final.Errors(); n > 0 {
		return &ErrLint{Errors: n}
	}
	return nil
}

func (r lintResult) text(w io.Writer) error {
	if r.Changes == nil {
		if err := r.Report.Text(w); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "lint: %s — %d errors as declared, %d with %s\n\n", r.Report.Source, r.Report.Errors(), r.Changed.Errors(),
			strings.TrimPrefix(r.Changed.Source, r.Report.Source+" with "))
		if err := r.Changes.Text(w); err != nil {
			return err
		}
	}
	if len(r.Forecast) == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nForecast from the recorded traffic (success, p99, attempts per call):\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "  edge\tcalls\tmeasured\tforecast, declared policy"
	if r.Changed != nil {
		head += "\tforecast, changed policy"
	}
	fmt.Fprintln(tw, head)
	for _, f := range r.Forecast {
		line := fmt.Sprintf("  %s → %s\t%d\t%s\t%s", f.From, f.To, f.Calls, f.Measured, f.Declared)
		if f.Changed != nil {
			line += "\t" + f.Changed.String()
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

// analyse runs the policy analysis of cfg with the sagas its services' code defines.
func (e *Env) analyse(cfg *config.Config, rate float64) (analysis.Report, error) {
	sagas, err := e.sagas(cfg)
	if err != nil {
		return analysis.Report{}, err
	}
	return analysis.Analyze(analysis.Input{Config: cfg, Rate: rate, Sagas: sagas}), nil
}

// sagas describes the sagas cfg's services' code defines, for the analysis.
func (e *Env) sagas(cfg *config.Config) ([]analysis.Saga, error) {
	_, sagas, err := e.monitoringInput(cfg)
	out := make([]analysis.Saga, 0, len(sagas))
	for _, s := range sagas {
		out = append(out, analysis.Saga{Service: s.Service, Name: s.Name, Steps: s.Steps})
	}
	return out, err
}
