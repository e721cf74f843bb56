// Package events holds the JSON Schema of each event type the bookings system
// publishes, one file per type named <type>.json: producers validate what they
// write against it, consumers what they read.
package events

import "embed"

// Schemas are the event schemas.
//
//go:embed *.json
var Schemas embed.FS
