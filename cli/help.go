package cli

import (
	"context"
	"flag"
)

func cmdHelp(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("help")
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	switch fs.NArg() {
	case 0:
		printUsage(e, e.Stdout)
		return nil
	case 1:
		name := fs.Arg(0)
		cmd, ok := e.App.command(name)
		if !ok {
			return Usagef("no command %q; run %s help for the list", name, e.App.name())
		}
		err := cmd.Run(ctx, e, []string{"--help"})
		if err == flag.ErrHelp { //nolint:errorlint // parse returns the sentinel itself
			return nil
		}
		return err
	default:
		return Usagef("help takes one command name")
	}
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool { return arg == "-h" || arg == "--help" || arg == "-help" }

// commandHelp prints the named command's usage and summary, for a command whose
// flags belong to its subcommands, and returns flag.ErrHelp as --help does.
func (e *Env) commandHelp(name string) error {
	e.Flags(name).Usage()
	return flag.ErrHelp
}
