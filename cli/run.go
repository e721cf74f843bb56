// Package cli is the command line every Switchyard binary has: `up`, `serve`,
// `broker`, `events`, `check`, `logs`, `diagram`, `design`, `deploy`, `token` and
// the rest, over the services a binary is built with.
//
// A binary's main hands its services to [Main]:
//
//	func main() {
//		cli.Main(cli.App{Config: platformFile, Events: schemas, Services: []platform.Service{
//			orders.Service(), billing.Service(), platform.Gateway(platform.GatewayOptions{}),
//		}})
//	}
//
// and gets the whole command line: `up` runs every declared service as its own
// process of the same binary (`serve <name>`), with an embedded broker, a SQLite
// file each, the trace and log hub, and restarts; `serve` runs one (what a
// container runs); the operator commands work on the running stack. An App adds its
// own invariants to `check` and its own commands (the reference shop adds `load`
// and `grant`). [Run] is Main without the process: tests call it.
package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/simulate"
)

// App is a binary's services and what the command line needs to know of them
// beyond their declaration.
type App struct {
	// Name of the binary, in usage and messages [switchyard].
	Name string
	// Config is the built-in platform file, used when the working directory holds
	// no switchyard.yaml (and no --config is given); ConfigName names it in errors.
	Config     []byte
	ConfigName string
	// Events holds the event schemas, <type>.json each; a platform file naming its
	// own directory (events: in switchyard.yaml) replaces them.
	Events fs.FS
	// Services are the services this binary implements, the gateway included
	// (platform.Gateway). A declared service with a simulate block runs as its
	// simulation instead; one with neither cannot be served.
	Services []platform.Service
	// Check adds the application's own invariants to `check`, beside the
	// toolkit's (every outbox drained, no saga stuck or past its deadline).
	Check func(ctx context.Context, in CheckInput) ([]CheckResult, error)
	// Commands are the application's own subcommands.
	Commands []Command
	// Welcome, when set, returns lines up prints under its ready table, given the
	// URL of each service that runs (the gateway's under "gateway"): where people
	// start, how one becomes an administrator.
	Welcome func(urls map[string]string) []string
	// Design says, for the design document, what the code does that
	// switchyard.yaml cannot: who issues end users' tokens, the gateway's own
	// routes, what streams carry, which views are eventually consistent.
	Design DesignNotes
}

// DesignNotes are the design document's sentences about the application's code.
// Each is optional; without it the document says only what the configuration
// shows.
type DesignNotes struct {
	// Identity: who issues end users' access tokens and how the gateway verifies
	// them (GatewayOptions.Verifier).
	Identity string
	// Gateway: the routes the gateway answers itself (GatewayOptions.Routes).
	Gateway string
	// RealTime: what the declared streams carry and how a client resumes one.
	RealTime string
	// Consistency: the read models and what feeds them.
	Consistency string
	// Schemas is where the event schemas live in the source tree [the events:
	// directory of switchyard.yaml, else events].
	Schemas string
}

// Command is one subcommand.
type Command struct {
	Name    string
	Summary string
	Usage   string
	Run     func(ctx context.Context, e *Env, args []string) error
}

// Env is what a subcommand receives from the process: nothing below Main reads
// os.Args, os.Getenv or os.Stdout directly.
type Env struct {
	Getenv func(string) string
	// Stdin is the terminal a command may ask questions on (init); nil when none.
	Stdin io.Reader
	// Input is the process's standard input, terminal or not (the MCP server's
	// stdio transport reads it); nil under Run.
	Input  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	App    *App
}

func (a *App) name() string { return cmp.Or(a.Name, "switchyard") }

// builder returns how this binary runs the named process of cfg: its simulation
// when the declaration has a simulate block, else the App's own builder.
func (a *App) builder(cfg *config.Config, name string) (platform.Service, bool) {
	return simulate.Builder(cfg, name, a.Services)
}

