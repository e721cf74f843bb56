// Command rides is a ride-hailing system designed on Switchyard before any of its
// code exists: seven services and a gateway, every one simulated from its
// declaration in switchyard.yaml — sync calls under policies, events with a
// consumer group of two replicas, a live stream to riders.
//
//	go run . up        every service on this machine: an embedded broker, a SQLite file each
//	go run . load      the traffic switchyard.yaml declares, through the gateway
//	go run . diagram   how the services talked, from their traces
//	go run . verify    exit 1 if the traffic and switchyard.yaml disagree
//	go run . design    the communication design, from the declaration
package main

import (
	_ "embed"

	"github.com/switchyard/switchyard/cli"
	"github.com/switchyard/switchyard/examples/rides/events"
	"github.com/switchyard/switchyard/platform"
)

//go:embed switchyard.yaml
var platformFile []byte

func app() cli.App {
	return cli.App{Name: "rides", Config: platformFile, ConfigName: "switchyard.yaml (built-in)", Events: events.Schemas,
		// No service has code yet: each runs as its simulation. The gateway is the
		// platform's own.
		Services: []platform.Service{platform.Gateway(platform.GatewayOptions{})}}
}

func main() { cli.Main(app()) }
