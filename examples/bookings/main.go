// Command bookings is a small concert-booking system on Switchyard: seats (REST),
// bookings (a saga over seats, with its events through the outbox) and tickets (an
// inbox-backed consumer of bookings' events). It is the whole Switchyard command
// line over these three services:
//
//	go run . up        every service on this machine: an embedded broker, a SQLite file each
//	go run . check     every outbox drained, no saga stuck or late
//	go run . diagram   who talked to whom, from the traces
package main

import (
	_ "embed"

	"github.com/switchyard/switchyard/cli"
	"github.com/switchyard/switchyard/examples/bookings/booking"
	"github.com/switchyard/switchyard/examples/bookings/events"
	"github.com/switchyard/switchyard/examples/bookings/seats"
	"github.com/switchyard/switchyard/examples/bookings/tickets"
	"github.com/switchyard/switchyard/platform"
)

//go:embed switchyard.yaml
var platformFile []byte

// services are the system's services, each built by the platform from its
// declaration in switchyard.yaml.
func services() []platform.Service {
	return []platform.Service{seats.Platform(), booking.Platform(), tickets.Platform()}
}

func app() cli.App {
	return cli.App{Name: "bookings", Config: platformFile, ConfigName: "switchyard.yaml (built-in)", Events: events.Schemas, Services: services()}
}

func main() { cli.Main(app()) }
