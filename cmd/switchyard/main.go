// Command switchyard runs the Switchyard platform and operates it.
//
//	switchyard up                 run every service on this machine (embedded broker, SQLite)
//	switchyard serve <service>    run one service (what a container runs)
//	switchyard events ...         dead letters, and events as they flow
//	switchyard load               customers' traffic at a rate, with a summary
//	switchyard check              the shop's cross-service invariants
//	switchyard token              a service token for a tool such as grpcurl
//	switchyard version            print the version
//	switchyard help [command]     explain a command
//
// main only wires the process to run; everything testable lives below it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	code := exitCode(err)
	if err != nil && code != 0 {
		fmt.Fprintln(os.Stderr, "switchyard:", err)
	}
	os.Exit(code)
}