// commands is the table of subcommands: the toolkit's, then the application's.
// Each run function lives in its own file.
func (a *App) commands() []Command {
	own := []Command{
		{Name: "up", Summary: "run the whole platform on this machine: an embedded broker and every service as its own process",
			Usage: "up [--config path] [--services a,b]", Run: cmdUp},
		{Name: "serve", Summary: "run one service in the foreground (what a container runs)",
			Usage: "serve <service> [--config path] [--listen host:port]", Run: cmdServe},
		{Name: "broker", Summary: "run the NATS JetStream broker that up embeds, on its own (for several serve processes, or a cluster on loopback)",
			Usage: "broker [--listen host:port] [--store dir] [--token T] [--sync always|1s] [--cluster name --cluster-listen host:port --routes a,b]", Run: cmdBroker},
		{Name: "events", Summary: "inspect, replay and purge dead letters; tail events as they flow", Usage: eventsUsage, Run: cmdEvents},
		{Name: "certs", Summary: "under mutual TLS, replace the services' certificates now from the local stack's CA (up renews them itself; services take them up without restarting)",
			Usage: certsUsage, Run: cmdCerts},
		{Name: "config", Summary: "validate switchyard.yaml as up would, starting nothing; print its JSON Schema for editors",
			Usage: configUsage, Run: cmdConfig},
		{Name: "check", Summary: "verify the platform's invariants from the services' own data (exit 1 when one breaks)",
			Usage: "check [--config path] [--wait 30s] [--accepted file] [--json]", Run: cmdCheck},
		{Name: "faults", Summary: "run a fault scenario — the platform, a load, faults at times or drawn from a seed, what must hold — and report (exit 1 when an assertion fails)",
			Usage: faultsUsage, Run: cmdFaults},
		{Name: "init", Summary: "start a new system: asked on a terminal, or from flags, a file or a template — a commented switchyard.yaml with every service simulated, a main.go, a README and the design document",
			Usage: initUsage, Run: cmdInit},
		{Name: "lint", Summary: "analyse the policies and shape of the declared system — timeout inversions, retry amplification, deadline budgets, structural smells — and, with --set, what a change would do (exit 1 on errors)",
			Usage: lintUsage, Run: cmdLint},
		{Name: "mcp", Summary: "serve the system to an assistant over the Model Context Protocol (stdio, or streamable HTTP on loopback): describe, analyse, diagrams, traces, dead letters, explain an order, validate and propose changes",
			Usage: mcpUsage, Run: cmdMCP},
		{Name: "load", Summary: "send the platform the traffic switchyard.yaml declares (load:), or the requests given, at a rate; summarise",
			Usage: loadUsage, Run: Load},
		{Name: "logs", Summary: "print the log lines every service of the local stack wrote, by service, level or trace",
			Usage: "logs [--service S] [--level L] [--trace ID] [--follow] [-n 200] [--json]", Run: cmdLogs},
		{Name: "diagram", Summary: "draw how the services talked, from their traces: interactions (text, Mermaid) with drift, or one trace's sequence",
			Usage: "diagram [--since 15m] [--format text|mermaid|json | --json] [--trace ID [--format mermaid|svg|json]] [--jaeger URL --service S | --file otlp.json] [--save file]", Run: cmdDiagram},
		{Name: "design", Summary: "render the communication design document from switchyard.yaml, the contracts and, optionally, observed traffic",
			Usage: "design [--observed [--since 15m] | --file otlp.json] [-o file]", Run: cmdDesign},
		{Name: "deploy", Summary: "render deployment artefacts from switchyard.yaml: monitoring (Prometheus rules, Grafana dashboard), kubernetes (kustomize base and overlays), identities (service keys)",
			Usage: "deploy monitoring|kubernetes|identities [--out dir]", Run: cmdDeploy},
		{Name: "token", Summary: "mint a service token from the local identities, e.g. for grpcurl",
			Usage: "token --as <caller> --for <callee> [--ttl 5m]", Run: cmdToken},
		{Name: "verify", Summary: "the topology gate: exit 1 naming every edge the traces show that switchyard.yaml does not declare, and every declared edge never exercised",
			Usage: "verify [--since 15m] [--file otlp.json | --jaeger URL --service S] [--config path]", Run: cmdVerify},
		{Name: "version", Summary: "print the version of this binary", Usage: "version [--json]", Run: cmdVersion},
		{Name: "help", Summary: "explain a command", Usage: "help [command]", Run: cmdHelp},
		{Name: "completion", Summary: "print a shell completion script for the commands and their flags", Usage: "completion bash|zsh|fish", Run: cmdCompletion},
	}
	for _, c := range a.Commands {
		own = slices.DeleteFunc(own, func(o Command) bool { return o.Name == c.Name }) // the application's wins
		own = append(own, c)
	}
	slices.SortFunc(own, func(x, y Command) int { return strings.Compare(x.Name, y.Name) })
	return own
}

