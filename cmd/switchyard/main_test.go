package main

import (
	"context"
	"io"

	"github.com/switchyard/switchyard/cli"
	"github.com/switchyard/switchyard/internal/shop"
)

// run is the switchyard binary's command line, in process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return cli.Run(ctx, shop.App(), args, getenv, stdout, stderr)
}

// shopEnv is the command line's environment with the shop's App, for its
// renderers.
func shopEnv() *cli.Env {
	app := shop.App()
	return &cli.Env{App: &app, Getenv: func(string) string { return "" }, Stdout: io.Discard, Stderr: io.Discard}
}
