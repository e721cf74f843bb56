// Package api holds Switchyard's contracts: protobuf services (proto/, generated Go
// in gen/), OpenAPI documents (openapi/) and event schemas (events/).
//
// Regenerate the Go code with `go generate ./api/`; CI fails when that leaves a diff.
package api

//go:generate go -C .. tool -modfile=tools/go.mod buf generate
