package switchyard_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/switchyard/switchyard"

// importViolations applies the dependency rules to a map from package path to the
// paths it imports (test imports included):
//
//   - the toolkit (everything outside cmd/, internal/shop/ and bench/) never imports
//     the shop; bench/ measures the shop's services against what stands beside them;
//   - one shop service never imports another: they talk through clients, events and
//     the contracts in api/. internal/shop/commerce is shared vocabulary, check and
//     loadgen are tools that reach the services as an operator or a client does
//     (their databases, their APIs), and internal/shop itself (the shop as an
//     application) and internal/shop/shoptest compose the services, for the binary
//     and for tests;
//   - nothing imports a command.
func importViolations(imports map[string][]string) []string {
	shop := module + "/internal/shop/"
	cmd := module + "/cmd/"
	service := func(pkg string) string {
		rest, ok := strings.CutPrefix(pkg, shop)
		if !ok {
			return ""
		}
		name, _, _ := strings.Cut(rest, "/")
		switch name {
		case "commerce", "shoptest", "check", "loadgen":
			return "" // shared vocabulary and tools over the shop, not services
		}
		return name
	}
	composes := func(pkg string) bool {
		return strings.HasPrefix(pkg, cmd) || strings.HasPrefix(pkg, shop+"shoptest") || pkg == strings.TrimSuffix(shop, "/") ||
			pkg == module+"/bench"
	}
	shared := func(pkg string) bool { return strings.HasPrefix(pkg, shop) }
	var out []string
	pkgs := make([]string, 0, len(imports))
	for p := range imports {
		pkgs = append(pkgs, p)
	}
	slices.Sort(pkgs)
	for _, pkg := range pkgs {
		for _, imp := range imports[pkg] {
			switch {
			case strings.HasPrefix(imp, cmd):
				out = append(out, fmt.Sprintf("%s imports the command %s", pkg, imp))
			case service(imp) != "" && !composes(pkg) && service(pkg) == "":
				out = append(out, fmt.Sprintf("toolkit package %s imports the shop: %s", pkg, imp))
			case service(imp) != "" && service(pkg) != "" && service(imp) != service(pkg):
				out = append(out, fmt.Sprintf("shop service %s imports another service: %s", service(pkg), imp))
			case shared(imp) && !shared(pkg) && !composes(pkg):
				out = append(out, fmt.Sprintf("toolkit package %s imports the shop: %s", pkg, imp))
			}
		}
	}
	return out
}

