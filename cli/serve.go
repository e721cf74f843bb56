package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/supervisor"
	"github.com/switchyard/switchyard/platform"
)

// cmdServe runs one service in the foreground, through the platform: what a
// container runs, and what `up` starts for each service.
func cmdServe(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("serve")
	configPath := ConfigFlag(fs)
	listen := fs.String("listen", "", "`host:port` to serve on (default: the service's listen address in the platform file)")
	drainDelay := fs.Duration("drain-delay", 0, "how long /readyz reports draining before the listener closes, e.g. `5s` behind a Kubernetes Service")
	instanceVersion := fs.String("instance-version", "", "version `tag` this instance announces (e.g. v2), for canary routing")
	weight := fs.Int("weight", 0, "the relative share `N` of traffic this instance asks for under weighted balancing (default 100)")
	name := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:] // serve <service> [flags]
	}
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0) // serve [flags] <service>
	} else if fs.NArg() > 0 || name == "" {
		return Usagef("serve needs exactly one service name (see %s serve --help)", e.App.name())
	}
	cfg, _, err := e.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	if cfg.Process(name) == nil {
		return Usagef("no service %q in %s; it declares %s", name, cfg.Source, strings.Join(cfg.ServiceNames(), ", "))
	}
	svc, err := e.builderOf(cfg, name)
	if err != nil {
		return err
	}
	return platform.Serve(ctx, svc, platform.Options{
		Config: cfg, Service: name, Events: e.Events(cfg),
		Listen: *listen, DrainDelay: *drainDelay, InstanceVersion: *instanceVersion, Weight: *weight,
		Getenv: e.Getenv, Logs: e.Stdout, LogText: isTerminal(e.Stdout),
		OnListen: func(addr string) {
			if err := supervisor.Announce(e.Getenv, addr); err != nil {
				fmt.Fprintf(e.Stderr, "could not announce the address to the supervisor: %v\n", err)
			}
		},
	})
}

// isTerminal reports whether w is a character device (a human's terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// builderOf returns how this binary runs the named process, or an error placed at
// its declaration saying how to run it.
func (e *Env) builderOf(cfg *config.Config, name string) (platform.Service, error) {
	svc, ok := e.App.builder(cfg, name)
	if !ok {
		return svc, config.Errors{cfg.Errorf("services."+name, "%s has no code for %s: give it a simulate block to run it as a simulation, or build it into the binary (cli.App.Services)", e.App.name(), name)}
	}
	return svc, nil
}