func (a *App) command(name string) (Command, bool) {
	for _, c := range a.commands() {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}

// Main runs the command line of app on the process — its arguments, environment
// and standard streams, Ctrl-C and SIGTERM stopping it — and exits with the status
// Run's error maps to: 0 success, 2 a usage or configuration error, 1 anything
// else. It is what a binary's main calls, and it does not return.
func Main(app App) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var stdin io.Reader
	if isTerminal(os.Stdin) { //nolint:forbidigo // Main is a binary's main: it hands the process on
		stdin = os.Stdin //nolint:forbidigo // the same
	}
	err := run(ctx, app, os.Args[1:], os.Getenv, stdio{terminal: stdin, input: os.Stdin}, os.Stdout, os.Stderr) //nolint:forbidigo // Main is a binary's main: it hands the process on
	stop()
	code := ExitCode(err)
	if err != nil && code != 0 {
		fmt.Fprintf(os.Stderr, "%s: %v\n", app.name(), err)
	}
	os.Exit(code) //nolint:forbidigo // Main is a binary's main
}

// Run is the whole program: it dispatches args to a subcommand. It asks no
// questions (no terminal is given).
func Run(ctx context.Context, app App, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return run(ctx, app, args, getenv, stdio{}, stdout, stderr)
}

// stdio is the process's standard input: as a terminal to ask on, and as input.
type stdio struct{ terminal, input io.Reader }

func run(ctx context.Context, app App, args []string, getenv func(string) string, in stdio, stdout, stderr io.Writer) error {
	e := &Env{Getenv: getenv, Stdin: in.terminal, Input: in.input, Stdout: stdout, Stderr: stderr, App: &app}
	if len(args) == 0 {
		printUsage(e, stderr)
		return Usagef("no command given")
	}
	name := args[0]
	switch name {
	case "-h", "--help", "-help":
		printUsage(e, stdout)
		return nil
	case "-v", "--version", "-version":
		name = "version"
	}
	cmd, ok := app.command(name)
	if !ok {
		if near := nearest(name, app.commandNames()); near != "" {
			return Usagef("unknown command %q: did you mean %q? (%s help lists them all)", name, near, app.name())
		}
		printUsage(e, stderr)
		return Usagef("unknown command %q", name)
	}
	return cmd.Run(ctx, e, args[1:])
}

func printUsage(e *Env, w io.Writer) {
	fmt.Fprintf(w, "%s runs a microservice platform and shows how its services talk.\n\n", e.App.name())
	fmt.Fprintf(w, "Usage: %s <command> [flags]\n\nCommands:\n", e.App.name())
	for _, c := range e.App.commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.Name, c.Summary)
	}
	fmt.Fprintf(w, "\nRun \"%s help <command>\" or \"%s <command> --help\" for details.\n", e.App.name(), e.App.name())
}

// UsageError is a mistake in how a command was invoked: exit status 2.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

// Usagef returns a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{fmt.Sprintf(format, args...)}
}

// ExitCode maps an error to the process's exit status: 0 success (and --help), 2 a
// usage or configuration error, 1 anything else.
func ExitCode(err error) int {
	var (
		usage *UsageError
		cfg   config.Errors
	)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &usage), errors.As(err, &cfg):
		return 2
	default:
		return 1
	}
}

// Flags returns a flag set for the named subcommand whose --help prints its usage
// and flags to stdout and whose errors become usage errors.
func (e *Env) Flags(name string) *flag.FlagSet {
	cmd, _ := e.App.command(strings.Fields(name)[0])
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(e.Stdout, "Usage: %s %s\n\n%s\n", e.App.name(), cmp.Or(cmd.Usage, name), cmd.Summary)
		var flags strings.Builder
		fs.SetOutput(&flags)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
		if flags.Len() > 0 {
			fmt.Fprintf(e.Stdout, "\nFlags:\n%s", flags.String())
		}
	}
	return fs
}

// Parse parses args, turning errors into usage errors and --help into flag.ErrHelp
// after printing the usage (the flag set prints it as it meets --help).
func (e *Env) Parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		return flag.ErrHelp // fs.Parse has printed the usage (fs.Usage), once
	default:
		return Usagef("%s: %v (see %s %s --help)", fs.Name(), err, e.App.name(), fs.Name())
	}
}

