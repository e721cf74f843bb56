package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/switchyard/switchyard"
	"github.com/switchyard/switchyard/api/events"
	"github.com/switchyard/switchyard/api/gen/switchyard/inventory/v1/inventoryv1connect"
	"github.com/switchyard/switchyard/api/gen/switchyard/payments/v1/paymentsv1connect"
	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/design"
	"github.com/switchyard/switchyard/diagram"
	"github.com/switchyard/switchyard/internal/shop/orders"
	"github.com/switchyard/switchyard/manifests"
	"github.com/switchyard/switchyard/monitoring"
	"github.com/switchyard/switchyard/resilience"
)

// platformServices lists the services of cfg and the gateway (as a service whose
// dependencies are the services its routes lead to).
func platformServices(cfg *config.Config) []*config.Service {
	var out []*config.Service
	for _, name := range cfg.ServiceNames() {
		out = append(out, cfg.Service(name))
	}
	if gw := gatewayService(cfg); gw != nil {
		out = append(out, gw)
	}
	return out
}

// monitoringInput is what the alert rules and dashboard are drawn from: the
// platform's services, and the sagas the shop's orders service runs.
func monitoringInput(cfg *config.Config) (monitoring.Input, []design.Saga, error) {
	in := monitoring.Input{Services: platformServices(cfg), Sagas: map[string]time.Duration{}, Registry: cfg.Discovery.Kind == "nats"}
	var sagas []design.Saga
	if svc := cfg.Service("orders"); svc != nil {
		settings, err := orders.DecodeSettings(svc.Settings)
		if err != nil {
			return in, nil, err
		}
		name, deadline, steps := orders.Saga(settings)
		in.Sagas["orders"] = deadline
		sagas = append(sagas, design.Saga{Service: "orders", Name: name, Deadline: deadline, Steps: steps})
	}
	return in, sagas, nil
}

// contracts names each shop service's API contract in api/.
var contracts = map[string][]string{
	"users":         {"api/openapi/users.yaml"},
	"catalog":       {"api/openapi/catalog.yaml"},
	"gateway":       {"api/openapi/gateway.yaml (the public API)"},
	"orders":        {"api/openapi/gateway.yaml (/api/v1/orders, /api/v2/orders)"},
	"inventory":     {"api/proto/switchyard/inventory/v1/inventory.proto (gRPC " + inventoryv1connect.InventoryServiceName + ")"},
	"payments":      {"api/proto/switchyard/payments/v1/payments.proto (gRPC " + paymentsv1connect.PaymentServiceName + ")"},
	"notifications": {"api/openapi/gateway.yaml (/api/v1/notifications: WebSocket and history)"},
}

func cmdDesign(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "design")
	configPath := configFlag(fs)
	observed := fs.Bool("observed", false, "also draw the traffic of the running local stack over --since, with its drift")
	since := fs.Duration("since", 15*time.Minute, "with --observed: the `window` of traffic")
	file := fs.String("file", "", "draw the traffic of the spans in this OTLP JSON `file` (see diagram --save)")
	out := fs.String("o", "", "write the document to this `file` instead of stdout")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErrorf("design takes no arguments, got %q", fs.Arg(0))
	}
	cfg, _, err := loadConfig(e, *configPath)
	if err != nil {
		return err
	}
	mon, sagas, err := monitoringInput(cfg)
	if err != nil {
		return err
	}
	in := design.Input{Config: cfg, Services: mon.Services, Declared: declaredEdges(cfg), Contracts: contracts,
		Policy:  func(p config.Policy) resilience.Config { return policyConfig(p).WithDefaults() },
		Schemas: events.Schemas, Sagas: sagas, Rules: monitoring.Rules(mon)}
	if *observed || *file != "" {
		src := spanSource{file: *file, since: *since, client: httpClient(30 * time.Second)}
		if *file == "" {
			if src.hub, err = localHub(cfg); err != nil {
				return err
			}
		}
		spans, err := src.spans(ctx, "")
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
		return os.WriteFile(*out, b.Bytes(), 0o644) //nolint:gosec // a document meant to be read
	}
	_, err = e.stdout.Write(b.Bytes())
	return err
}

// cmdDeploy renders deployment artefacts from switchyard.yaml.
func cmdDeploy(_ context.Context, e *env, args []string) error {
	targets := map[string]string{
		"monitoring": "deploy",            // prometheus/rules.yml, grafana/switchyard.json
		"kubernetes": "deploy/kubernetes", // base/, overlays/dev, overlays/prod
		"identities": "",                  // a key per service and the trust bundle
	}
	if len(args) == 0 {
		return usageErrorf("deploy needs a target: monitoring, kubernetes or identities")
	}
	def, ok := targets[args[0]]
	if !ok {
		return usageErrorf("deploy: no target %q (monitoring, kubernetes, identities)", args[0])
	}
	fs := newFlags(e, "deploy "+args[0])
	configPath := configFlag(fs)
	dir := fs.String("out", def, "the `directory` to write into")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if *dir == "" {
		return usageErrorf("deploy identities needs --out: the directory for the keys (keep it secret)")
	}
	cfg, source, err := loadConfig(e, *configPath)
	if err != nil {
		return err
	}
	var files map[string][]byte
	switch args[0] {
	case "monitoring":
		files, err = monitoringFiles(cfg)
	case "kubernetes":
		files, err = kubernetesFiles(cfg, source)
	case "identities":
		names := append(cfg.ServiceNames(), "gateway")
		bundle, err := authn.EnsureIdentities(*dir, names)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "keys for %s in %s (one per service: <name>.key); trust bundle %s\n", strings.Join(names, ", "), *dir, bundle)
		return nil
	}
	if err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		data := files[name]
		path := filepath.Join(*dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil { //nolint:gosec // a directory of the repository
			return err
		}
		if err := os.WriteFile(path, data, 0o644); err != nil { //nolint:gosec // committed, readable files
			return err
		}
		fmt.Fprintf(e.stdout, "wrote %s\n", path)
	}
	return nil
}

// kubernetesFiles are the kustomize base and overlays, by path under
// deploy/kubernetes. The configuration travels as the file it was read from (the
// built-in one when there is none).
func kubernetesFiles(cfg *config.Config, source string) (map[string][]byte, error) {
	raw := switchyard.DefaultConfig
	if source != "" {
		b, err := os.ReadFile(source)
		if err != nil {
			return nil, err
		}
		raw = b
	}
	usesRedis := map[string]bool{"gateway": true, "catalog": true} // rate limits; the catalog's cache
	var services []manifests.Service
	for _, s := range platformServices(cfg) {
		services = append(services, manifests.Service{Name: s.Name, Calls: slices.Sorted(maps.Keys(s.Dependencies)),
			Database: s.Name != "gateway", Redis: usesRedis[s.Name], Public: s.Name == "gateway"})
	}
	return manifests.Render(manifests.Input{Services: services, Config: raw, Image: "ghcr.io/switchyard/switchyard"})
}

// monitoringFiles are the rendered rule file and dashboard, by path under deploy/.
func monitoringFiles(cfg *config.Config) (map[string][]byte, error) {
	mon, _, err := monitoringInput(cfg)
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
