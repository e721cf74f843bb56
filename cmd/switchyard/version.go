package main

import (
	"context"
	"fmt"

	"github.com/switchyard/switchyard"
)

func cmdVersion(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "version")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("version takes no arguments")
	}
	mod, goVersion := switchyard.Version()
	fmt.Fprintf(e.stdout, "switchyard %s (%s)\n", mod, goVersion)
	return nil
}
