package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/broker"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/supervisor"
	"github.com/switchyard/switchyard/observe"
	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/rest"
	"github.com/switchyard/switchyard/telemetry"
)

func cmdUp(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("up")
	configPath := ConfigFlag(fs)
	only := fs.String("services", "", "comma-separated `names` of the services to run (default: all)")
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usagef("up takes no arguments, got %q", fs.Arg(0))
	}
	cfg, cfgFile, err := e.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	names := cfg.ServiceNames()
	if *only != "" {
		var picked []string
		for _, n := range strings.Split(*only, ",") {
			n = strings.TrimSpace(n)
			if n == "gateway" && cfg.Gateway != nil {
				continue
			}
			if cfg.Service(n) == nil {
				return Usagef("--services: no service %q in %s; it declares %s", n, cfg.Source, strings.Join(names, ", "))
			}
			if !slices.Contains(picked, n) {
				picked = append(picked, n)
			}
		}
		names = slices.DeleteFunc(names, func(n string) bool { return !slices.Contains(picked, n) })
	}

	// Every service must be runnable before any starts: code in this binary, or a
	// simulation.
	var missing config.Errors
	for _, n := range append(slices.Clone(names), config.GatewayName) {
		if n == config.GatewayName && cfg.Gateway == nil {
			continue
		}
		if _, err := e.builderOf(cfg, n); err != nil {
			var errs config.Errors
			if errors.As(err, &errs) {
				missing = append(missing, errs...)
			}
		}
	}
	if len(missing) > 0 {
		return missing
	}

	dataDir, err := absPath(cfg.DataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	unlock, err := lockStack(dataDir)
	if err != nil {
		return err
	}
	defer unlock()

	log := telemetry.NewLogger(e.Stderr, telemetry.LogConfig{Service: "up", Text: true})
	natsURL, embedded := cfg.Broker.URL, false
	if cfg.Broker.Kind == "nats" && natsURL == "" {
		var sync time.Duration
		if cfg.Broker.Embedded.Sync != "always" {
			sync, _ = time.ParseDuration(cfg.Broker.Embedded.Sync) // validated with the config
		}
		b, err := broker.Start(broker.Config{
			Listen:       cfg.Broker.Embedded.Listen,
			StoreDir:     filepath.Join(dataDir, "nats"),
			SyncInterval: sync,
			Logger:       log.With("component", "broker"),
		})
		if err != nil {
			return err
		}
		defer b.Shutdown()
		natsURL, embedded = b.URL(), true
	}

	// Every service (and the gateway) gets an identity key; the bundle of their public
	// keys lets each verify the others' service tokens.
	identityDir := filepath.Join(dataDir, "identity")
	bundle, err := authn.EnsureIdentities(identityDir, append(cfg.ServiceNames(), "gateway"))
	if err != nil {
		return err
	}
	if cfg.Security.TLS.Mutual() {
		// ... and, under mutual TLS, a certificate from the stack's CA, kept current.
		certCtx, stopCerts := context.WithCancel(ctx)
		defer stopCerts()
		if err := keepCertificates(certCtx, identityDir, cfg, log); err != nil {
			return err
		}
	}
	hub, hubURL, stopHub, err := startHub(cfg.Telemetry.Hub, log)
	if err != nil {
		return err
	}
	defer stopHub() // after the children: their last spans still arrive
	if e.Getenv(platform.EnvProfiling) == "1" {
		// The broker and the hub live in this process; its profile is theirs.
		hub.Handle("GET /debug/pprof/", http.HandlerFunc(pprof.Index))
		hub.Handle("GET /debug/pprof/profile", http.HandlerFunc(pprof.Profile))
	}
	childEnv := []string{"SWITCHYARD_DATA_DIR=" + dataDir, platform.EnvTrustBundle + "=" + bundle, platform.EnvTraceHub + "=" + hubURL}
	if natsURL != "" {
		childEnv = append(childEnv, "NATS_URL="+natsURL)
	}
	var children []supervisor.Spec
	for _, n := range names {
		for replica := 1; replica <= cfg.Service(n).Replicas; replica++ {
			args := []string{"serve", n}
			if cfgFile != "" {
				args = append(args, "--config", cfgFile)
			}
			name := n
			if replica > 1 {
				// The first replica keeps the declared port; the others take free ones.
				host, _, _ := net.SplitHostPort(cfg.Service(n).Listen)
				args = append(args, "--listen", net.JoinHostPort(host, "0"))
				name = fmt.Sprintf("%s%s%d", n, replicaMark, replica)
			}
			env := append(slices.Clone(childEnv), platform.EnvServiceKey+"="+filepath.Join(identityDir, n+".key"))
			children = append(children, supervisor.Spec{Name: name, Args: args, ListenFlag: "--listen", Env: ownWays(e, n, env)})
		}
	}
	if cfg.Gateway != nil && (*only == "" || slices.Contains(strings.Split(*only, ","), "gateway")) {
		args := []string{"serve", "gateway"}
		if cfgFile != "" {
			args = append(args, "--config", cfgFile)
		}
		env := append(slices.Clone(childEnv), platform.EnvServiceKey+"="+filepath.Join(identityDir, "gateway.key"))
		children = append(children, supervisor.Spec{Name: "gateway", Args: args, ListenFlag: "--listen", Env: ownWays(e, "gateway", env)})
	}

	stack := &stackFile{
		Path:      filepath.Join(dataDir, "stack.json"),
		PID:       os.Getpid(),
		StartedAt: time.Now().UTC(),
		Config:    cfgFile,
		DataDir:   dataDir,
		Broker:    stackBroker{URL: natsURL, Embedded: embedded, Kind: cfg.Broker.Kind},
		Hub:       hubURL,
	}
	// A person on a terminal sees warnings, errors and state changes; anything
	// else gets every line as the service wrote it.
	var (
		format func([]byte) []byte
		states *stateLines
	)
	if isTerminal(e.Stdout) {
		format = terminalLine(e.Colour(e.Stdout))
		states = &stateLines{w: e.Stdout, colour: e.Colour(e.Stdout)}
	}
	sup, err := supervisor.New(supervisor.Config{
		Children: children,
		Output:   e.Stdout,
		Format:   format,
		Tap:      hub.Log,
		Logger:   log,
		OnChange: func(st []supervisor.Status) {
			if err := stack.write(st); err != nil {
				log.Error("write stack.json", "error", err)
			}
			if states != nil {
				states.changed(st)
			}
		},
	})
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(stack.Path) }() // a stopped stack leaves no stack.json
	hub.Handle("GET /api/dependencies", dependencies(sup))

	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	select {
	case <-sup.Ready():
		if states != nil {
			states.changed(sup.Status()) // every "ready" before the table
		}
		printReady(e, sup.Status(), natsURL, embedded, dataDir, stack.Path, hubURL)
	case err := <-done:
		return err
	}
	err = <-done
	if states != nil {
		states.changed(sup.Status()) // every "stopped"
	}
	return err
}

