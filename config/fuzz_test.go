package config_test

import (
	"os"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/config"
)

// The loader, fed any bytes, never panics and never hangs, and every refusal names
// the file it read — the start of the file:line:key every message gives.
func FuzzLoadNamesTheFileOfEveryRefusal(f *testing.F) {
	whole, err := os.ReadFile("../switchyard.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(whole)
	for _, seed := range []string{
		"services:\n  orders:\n    listen: 127.0.0.1:8081\n",
		"services:\n  orders: {listen: ':x'}\n",
		"version: 1\nservices: []\n",
		"a: &a [*a, *a]\nb: *a\n",
		"services:\n  orders:\n    calls:\n      - {to: payments, timeout: -1s}\n",
		"\t- nope",
		"services: {x: {listen: 127.0.0.1:1, settings: {k: {{tmpl}}}}}",
		"gateway:\n  routes:\n    - {prefix: /api, service: orders, transform: {request: {rewrite: [{match: '/{a', to: '/{b}'}]}}}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		_, err := config.Load("fuzz.yaml", data, func(string) string { return "" })
		if err != nil && !strings.Contains(err.Error(), "fuzz.yaml") {
			t.Fatalf("a refusal that does not name the file: %v", err)
		}
	})
}
