package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime/debug"

	"github.com/switchyard/switchyard"
)

// versionInfo is what `version --json` prints.
type versionInfo struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Go       string `json:"go"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
}

func cmdVersion(_ context.Context, e *Env, args []string) error {
	fs := e.Flags("version")
	asJSON := fs.Bool("json", false, "print one JSON object: name, version, go, and the VCS revision and time when the build recorded them")
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usagef("version takes no arguments")
	}
	mod, goVersion := switchyard.Version()
	if !*asJSON {
		fmt.Fprintf(e.Stdout, "%s %s (%s)\n", e.App.name(), mod, goVersion)
		return nil
	}
	v := versionInfo{Name: e.App.name(), Version: mod, Go: goVersion}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	enc := json.NewEncoder(e.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
