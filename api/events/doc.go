// Package events holds the JSON Schema of every event type's data, one file per type
// named <type>.json, embedded so producers, consumers, tests and the design document
// read the same files. A test fails when a type used in the code has no schema here,
// or a schema here is used nowhere.
package events

import "embed"

// Schemas are the event schemas.
//
//go:embed *.json
var Schemas embed.FS
