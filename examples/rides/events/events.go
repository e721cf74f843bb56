// Package events holds the JSON Schema of each event type the rides system
// publishes: its simulated services draw their events' data from them, and
// every event is checked against its schema before it is written.
package events

import "embed"

// Schemas are the event schemas, <type>.json each.
//
//go:embed *.json
var Schemas embed.FS
