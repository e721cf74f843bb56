package cli

import (
	"context"
	"fmt"

	"github.com/switchyard/switchyard"
)

func cmdVersion(_ context.Context, e *Env, args []string) error {
	fs := e.Flags("version")
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usagef("version takes no arguments")
	}
	mod, goVersion := switchyard.Version()
	fmt.Fprintf(e.Stdout, "%s %s (%s)\n", e.App.name(), mod, goVersion)
	return nil
}
