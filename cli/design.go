package cli

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/diagram"
	"github.com/switchyard/switchyard/internal/design"
	"github.com/switchyard/switchyard/internal/manifests"
	"github.com/switchyard/switchyard/internal/monitoring"
	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/resilience"
)

// monitoringInput is what the alert rules and dashboard are drawn from: the
// platform's services, and the sagas they run (as their builders describe them).
func (e *Env) monitoringInput(cfg *config.Config) (monitoring.Input, []design.Saga, error) {
	in := monitoring.Input{Services: cfg.Processes(), Sagas: map[string]time.Duration{}, Registry: cfg.Discovery.Kind == "nats"}
	var sagas []design.Saga
	for _, declared := range cfg.Processes() {
		svc, ok := e.App.builder(cfg, declared.Name)
		if !ok || svc.Sagas == nil {
			continue
		}
		infos, err := svc.Sagas(declared)
		if err != nil {
			return in, nil, err
		}
		for _, info := range infos {
			in.Sagas[declared.Name] = max(in.Sagas[declared.Name], info.Deadline)
			sagas = append(sagas, design.Saga{Service: declared.Name, Name: info.Name, Deadline: info.Deadline, Steps: info.Steps})
		}
	}
	return in, sagas, nil
}

// contracts names each service's API contract, as switchyard.yaml lists them.
func contracts(cfg *config.Config) map[string][]string {
	out := map[string][]string{}
	for _, s := range cfg.Processes() {
		if len(s.Contracts) > 0 {
			out[s.Name] = s.Contracts
		}
	}
	return out
}

func cmdDesign(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("design")
	configPath := ConfigFlag(fs)
	observed := fs.Bool("observed", false, "also draw the traffic of the running local stack over --since, with its drift")
	since := fs.Duration("since", 15*time.Minute, "with --observed: the window of traffic, e.g. `15m`")
	file := fs.String("file", "", "draw the traffic of the spans in this OTLP JSON `file` (see diagram --save)")
	out := fs.String("o", "", "write the document to this `file` instead of stdout")
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usagef("design takes no arguments, got %q", fs.Arg(0))
	}
	cfg, _, err := e.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	in, err := e.designInput(cfg)
	if err != nil {
		return err
	}
	if *observed || *file != "" {
		spans, err := recorded(ctx, cfg, *file, *since)
		if err != nil {
			return err
		}
		g := diagram.Interactions(spans)
		in.Observed = &g
		in.ObservedFrom = fmt.Sprintf("%d traces over the last %s of the local stack", g.Traces, *since)
		if *file != "" {
			in.ObservedFrom = fmt.Sprintf("%d traces from %s", g.Traces, filepath.Base(*file))
		}
	}
	var b bytes.Buffer
	if err := design.Render(&b, in); err != nil {
		return err
	}
	if *out != "" {
		return os.WriteFile(*out, b.Bytes(), 0o644)
	}
	_, err = e.Stdout.Write(b.Bytes())
	return err
}

// designInput is what the design document of cfg is drawn from, traffic aside.
func (e *Env) designInput(cfg *config.Config) (design.Input, error) {
	mon, sagas, err := e.monitoringInput(cfg)
	if err != nil {
		return design.Input{}, err
	}
	notes := e.App.Design
	schemas := cmp.Or(notes.Schemas, "events")
	if cfg.Events != "" {
		schemas = cfg.Events
		if rel, err := filepath.Rel(filepath.Dir(cfg.Source), cfg.Events); err == nil && !strings.HasPrefix(rel, "..") {
			schemas = rel
		}
	}
	report, err := e.analyse(cfg, 0)
	if err != nil {
		return design.Input{}, err
	}
	return design.Input{Config: cfg, Services: mon.Services, Analysis: &report, Declared: diagram.Declared(cfg), Contracts: contracts(cfg),
		Policy:  func(p config.Policy) resilience.Config { return platform.PolicyConfig(p).WithDefaults() },
		Schemas: e.Events(cfg), SchemaDir: filepath.ToSlash(schemas), Sagas: sagas, Rules: monitoring.Rules(mon),
		Notes: design.Notes{Identity: notes.Identity, Gateway: notes.Gateway, RealTime: notes.RealTime, Consistency: notes.Consistency}}, nil
}

