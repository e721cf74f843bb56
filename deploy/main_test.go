// The deployment artefacts' own checks, in a module of their own so that the
// libraries they check with — kustomize, the Kubernetes API types, compose-go,
// buildkit's Dockerfile parser — never reach the module a Switchyard user imports:
// every overlay renders and decodes strictly into its API types and holds what it
// promises (probes, limits, a restricted security context, NetworkPolicies of
// exactly the declared edges), the compose file holds together, and the
// Dockerfile follows its rules and builds a static binary.
//
//	cd deploy && go test ./...
package deploy_test

import (
	"os"
	"testing"

	"github.com/switchyard/switchyard/config"
)

// builtinConfig is the platform the artefacts were rendered from: the
// repository's switchyard.yaml.
func builtinConfig(t *testing.T) *config.Config {
	t.Helper()
	raw, err := os.ReadFile("../switchyard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load("switchyard.yaml", raw, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
