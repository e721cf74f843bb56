package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/faults"
)

const faultsUsage = `faults run <scenario.yaml> [--duration d] [--seed n] [--out dir] [--shrink runs] [--json]
       switchyard faults report <result dir> [--json]`

// ErrFaults is what faults run returns when an assertion failed: exit status 1.
type ErrFaults struct{ Scenario string }

func (e *ErrFaults) Error() string {
	return "scenario " + e.Scenario + ": an assertion failed (see the report)"
}

func cmdFaults(ctx context.Context, e *Env, args []string) error {
	if len(args) == 0 {
		return Usagef("faults needs run or report:\n  %s", faultsUsage)
	}
	switch args[0] {
	case "-h", "--help", "-help":
		return e.commandHelp("faults")
	case "run":
		return faultsRun(ctx, e, args[1:])
	case "report":
		return faultsReport(e, args[1:])
	}
	return Usagef("faults: no subcommand %q (run, report)", args[0])
}

func faultsRun(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("faults run")
	duration := fs.Duration("duration", 0, "shorten (or lengthen) the load to a length such as `2m`, the faults' times and lengths scaled alike")
	seed := fs.Uint64("seed", 0, "draw the random faults with seed `N` (printed when drawn; the same seed replays the schedule)")
	out := fs.String("out", "", "write the run into this `directory` [<scenario>.result beside the file]")
	shrink := fs.Int("shrink", 0, "on a failure, rerun at most `N` times to shrink the schedule to a smaller one that still fails")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	path, rest := splitFirst(args)
	if err := e.Parse(fs, rest); err != nil {
		return err
	}
	if path == "" || fs.NArg() > 0 {
		return Usagef("faults run takes one scenario file:\n  %s", faultsUsage)
	}
	s, err := faults.LoadFile(path, nil)
	if err != nil {
		return Usagef("%v", err)
	}
	var (
		cfg    *config.Config
		source string
	)
	if s.Platform != "" {
		cfg, source, err = e.LoadConfig(filepath.Join(filepath.Dir(path), s.Platform))
	} else {
		cfg, source, err = e.LoadConfig("")
	}
	if err != nil {
		return err
	}
	var changed []byte
	if len(s.Set) > 0 {
		if changed, cfg, err = e.changeConfig(cfg, source, path+": set:", s.Set); err != nil {
			return err
		}
	}
	services := cfg.ServiceNames()
	if s, err = faults.LoadFile(path, faults.PlatformOf(cfg)); err != nil {
		return Usagef("%v", err)
	}
	if *duration > 0 {
		// Every time of the schedule scales with the load — when faults start and
		// how long they last — so that their windows fit in the shorter run as in
		// the written one.
		factor := float64(*duration) / float64(s.Load.Duration)
		scale := func(d *config.Duration) {
			if *d > 0 {
				*d = config.Duration(max(time.Duration(float64(*d)*factor).Round(100*time.Millisecond), 100*time.Millisecond))
			}
		}
		for i := range s.Faults {
			f := &s.Faults[i]
			f.At = config.Duration(time.Duration(float64(f.At) * factor).Round(100 * time.Millisecond))
			if f.Kill == "" && f.For == 0 {
				f.For = config.Duration(f.Lasts()) // its default, scaled too
			}
			scale(&f.For)
			scale(&f.Delay)
		}
		if r := s.Random; r != nil {
			r.From, r.To = config.Duration(float64(r.From)*factor), config.Duration(float64(r.To)*factor)
			scale(&r.For)
		}
		s.Load.Duration = config.Duration(*duration)
	}
	if s.Random != nil && *seed == 0 {
		*seed = rand.Uint64()>>12 + 1
	}
	if s.Random != nil {
		fmt.Fprintf(e.Stderr, "faults: seed %d\n", *seed)
	}
	dir := *out
	if dir == "" {
		dir = strings.TrimSuffix(path, filepath.Ext(path)) + ".result"
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	runner := func(out string) *faults.Runner {
		return &faults.Runner{Binary: bin, App: e.App.name(), Out: out, Env: e.childEnv(), Platform: changed,
			Log: func(format string, args ...any) { fmt.Fprintf(e.Stderr, "faults: "+format+"\n", args...) }}
	}
	schedule := faults.Draw(s, *seed, services)
	res, err := runner(dir).Run(ctx, s, schedule, *seed)
	if err != nil {
		return err
	}
	if err := writeResult(dir, res); err != nil {
		return err
	}
	if !res.Held && *shrink > 0 && len(schedule) > 1 {
		runs := 0
		smaller := faults.Shrink(schedule, *shrink, func(candidate []faults.Fault) bool {
			runs++
			fmt.Fprintf(e.Stderr, "faults: shrinking, run %d with %d faults\n", runs, len(candidate))
			r, err := runner(filepath.Join(dir, fmt.Sprintf("shrink-%d", runs))).Run(ctx, s, candidate, *seed)
			return err == nil && !r.Held
		})
		shrunk := *s
		shrunk.Random, shrunk.Faults = nil, smaller
		shrunk.Name = s.Name + " (shrunk)"
		b, err := yaml.Marshal(scenarioFile(shrunk))
		if err != nil {
			return err
		}
		file := filepath.Join(dir, "shrunk.yaml")
		if err := os.WriteFile(file, b, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(e.Stderr, "faults: %d faults still fail; the scenario is %s\n", len(smaller), file)
	}
	if err := printResult(e, res, *asJSON); err != nil {
		return err
	}
	fmt.Fprintf(e.Stderr, "faults: report in %s (report.txt, report.svg, result.json)\n", dir)
	if !res.Held {
		return &ErrFaults{Scenario: s.Name}
	}
	return nil
}

// scenarioFile is a scenario as a file writes it.
func scenarioFile(s faults.Scenario) map[string]any {
	out := map[string]any{"version": 1, "name": s.Name, "faults": s.Faults, "load": s.Load, "assert": s.Assert}
	if s.Platform != "" {
		out["platform"] = s.Platform
	}
	if s.Broker != "" {
		out["broker"] = s.Broker
	}
	if s.Database != "" {
		out["database"] = s.Database
	}
	if len(s.DatabaseServices) > 0 {
		out["database_services"] = s.DatabaseServices
	}
	if s.Redis != "" {
		out["redis"] = s.Redis
	}
	if len(s.Set) > 0 {
		out["set"] = s.Set
	}
	if len(s.Replicas) > 0 {
		out["replicas"] = s.Replicas
	}
	return out
}

// splitFirst takes the first argument that is not a flag or a flag's value out
// of args (flags may come before or after it); --json takes no value.
func splitFirst(args []string) (string, []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			return a, append(append([]string{}, args[:i]...), args[i+1:]...)
		}
		if !strings.Contains(a, "=") && strings.TrimLeft(a, "-") != "json" {
			i++ // the flag's value
		}
	}
	return "", args
}