// cmdDeploy renders deployment artefacts from switchyard.yaml.
func cmdDeploy(_ context.Context, e *Env, args []string) error {
	targets := map[string]string{
		"monitoring": "deploy",            // prometheus/rules.yml, grafana/switchyard.json
		"kubernetes": "deploy/kubernetes", // base/, overlays/dev, overlays/prod
		"identities": "",                  // a key per service and the trust bundle
	}
	if len(args) == 0 {
		return Usagef("deploy needs a target: monitoring, kubernetes or identities")
	}
	if isHelp(args[0]) {
		return e.commandHelp("deploy")
	}
	def, ok := targets[args[0]]
	if !ok {
		return Usagef("deploy: no target %q (monitoring, kubernetes, identities)", args[0])
	}
	fs := e.Flags("deploy " + args[0])
	configPath := ConfigFlag(fs)
	dir := fs.String("out", def, "the `directory` to write into")
	if err := e.Parse(fs, args[1:]); err != nil {
		return err
	}
	if *dir == "" {
		return Usagef("deploy identities needs --out: the directory for the keys (keep it secret)")
	}
	cfg, source, err := e.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	var files map[string][]byte
	switch args[0] {
	case "monitoring":
		files, err = e.MonitoringFiles(cfg)
	case "kubernetes":
		files, err = e.KubernetesFiles(cfg, source)
	case "identities":
		names := append(cfg.ServiceNames(), config.GatewayName)
		bundle, err := authn.EnsureIdentities(*dir, names)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "keys for %s in %s (one per service: <name>.key); trust bundle %s\n", strings.Join(names, ", "), *dir, bundle)
		if cfg.Security.TLS.Mutual() {
			// For Secrets made by hand: a CA and a certificate per service of 30
			// days; cert-manager (components/cert-manager) renews them instead.
			ca, err := authn.EnsureCA(*dir, cfg.Security.TLS.Domain(), time.Now())
			if err != nil {
				return err
			}
			if _, err := ca.Renew(*dir, cfg.Security.TLS.Domain(), names, 30*24*time.Hour, time.Now(), false); err != nil {
				return err
			}
			fmt.Fprintf(e.Stdout, "mutual TLS: CA %s (its key %s: keep it apart), a certificate per service (<name>.pem, certificate and key) valid 30 days\n",
				filepath.Join(*dir, authn.CACertFile), filepath.Join(*dir, authn.CAKeyFile))
		}
		return nil
	}
	if err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		data := files[name]
		path := filepath.Join(*dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "wrote %s\n", path)
	}
	return nil
}

// KubernetesFiles are the kustomize base and overlays, by path under
// deploy/kubernetes. The configuration travels as the file it was read from (the
// built-in one when source is "").
func (e *Env) KubernetesFiles(cfg *config.Config, source string) (map[string][]byte, error) {
	raw, err := e.configRaw(source)
	if err != nil {
		return nil, err
	}
	var services []manifests.Service
	for _, s := range cfg.Processes() {
		b, _ := e.App.builder(cfg, s.Name)
		services = append(services, manifests.Service{Name: s.Name, Calls: slices.Sorted(maps.Keys(s.Dependencies)),
			Database: s.Name != config.GatewayName, Redis: slices.Contains(b.Uses, "redis"), Public: s.Name == config.GatewayName})
	}
	in := manifests.Input{Services: services, Config: raw, Image: "ghcr.io/switchyard/switchyard"}
	if cfg.Security.TLS.Mutual() {
		in.TrustDomain = cfg.Security.TLS.Domain()
	}
	return manifests.Render(in)
}

// MonitoringFiles are the rendered rule file and dashboard, by path under deploy/.
func (e *Env) MonitoringFiles(cfg *config.Config) (map[string][]byte, error) {
	mon, _, err := e.monitoringInput(cfg)
	if err != nil {
		return nil, err
	}
	rules, err := yaml.Marshal(monitoring.Rules(mon))
	if err != nil {
		return nil, err
	}
	dash, err := monitoring.Dashboard(mon)
	if err != nil {
		return nil, err
	}
	header := []byte("# Generated by `switchyard deploy monitoring` from " + cfg.Source + ": do not edit.\n")
	return map[string][]byte{
		"prometheus/rules.yml":    append(header, rules...),
		"grafana/switchyard.json": append(dash, '\n'),
	}, nil
}
