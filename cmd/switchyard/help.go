package main

import (
	"context"
	"flag"
)

func cmdHelp(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "help")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch fs.NArg() {
	case 0:
		printUsage(e.stdout)
		return nil
	case 1:
		name := fs.Arg(0)
		cmd, ok := commands()[name]
		if !ok {
			return usageErrorf("no command %q; run switchyard help for the list", name)
		}
		err := cmd.run(ctx, e, []string{"--help"})
		if err == flag.ErrHelp { //nolint:errorlint // parse returns the sentinel itself
			return nil
		}
		return err
	default:
		return usageErrorf("help takes one command name")
	}
}
