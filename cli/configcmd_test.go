package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/cli"
	"github.com/switchyard/switchyard/config"
)

func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := cli.Run(context.Background(), cli.App{}, args, func(string) string { return "" }, &out, &errOut)
	if err != nil {
		errOut.WriteString(err.Error())
	}
	return out.String(), errOut.String(), cli.ExitCode(err)
}

const goodPlatform = `# yaml-language-server: $schema=https://example.invalid/schema.json
version: 1
services:
  orders:
    listen: 127.0.0.1:0
    simulate:
      endpoints:
        - endpoint: "GET /v1/orders/{id}"
          latency: 5ms
          response: {id: "{{path.id}}"}
`

func TestConfigCheckValidatesWithoutStartingAnything(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(goodPlatform), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runCLI(t, "config", "check", good)
	if code != 0 || !strings.Contains(out, "good.yaml: valid — 1 services") {
		t.Fatalf("a good file: exit %d\n%s%s", code, out, stderr)
	}
	for _, c := range []struct{ name, body, want string }{
		{"unknown key", strings.Replace(goodPlatform, "    listen:", "    lisen: x\n    listen:", 1), "good.yaml:5:5: services.orders.lisen"},
		{"wrong type", strings.Replace(goodPlatform, "version: 1", "version: [1]", 1), "version"},
		{"bad duration", strings.Replace(goodPlatform, "latency: 5ms", "latency: 5 parsecs", 1), "services.orders.simulate.endpoints.0.latency"},
	} {
		if err := os.WriteFile(good, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		out, stderr, code := runCLI(t, "config", "check", good)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, want 2 naming %q\n%s%s", c.name, code, c.want, out, stderr)
		}
		out, _, code = runCLI(t, "config", "check", "--json", good)
		var got struct {
			Valid  bool
			Errors []struct {
				Line int
				Key  string
			}
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil || code != 2 || got.Valid || len(got.Errors) == 0 || got.Errors[0].Key == "" {
			t.Errorf("%s --json: exit %d, %+v (%v)\n%s", c.name, code, got, err, out)
		}
	}
	if _, stderr, code := runCLI(t, "config", "check", filepath.Join(dir, "missing.yaml")); code != 2 || !strings.Contains(stderr, "missing.yaml") {
		t.Errorf("a missing file: exit %d %s", code, stderr)
	}
	if _, _, code := runCLI(t, "config", "chek"); code != 2 {
		t.Errorf("config chek: exit %d, want 2", code)
	}
}

func TestConfigSchemaPrintsTheCommittedSchema(t *testing.T) {
	out, _, code := runCLI(t, "config", "schema")
	if code != 0 || out != string(config.Schema) || !json.Valid([]byte(out)) {
		t.Fatalf("exit %d, %d bytes", code, len(out))
	}
}
