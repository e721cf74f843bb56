// Package openapi holds the OpenAPI 3 contracts of the shop's REST services, embedded
// so that tests, the gateway and the design document read the same files.
package openapi

import "embed"

// Files are the contracts: users.yaml, catalog.yaml, ...
//
//go:embed *.yaml
var Files embed.FS