// replicaMark separates a service's name from its replica's number in the names of
// up's children: orders, orders#2.
const replicaMark = "#"

// serviceOf is the service a child of up runs.
func serviceOf(child string) string {
	name, _, _ := strings.Cut(child, replicaMark)
	return name
}

func printReady(e *Env, status []supervisor.Status, brokerURL string, embedded bool, dataDir, stackPath, hubURL string) {
	w := tabwriter.NewWriter(e.Stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%s is up: %d services\n\n", e.App.name(), len(status))
	fmt.Fprintln(w, "  SERVICE\tURL\tPID")
	for _, s := range status {
		fmt.Fprintf(w, "  %s\thttp://%s\t%d\n", s.Name, s.Addr, s.PID)
	}
	_ = w.Flush()
	kind := "external"
	if embedded {
		kind = "embedded"
	}
	if brokerURL != "" {
		fmt.Fprintf(e.Stdout, "\n  broker  %s (%s)\n", platform.RedactURL(brokerURL), kind)
	}
	fmt.Fprintf(e.Stdout, "  traces  %s (%s logs, %s diagram)\n", hubURL, e.App.name(), e.App.name())
	fmt.Fprintf(e.Stdout, "  data    %s\n  stack   %s\n", dataDir, stackPath)
	urls := map[string]string{}
	for _, s := range status {
		if s.Addr != "" && !strings.Contains(s.Name, replicaMark) {
			urls[s.Name] = "http://" + s.Addr
		}
	}
	if gw, ok := urls["gateway"]; ok {
		fmt.Fprintf(e.Stdout, "\n  dashboard  %s/ui/ (for administrators)\n", gw)
	}
	if e.App.Welcome != nil {
		for _, l := range e.App.Welcome(urls) {
			fmt.Fprintf(e.Stdout, "  %s\n", l)
		}
	}
	if isTerminal(e.Stdout) {
		fmt.Fprintf(e.Stdout, "\n  Shown here: warnings, errors and services starting and stopping; every line: %s logs --follow\n", e.App.name())
	}
	fmt.Fprintf(e.Stdout, "\n  Ctrl-C stops everything.\n\n")
}

// startHub serves the trace and log hub on addr until stopped: the OTLP/HTTP
// receiver and query API of observe.Hub, plus the diagrams drawn from it.
func startHub(addr string, log *slog.Logger) (hub *observe.Hub, url string, stop func(), err error) {
	hub = observe.NewHub(observe.HubConfig{Logger: log.With("component", "hub")})
	mountDiagrams(hub)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", nil, fmt.Errorf("trace hub on %s (telemetry.hub): %w", addr, err)
	}
	srv := &http.Server{Handler: hub, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	go func() { _ = srv.Serve(ln) }()
	return hub, "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// dependencies answers, for every dependency of every running child, read from the
// children's own /metrics: its circuit breaker's state, and whether the child's view
// of its instances is stale (the registry has not answered; calls go to the
// instances last known).
func dependencies(sup *supervisor.Supervisor) http.Handler {
	client := &http.Client{Timeout: 2 * time.Second}
	names := map[float64]string{0: "closed", 1: "half-open", 2: "open"}
	type dependency struct {
		Service    string `json:"service"`
		Dependency string `json:"dependency"`
		State      string `json:"state,omitempty"`
	}
	each := func(families map[string]*dto.MetricFamily, metric string, fn func(dep string, value float64)) {
		for _, m := range families[metric].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "dependency" {
					fn(l.GetValue(), m.GetGauge().GetValue())
				}
			}
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		breakers, stale := []dependency{}, []dependency{}
		for _, st := range sup.Status() {
			if st.Addr == "" {
				continue
			}
			families, err := telemetry.Scrape(r.Context(), client, "http://"+st.Addr+"/metrics")
			if err != nil {
				continue // a child restarting has nothing to show
			}
			each(families, "rpc_client_breaker_state", func(dep string, v float64) {
				breakers = append(breakers, dependency{Service: serviceOf(st.Name), Dependency: dep, State: names[v]})
			})
			each(families, "discovery_view_stale", func(dep string, v float64) {
				if v == 1 {
					stale = append(stale, dependency{Service: serviceOf(st.Name), Dependency: dep})
				}
			})
		}
		rest.Write(w, http.StatusOK, map[string]any{"breakers": breakers, "stale": stale})
	})
}

func absPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", p, err)
	}
	return abs, nil
}

// ownWays gives a child its own way to the broker and to Redis when the
// environment names one for it (<NAME>_NATS_URL, <NAME>_REDIS_URL): a proxy on
// that edge, say.
func ownWays(e *Env, name string, env []string) []string {
	for _, v := range []string{"NATS_URL", "REDIS_URL"} {
		if own := e.Getenv(config.EnvName(name) + "_" + v); own != "" {
			env = append(env, v+"="+own)
		}
	}
	return env
}