func writeResult(dir string, res *faults.Result) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "result.json"), b, 0o644); err != nil {
		return err
	}
	return drawResult(dir, res)
}

func drawResult(dir string, res *faults.Result) error {
	txt, err := os.Create(filepath.Join(dir, "report.txt"))
	if err != nil {
		return err
	}
	defer txt.Close()
	if err := res.Text(txt); err != nil {
		return err
	}
	svg, err := os.Create(filepath.Join(dir, "report.svg"))
	if err != nil {
		return err
	}
	defer svg.Close()
	return res.SVG(svg)
}

func printResult(e *Env, res *faults.Result, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(e.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return res.Text(e.Stdout)
}

// faultsReport redraws a run's report from its result.json.
func faultsReport(e *Env, args []string) error {
	fs := e.Flags("faults report")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	dir, rest := splitFirst(args)
	if err := e.Parse(fs, rest); err != nil {
		return err
	}
	if dir == "" || fs.NArg() > 0 {
		return Usagef("faults report takes a result directory:\n  %s", faultsUsage)
	}
	b, err := os.ReadFile(filepath.Join(dir, "result.json"))
	if err != nil {
		return Usagef("faults report: %v", err)
	}
	var res faults.Result
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, "result.json"), err)
	}
	if err := drawResult(dir, &res); err != nil {
		return err
	}
	return printResult(e, &res, *asJSON)
}

// childEnv is the environment handed to the processes a command starts: the
// path and home, and the variables naming servers and settings, nothing else.
func (e *Env) childEnv() []string {
	var out []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "DATABASE_URL", "REDIS_URL", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if v := e.Getenv(k); v != "" {
			out = append(out, k+"="+v)
		}
	}
	return out
}