func TestDependenciesPointOneWay(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports,TestImports,XTestImports", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	dec := json.NewDecoder(bufio.NewReader(bytes.NewReader(out)))
	for dec.More() {
		var p struct {
			ImportPath                         string
			Imports, TestImports, XTestImports []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		imports[p.ImportPath] = slices.Concat(p.Imports, p.TestImports, p.XTestImports)
	}
	if len(imports) < 10 {
		t.Fatalf("go list found only %d packages", len(imports))
	}
	for _, v := range importViolations(imports) {
		t.Error(v)
	}
}

// The rule itself must catch each kind of violation.
func TestTheDependencyRuleCatchesViolations(t *testing.T) {
	t.Parallel()
	cases := map[string]map[string][]string{
		"toolkit imports shop":     {module + "/outbox": {module + "/internal/shop/orders"}},
		"service imports service":  {module + "/internal/shop/orders": {module + "/internal/shop/inventory/store"}},
		"toolkit imports command":  {module + "/gateway": {module + "/cmd/switchyard"}},
		"toolkit imports commerce": {module + "/outbox": {module + "/internal/shop/commerce"}},
	}
	for name, imports := range cases {
		if v := importViolations(imports); len(v) != 1 {
			t.Errorf("%s: %d violations reported, want 1: %v", name, len(v), v)
		}
	}
	allowed := map[string][]string{
		module + "/cmd/switchyard":              {module + "/internal/shop/users", module + "/store"},
		module + "/internal/shop/orders":        {module + "/internal/shop/orders/saga", module + "/rpc", module + "/api/inventory/v1"},
		module + "/internal/shop/orders/orders": {module + "/internal/shop/orders"},
		module + "/internal/shop/payments":      {module + "/internal/shop/commerce", module + "/internal/shop/shoptest"},
		module + "/internal/shop/shoptest":      {module + "/internal/shop/orders", module + "/internal/shop/payments"},
		module + "/internal/shop":               {module + "/internal/shop/orders", module + "/internal/shop/users", module + "/cli"},
	}
	if v := importViolations(allowed); len(v) != 0 {
		t.Errorf("allowed imports reported: %v", v)
	}
}

// The contracts — what a service imports to talk to the others — stay light: none
// pulls in a broker's or a database's server or client, an exporter, or the
// deployment tooling. Those live in their implementations (bus/natsbus,
// bus/kafkabus, discovery/natskv, store, platform) and in the binary.
var (
	contractPackages = []string{"bus", "discovery", "event", "problem", "config", "balancer", "resilience", "rpc", "authn",
		"gateway", "telemetry", "server", "cache"}
	heavy = []string{"github.com/nats-io/nats-server", "github.com/nats-io/nats.go", "github.com/twmb/franz-go", "github.com/jackc/pgx",
		"modernc.org/sqlite", "go.opentelemetry.io/otel/exporters", "k8s.io/", "sigs.k8s.io/", "github.com/compose-spec", "github.com/moby/buildkit"}
)

// weightViolations reports, for each package and the packages it depends on
// (transitively), the heavy ones.
func weightViolations(deps map[string][]string) []string {
	var out []string
	for _, pkg := range slices.Sorted(maps.Keys(deps)) {
		for _, d := range deps[pkg] {
			for _, h := range heavy {
				if strings.HasPrefix(d, h) {
					out = append(out, fmt.Sprintf("%s depends on %s", pkg, d))
				}
			}
		}
	}
	return out
}

func TestContractsStayLight(t *testing.T) {
	t.Parallel()
	deps := map[string][]string{}
	for _, c := range contractPackages {
		out, err := exec.Command("go", "list", "-deps", "./"+c).Output()
		if err != nil {
			t.Fatalf("go list -deps ./%s: %v", c, err)
		}
		deps[module+"/"+c] = strings.Fields(string(out))
	}
	for _, v := range weightViolations(deps) {
		t.Error(v)
	}
}

// The weight rule catches a contract that pulls in a server, a driver or an exporter.
func TestTheWeightRuleCatchesAHeavyDependency(t *testing.T) {
	t.Parallel()
	for _, d := range []string{"github.com/nats-io/nats-server/v2/server", "github.com/jackc/pgx/v5", "k8s.io/api/apps/v1",
		"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"} {
		if v := weightViolations(map[string][]string{module + "/bus": {"context", d}}); len(v) != 1 {
			t.Errorf("%s: %v, want one violation", d, v)
		}
	}
	if v := weightViolations(map[string][]string{module + "/bus": {"context", "github.com/prometheus/client_golang/prometheus"}}); len(v) != 0 {
		t.Errorf("a light dependency was reported: %v", v)
	}
}

// The binary — and so any binary built on cli.Main — links none of the deployment
// libraries: `switchyard deploy` renders with plain YAML, and the checks that
// need kustomize, the Kubernetes types, compose-go or buildkit live in the deploy
// module.
func TestTheBinaryLinksNoDeploymentLibraries(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "./cmd/switchyard").Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/switchyard: %v", err)
	}
	for _, v := range weightViolations(map[string][]string{module + "/cmd/switchyard": deploymentOnly(strings.Fields(string(out)))}) {
		t.Error(v)
	}
}

// deploymentOnly keeps the dependencies that are deployment tooling (the binary
// rightly links the broker, the drivers and the exporters).
func deploymentOnly(deps []string) []string {
	var out []string
	for _, d := range deps {
		for _, h := range []string{"k8s.io/", "sigs.k8s.io/", "github.com/compose-spec", "github.com/moby/buildkit"} {
			if strings.HasPrefix(d, h) {
				out = append(out, d)
			}
		}
	}
	return out
}
