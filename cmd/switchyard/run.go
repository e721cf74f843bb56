package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/switchyard/switchyard"
	"github.com/switchyard/switchyard/config"
)

// env is what a subcommand receives from the process: nothing reads os.Args,
// os.Getenv or os.Stdout directly.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

// command is one subcommand.
type command struct {
	summary string
	usage   string
	run     func(ctx context.Context, e *env, args []string) error
}

// commands is the table of subcommands. Each run function lives in its own file.
func commands() map[string]command {
	return map[string]command{
		"up": {
			summary: "run the whole platform on this machine: an embedded broker and every service as its own process",
			usage:   "up [--config path] [--services a,b]",
			run:     cmdUp,
		},
		"broker": {
			summary: "run the NATS JetStream broker that up embeds, on its own (for several serve processes, or a cluster on loopback)",
			usage:   "broker [--listen host:port] [--store dir] [--token T] [--sync always|1s] [--cluster name --cluster-listen host:port --routes a,b]",
			run:     cmdBroker,
		},
		"serve": {
			summary: "run one service in the foreground (what a container runs)",
			usage:   "serve <service> [--config path] [--listen host:port]",
			run:     cmdServe,
		},
		"events": {
			summary: "inspect, replay and purge dead letters; tail events as they flow",
			usage:   eventsUsage,
			run:     cmdEvents,
		},
		"check": {
			summary: "verify the shop's cross-service invariants from the services' own data (exit 1 when one breaks)",
			usage:   "check [--config path] [--wait 30s] [--accepted file]",
			run:     cmdCheck,
		},
		"load": {
			summary: "drive the shop like its customers do (register, browse, order, some cards declining) at a rate, and summarise",
			usage:   "load [--rate 100] [--duration 60s] [--customers 20] [--declines 0.1] [--config path]",
			run:     cmdLoad,
		},
		"logs": {
			summary: "print the log lines every service of the local stack wrote, by service, level or trace",
			usage:   "logs [--service S] [--level L] [--trace ID] [--follow] [-n 200] [--json]",
			run:     cmdLogs,
		},
		"diagram": {
			summary: "draw how the services talked, from their traces: interactions (text, Mermaid) with drift, or one trace's sequence",
			usage:   "diagram [--since 15m] [--format text|mermaid|json] [--trace ID [--format mermaid|svg|json]] [--jaeger URL --service S | --file otlp.json] [--save file]",
			run:     cmdDiagram,
		},
		"design": {
			summary: "render the communication design document from switchyard.yaml, the contracts in api/ and, optionally, observed traffic",
			usage:   "design [--observed [--since 15m] | --file otlp.json] [-o file]",
			run:     cmdDesign,
		},
		"deploy": {
			summary: "render deployment artefacts from switchyard.yaml: monitoring (Prometheus rules, Grafana dashboard), kubernetes (kustomize base and overlays), identities (service keys)",
			usage:   "deploy monitoring|kubernetes|identities [--out dir]",
			run:     cmdDeploy,
		},
		"token": {
			summary: "mint a service token from the local identities, e.g. for grpcurl",
			usage:   "token --as <caller> --for <callee> [--ttl 5m]",
			run:     cmdToken,
		},
		"grant": {
			summary: "give a user a role (e.g. admin, for the gateway's admin routes); they sign in again to carry it",
			usage:   "grant <email> <role> [--config path]",
			run:     cmdGrant,
		},
		"version": {
			summary: "print the version of this binary",
			usage:   "version",
			run:     cmdVersion,
		},
		"help": {
			summary: "explain a command",
			usage:   "help [command]",
			run:     cmdHelp,
		},
	}
}

// run is the whole program: it dispatches args to a subcommand.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := &env{getenv: getenv, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		printUsage(stderr)
		return usageErrorf("no command given")
	}
	name := args[0]
	if name == "-h" || name == "--help" || name == "-help" {
		printUsage(stdout)
		return nil
	}
	cmd, ok := commands()[name]
	if !ok {
		printUsage(stderr)
		return usageErrorf("unknown command %q", name)
	}
	return cmd.run(ctx, e, args[1:])
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Switchyard runs a microservice platform and shows how its services talk.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: switchyard <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	names := make([]string, 0)
	for n := range commands() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands()[n].summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "switchyard help <command>" or "switchyard <command> --help" for details.`)
}

// usageError is a mistake in how the command was invoked: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// exitCode maps an error to the process's exit status: 0 success (and --help), 2 a
// usage or configuration error, 1 anything else.
func exitCode(err error) int {
	var (
		usage *usageError
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

// newFlags returns a flag set for the named subcommand whose --help prints its usage
// and flags to stdout and whose errors become usage errors.
func newFlags(e *env, name string) *flag.FlagSet {
	cmd := commands()[name]
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(e.stdout, "Usage: switchyard %s\n\n%s\n", cmd.usage, cmd.summary)
		var flags strings.Builder
		fs.SetOutput(&flags)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
		if flags.Len() > 0 {
			fmt.Fprintf(e.stdout, "\nFlags:\n%s", flags.String())
		}
	}
	return fs
}

// parse parses args, turning errors into usage errors and --help into flag.ErrHelp
// after printing the usage.
func parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return flag.ErrHelp
	default:
		return usageErrorf("%s: %v (see switchyard %s --help)", fs.Name(), err, fs.Name())
	}
}

// configFlag registers the shared --config flag.
func configFlag(fs *flag.FlagSet) *string {
	return fs.String("config", "", "platform file `path` (default: ./switchyard.yaml if present, else the built-in platform)")
}

// loadConfig loads the platform: the file at path, else ./switchyard.yaml when it
// exists, else the built-in default. It returns the absolute path of the file used,
// or "" for the built-in one.
func loadConfig(e *env, path string) (*config.Config, string, error) {
	if path == "" {
		if _, err := os.Stat("switchyard.yaml"); err == nil {
			path = "switchyard.yaml"
		}
	}
	if path == "" {
		cfg, err := config.Load(switchyard.DefaultConfigName, switchyard.DefaultConfig, e.getenv)
		return cfg, "", err
	}
	cfg, err := config.LoadFile(path, e.getenv)
	if err != nil {
		var errs config.Errors
		if errors.As(err, &errs) {
			return nil, "", err
		}
		return nil, "", usageErrorf("%v", err)
	}
	abs, err := absPath(path)
	return cfg, abs, err
}
