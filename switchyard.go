// Package switchyard holds what belongs to the project as a whole: the default
// platform definition (switchyard.yaml at the repository root, embedded so that a
// fresh clone runs with no file in the working directory) and the build version.
//
// The toolkit lives in the packages beside this file (config, store, telemetry,
// server, broker, supervisor, ...); the reference shop lives in internal/shop; the
// binary in cmd/switchyard.
package switchyard

import (
	_ "embed"
	"runtime/debug"
)

// DefaultConfig is the built-in platform definition: the same bytes as
// switchyard.yaml at the repository root.
//
//go:embed switchyard.yaml
var DefaultConfig []byte

// DefaultConfigName is the name under which DefaultConfig reports errors.
const DefaultConfigName = "switchyard.yaml (built-in)"

// Version reports the module version the binary was built from ("devel" for a
// working-tree build) and the Go toolchain that built it.
func Version() (module, goVersion string) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown", "unknown"
	}
	module = info.Main.Version
	if module == "" || module == "(devel)" {
		module = "devel"
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			module += "+" + s.Value[:12]
		}
	}
	return module, info.GoVersion
}
