package config

import _ "embed"

// Schema is the JSON Schema (draft 2020-12) of switchyard.yaml, generated from the
// types the loader decodes into — every key, its type and its doc comment — and kept
// in step with them by TestTheSchemaIsTheLoaders (go test ./config -run Schema
// -update rewrites it). Editors that speak the YAML language server's modeline read
// it from the file's first line:
//
//	# yaml-language-server: $schema=https://raw.githubusercontent.com/switchyard/switchyard/main/config/switchyard.schema.json
//
//go:embed switchyard.schema.json
var Schema []byte

// SchemaURL is where the schema is published, for the modeline of files outside
// this repository (those inside name the file by its relative path).
const SchemaURL = "https://raw.githubusercontent.com/switchyard/switchyard/main/config/switchyard.schema.json"
