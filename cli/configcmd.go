package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/switchyard/switchyard/config"
)

const configUsage = `config check [file] [--json]   validate a platform file as up would, starting nothing (exit 2 naming each file:line:key that is wrong)
       switchyard config schema                  print the JSON Schema of switchyard.yaml (editors read it from the file's first line)`

func cmdConfig(ctx context.Context, e *Env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(e.Stdout, "Usage: switchyard %s\n", configUsage)
		if len(args) == 0 {
			return Usagef("config needs a subcommand: check or schema")
		}
		return nil
	}
	switch args[0] {
	case "check":
		return configCheck(ctx, e, args[1:])
	case "schema":
		fs := e.Flags("config schema")
		if err := e.Parse(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return Usagef("config schema takes no arguments, got %q", fs.Arg(0))
		}
		_, err := e.Stdout.Write(config.Schema)
		return err
	default:
		return Usagef("config has no %q: it takes check or schema:\n%s", args[0], configUsage)
	}
}

// checked is what config check --json prints.
type checked struct {
	File     string         `json:"file"`
	Valid    bool           `json:"valid"`
	Services int            `json:"services,omitempty"`
	Events   int            `json:"events,omitempty"`
	Routes   int            `json:"routes,omitempty"`
	Errors   []checkedError `json:"errors,omitempty"`
}

type checkedError struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
}

func configCheck(_ context.Context, e *Env, args []string) error {
	fs := e.Flags("config check")
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return Usagef("config check takes one file, got %d", fs.NArg())
	}
	path := fs.Arg(0)
	cfg, abs, err := e.LoadConfig(path)
	out := checked{File: path}
	if abs != "" {
		out.File = abs
	} else if path == "" {
		out.File = e.App.ConfigName
		if cfg != nil {
			out.File = cfg.Source
		}
	}
	if err != nil {
		var errs config.Errors
		var usage *UsageError
		switch {
		case errors.As(err, &errs):
			for _, ce := range errs {
				out.Errors = append(out.Errors, checkedError{File: ce.File, Line: ce.Line, Column: ce.Column, Key: ce.Key, Message: ce.Msg})
			}
		case errors.As(err, &usage):
			out.Errors = append(out.Errors, checkedError{File: out.File, Message: usage.Error()})
		default:
			return err
		}
		if *asJSON {
			if werr := writeJSON(e, out); werr != nil {
				return werr
			}
		}
		return err // exit 2; the errors also on stderr, for a person
	}
	out.Valid = true
	out.Services = len(cfg.ServiceNames())
	var types []string
	for _, s := range cfg.Processes() {
		for _, t := range append(slices.Clone(s.Publishes), s.Subscriptions...) {
			if !slices.Contains(types, t) {
				types = append(types, t)
			}
		}
	}
	out.Events = len(types)
	if cfg.Gateway != nil {
		out.Routes = len(cfg.Gateway.Routes)
	}
	if *asJSON {
		return writeJSON(e, out)
	}
	fmt.Fprintf(e.Stdout, "%s: valid — %d services, %d event types, %d gateway routes\n", out.File, out.Services, out.Events, out.Routes)
	return nil
}

func writeJSON(e *Env, v any) error {
	enc := json.NewEncoder(e.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