// ConfigFlag registers the shared --config flag.
func ConfigFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "platform file `path` (default: ./switchyard.yaml if present, else the built-in platform)")
}

// LoadConfig loads the platform: the file at path, else ./switchyard.yaml when it
// exists, else the App's built-in one. It returns the absolute path of the file
// used, or "" for the built-in one. The file's events directory is made absolute
// (it is relative to the file), and every event type the platform publishes or
// consumes must have a schema there (or among the App's).
func (e *Env) LoadConfig(path string) (*config.Config, string, error) {
	if path == "" {
		if _, err := os.Stat("switchyard.yaml"); err == nil {
			path = "switchyard.yaml"
		}
	}
	var (
		cfg *config.Config
		abs string
		err error
	)
	if path == "" {
		if len(e.App.Config) == 0 {
			return nil, "", Usagef("no switchyard.yaml here, and %s has no built-in platform: write one, or pass --config", e.App.name())
		}
		if cfg, err = config.Load(cmp.Or(e.App.ConfigName, "switchyard.yaml (built-in)"), e.App.Config, e.Getenv); err != nil {
			return nil, "", err
		}
	} else {
		if cfg, err = config.LoadFile(path, e.Getenv); err != nil {
			var errs config.Errors
			if errors.As(err, &errs) {
				return nil, "", err
			}
			return nil, "", Usagef("%v", err)
		}
		if abs, err = absPath(path); err != nil {
			return nil, "", err
		}
	}
	if err := e.settle(cfg, filepath.Dir(cmp.Or(abs, "."))); err != nil {
		return nil, "", err
	}
	return cfg, abs, nil
}

// LoadConfigText loads a platform file given as text (a changed copy of one, say)
// named source, its relative paths taken from dir, as LoadConfig loads a file.
func (e *Env) LoadConfigText(source, dir string, raw []byte) (*config.Config, error) {
	cfg, err := config.Load(source, raw, e.Getenv)
	if err != nil {
		return nil, err
	}
	if err := e.settle(cfg, dir); err != nil {
		return nil, err
	}
	return cfg, nil
}

// settle resolves a loaded configuration's event schema directory against dir and
// checks that every declared event type has a schema.
func (e *Env) settle(cfg *config.Config, dir string) error {
	if cfg.Events != "" && !filepath.IsAbs(cfg.Events) {
		cfg.Events = filepath.Join(dir, cfg.Events)
	}
	return e.checkSchemas(cfg)
}

// Events returns the platform's event schemas: the directory its file names, else
// the App's own.
func (e *Env) Events(cfg *config.Config) fs.FS {
	if cfg.Events != "" {
		return os.DirFS(cfg.Events)
	}
	return e.App.Events
}

// checkSchemas places every event type declared without a schema.
func (e *Env) checkSchemas(cfg *config.Config) error {
	var known map[string]bool
	var errs config.Errors
	for _, s := range cfg.Processes() {
		for kind, list := range map[string][]string{"publishes": s.Publishes, "subscriptions": s.Subscriptions} {
			for i, typ := range list {
				if known == nil {
					known = map[string]bool{}
					fsys := e.Events(cfg)
					if fsys == nil {
						return cfg.Errorf("events", "the platform declares events, but neither it (events: <directory>) nor %s carries their schemas", e.App.name())
					}
					reg, err := event.NewRegistry(fsys)
					if err != nil {
						return cfg.Errorf("events", "%v", err)
					}
					for _, t := range reg.Types() {
						known[t] = true
					}
				}
				if !known[typ] {
					where := e.App.name() + "'s own schemas"
					if cfg.Events != "" {
						where = cfg.Events
					}
					errs = append(errs, cfg.Errorf(fmt.Sprintf("services.%s.%s.%d", s.Name, kind, i), "no schema for %s in %s (%s.json)", typ, where, typ))
				}
			}
		}
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b *config.Error) int { return a.Line - b.Line })
		return errs
	}
	return nil
}

// configRaw is the platform file as written: the file at source, or the built-in one.
func (e *Env) configRaw(source string) ([]byte, error) {
	if source == "" {
		return e.App.Config, nil
	}
	return os.ReadFile(source)
}
