// Command switchyard runs the reference shop on the Switchyard platform, and
// operates it: the command line every Switchyard binary gets (package cli), with
// the shop's services.
//
//	switchyard up                 run every service on this machine (embedded broker, SQLite)
//	switchyard serve <service>    run one service (what a container runs)
//	switchyard broker             the broker up embeds, on its own
//	switchyard events ...         dead letters, and events as they flow
//	switchyard load               customers' traffic at a rate, with a summary
//	switchyard check              the shop's cross-service invariants
//	switchyard diagram, logs      how the services talked, from their traces and logs
//	switchyard design, deploy     the design document; rules, dashboards, manifests
//	switchyard help [command]     explain a command (or --help after any command)
//	switchyard completion bash    a shell completion script (zsh, fish too)
package main

import (
	"github.com/switchyard/switchyard/cli"
	"github.com/switchyard/switchyard/internal/shop"
)

func main() { cli.Main(shop.App()) }
