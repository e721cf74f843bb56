package yamledit

import (
	"strconv"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// platform is a trimmed switchyard.yaml: comments between keys, blank lines
// between services, flow-style values on their keys' lines and a block sequence
// of route mappings.
const platform = `# switchyard.yaml: the platform.
version: 1

services:
  # Takes orders and sees each through its saga.
  orders:
    owner: checkout-team
    listen: 127.0.0.1:8083 # loopback only
    dependencies:
      users:
        protocol: rest
        policy:
          timeout: 2s
          retry: {max_attempts: 3, backoff: 50ms}
    settings:
      # From placement to taking the payment.
      saga_deadline: 20s

  users:
    owner: identity-team
    contracts: [api/openapi/users.yaml]
    subscriptions:
      - orders.order.placed.v1

# The single entry point for web and mobile clients.
gateway:
  listen: 127.0.0.1:8080
  dependencies:
    payments:
      protocol: grpc
      policy: {timeout: 1s, try_timeout: 500ms, retry: {max_attempts: 2, backoff: 20ms}}
  cors:
    allowed_origins: [a, b]
    allowed_methods: []
  routes:
    # Sign-up and sign-in: no token needed.
    - prefix: /api/v1/auth
      service: users
      rate_limit: {requests: 5, per: 1s}
    # The caller's own profile.
    - prefix: /api/v1/users/me
      service: users
    - prefix: /api/v1/orders
      service: orders
      timeout: 30s
    - prefix: /x
      service: y
`

// change is an expected result: platform with the text from replaced by to.
type change struct{ from, to string }

func (c change) apply(t *testing.T) string {
	t.Helper()
	if n := strings.Count(platform, c.from); n != 1 {
		t.Fatalf("the expected change's text occurs %d times in the source, want once: %q", n, c.from)
	}
	return strings.Replace(platform, c.from, c.to, 1)
}

func TestEdits(t *testing.T) {
	tests := []struct {
		name string
		edit func([]byte) ([]byte, error)
		want change
	}{
		{
			name: "set a scalar, keeping its line's comment",
			edit: func(src []byte) ([]byte, error) { return Set(src, "services.orders.listen", "127.0.0.1:9083") },
			want: change{
				"    listen: 127.0.0.1:8083 # loopback only\n",
				"    listen: 127.0.0.1:9083 # loopback only\n",
			},
		},
		{
			name: "set a scalar inside a flow mapping",
			edit: func(src []byte) ([]byte, error) {
				return Set(src, "gateway.dependencies.payments.policy.retry.max_attempts", "4")
			},
			want: change{
				"policy: {timeout: 1s, try_timeout: 500ms, retry: {max_attempts: 2, backoff: 20ms}}",
				"policy: {timeout: 1s, try_timeout: 500ms, retry: {max_attempts: 4, backoff: 20ms}}",
			},
		},
		{
			name: "set a whole flow mapping",
			edit: func(src []byte) ([]byte, error) {
				return Set(src, "services.orders.dependencies.users.policy.retry", "{max_attempts: 5}")
			},
			want: change{
				"          retry: {max_attempts: 3, backoff: 50ms}\n",
				"          retry: {max_attempts: 5}\n",
			},
		},
		{
			name: "set a whole flow sequence",
			edit: func(src []byte) ([]byte, error) { return Set(src, "gateway.cors.allowed_origins", "[c]") },
			want: change{"    allowed_origins: [a, b]\n", "    allowed_origins: [c]\n"},
		},
		{
			name: "set an item of a flow sequence",
			edit: func(src []byte) ([]byte, error) { return Set(src, "gateway.cors.allowed_origins.1", "c") },
			want: change{"    allowed_origins: [a, b]\n", "    allowed_origins: [a, c]\n"},
		},
		{
			name: "set an item of a block sequence",
			edit: func(src []byte) ([]byte, error) {
				return Set(src, "services.users.subscriptions.0", "orders.order.confirmed.v1")
			},
			want: change{
				"      - orders.order.placed.v1\n",
				"      - orders.order.confirmed.v1\n",
			},
		},
		{
			name: "set a key of a route",
			edit: func(src []byte) ([]byte, error) { return Set(src, "gateway.routes.2.timeout", "10s") },
			want: change{"      timeout: 30s\n", "      timeout: 10s\n"},
		},
		{
			name: "set a missing key under a block mapping",
			edit: func(src []byte) ([]byte, error) { return Set(src, "services.orders.settings.lookup_ttl", "10s") },
			want: change{
				"      saga_deadline: 20s\n\n",
				"      saga_deadline: 20s\n      lookup_ttl: 10s\n\n",
			},
		},
		{
			name: "set a missing key and its missing ancestors",
			edit: func(src []byte) ([]byte, error) {
				return Set(src, "services.users.policy.retry.budget_ratio", "0.1")
			},
			want: change{
				"      - orders.order.placed.v1\n",
				"      - orders.order.placed.v1\n    policy:\n      retry:\n        budget_ratio: 0.1\n",
			},
		},
		{
			name: "set a missing key of a route",
			edit: func(src []byte) ([]byte, error) {
				return Set(src, "gateway.routes.3.rate_limit", "{requests: 20, burst: 40}")
			},
			want: change{
				"    - prefix: /x\n      service: y\n",
				"    - prefix: /x\n      service: y\n      rate_limit: {requests: 20, burst: 40}\n",
			},
		},
		{
			name: "set a missing key of a route, before the next route's comment",
			edit: func(src []byte) ([]byte, error) { return Set(src, "gateway.routes.0.timeout", "5s") },
			want: change{
				"      rate_limit: {requests: 5, per: 1s}\n",
				"      rate_limit: {requests: 5, per: 1s}\n      timeout: 5s\n",
			},
		},
		{
			name: "set a missing key under a flow mapping",
			edit: func(src []byte) ([]byte, error) {
				return Set(src, "gateway.dependencies.payments.policy.retry.budget_ratio", "0.1")
			},
			want: change{
				"retry: {max_attempts: 2, backoff: 20ms}}",
				"retry: {max_attempts: 2, backoff: 20ms, budget_ratio: 0.1}}",
			},
		},
		{
			name: "set a missing key and its missing ancestor under a flow mapping",
			edit: func(src []byte) ([]byte, error) {
				return Set(src, "gateway.dependencies.payments.policy.hedge.delay", "10ms")
			},
			want: change{
				"retry: {max_attempts: 2, backoff: 20ms}}",
				"retry: {max_attempts: 2, backoff: 20ms}, hedge: {delay: 10ms}}",
			},
		},
		{
			name: "set a missing top-level key",
			edit: func(src []byte) ([]byte, error) { return Set(src, "telemetry.log_level", "debug") },
			want: change{
				"      service: y\n",
				"      service: y\n\ntelemetry:\n  log_level: debug\n",
			},
		},
		{
			name: "append to a block sequence",
			edit: func(src []byte) ([]byte, error) {
				return Append(src, "services.users.subscriptions", "orders.order.cancelled.v1")
			},
			want: change{
				"      - orders.order.placed.v1\n",
				"      - orders.order.placed.v1\n      - orders.order.cancelled.v1\n",
			},
		},
		{
			name: "append to a flow sequence",
			edit: func(src []byte) ([]byte, error) { return Append(src, "gateway.cors.allowed_origins", "c") },
			want: change{"    allowed_origins: [a, b]\n", "    allowed_origins: [a, b, c]\n"},
		},
		{
			name: "append to an empty flow sequence",
			edit: func(src []byte) ([]byte, error) { return Append(src, "gateway.cors.allowed_methods", "GET") },
			want: change{"    allowed_methods: []\n", "    allowed_methods: [GET]\n"},
		},
		{
			name: "append to a missing key under a block mapping",
			edit: func(src []byte) ([]byte, error) {
				return Append(src, "services.orders.publishes", "orders.order.placed.v1")
			},
			want: change{
				"      saga_deadline: 20s\n",
				"      saga_deadline: 20s\n    publishes:\n      - orders.order.placed.v1\n",
			},
		},
		{
			name: "append to a missing key under a flow mapping",
			edit: func(src []byte) ([]byte, error) { return Append(src, "gateway.routes.0.rate_limit.keys", "user") },
			want: change{
				"      rate_limit: {requests: 5, per: 1s}\n",
				"      rate_limit: {requests: 5, per: 1s, keys: [user]}\n",
			},
		},
		{
			name: "insert a block mapping",
			edit: func(src []byte) ([]byte, error) {
				return Insert(src, "services", "billing", yaml.MapSlice{
					{Key: "owner", Value: "billing-team"},
					{Key: "listen", Value: "127.0.0.1:8087"},
					{Key: "contracts", Value: []string{"api/openapi/billing.yaml"}},
					{Key: "settings", Value: map[string]any{"currency": "EUR"}},
				})
			},
			want: change{
				"      - orders.order.placed.v1\n\n# The single entry point",
				"      - orders.order.placed.v1\n" +
					"\n" +
					"  billing:\n" +
					"    owner: billing-team\n" +
					"    listen: 127.0.0.1:8087\n" +
					"    contracts:\n" +
					"      - api/openapi/billing.yaml\n" +
					"    settings:\n" +
					"      currency: EUR\n" +
					"\n# The single entry point",
			},
		},
		{
			name: "insert a scalar",
			edit: func(src []byte) ([]byte, error) { return Insert(src, "gateway", "max_body_bytes", 65536) },
			want: change{
				"      service: y\n",
				"      service: y\n  max_body_bytes: 65536\n",
			},
		},
		{
			name: "insert into a flow mapping",
			edit: func(src []byte) ([]byte, error) {
				return Insert(src, "gateway.dependencies.payments.policy", "breaker",
					map[string]any{"failure_ratio": 0.5, "min_calls": 20})
			},
			want: change{
				"retry: {max_attempts: 2, backoff: 20ms}}",
				"retry: {max_attempts: 2, backoff: 20ms}, breaker: {failure_ratio: 0.5, min_calls: 20}}",
			},
		},
		{
			name: "insert at the root",
			edit: func(src []byte) ([]byte, error) {
				return Insert(src, "", "broker", yaml.MapSlice{{Key: "kind", Value: "nats"}})
			},
			want: change{
				"      service: y\n",
				"      service: y\n\nbroker:\n  kind: nats\n",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.want.apply(t)
			got, err := tt.edit([]byte(platform))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
			if _, err := parser.ParseBytes(got, parser.ParseComments); err != nil {
				t.Errorf("the result does not parse: %v", err)
			}
		})
	}
}

func TestSmallSources(t *testing.T) {
	tests := []struct {
		name, src string
		edit      func([]byte) ([]byte, error)
		want      string
	}{
		{
			name: "empty file",
			src:  "",
			edit: func(src []byte) ([]byte, error) { return Set(src, "telemetry.log_level", "info") },
			want: "telemetry:\n  log_level: info\n",
		},
		{
			name: "comments only",
			src:  "# switchyard.yaml\n",
			edit: func(src []byte) ([]byte, error) { return Append(src, "services.users.contracts", "a.yaml") },
			want: "# switchyard.yaml\nservices:\n  users:\n    contracts:\n      - a.yaml\n",
		},
		{
			name: "no final newline",
			src:  "version: 1\ndata_dir: .switchyard",
			edit: func(src []byte) ([]byte, error) { return Set(src, "broker.kind", "nats") },
			want: "version: 1\ndata_dir: .switchyard\nbroker:\n  kind: nats",
		},
		{
			name: "empty value with a comment",
			src:  "broker:\n  embedded: # defaults\ntelemetry: {}\n",
			edit: func(src []byte) ([]byte, error) { return Set(src, "broker.embedded.sync", "always") },
			want: "broker:\n  embedded: # defaults\n    sync: always\ntelemetry: {}\n",
		},
		{
			name: "set an empty value",
			src:  "broker:\n  url: # none yet\n",
			edit: func(src []byte) ([]byte, error) { return Set(src, "broker.url", "nats://127.0.0.1:4222") },
			want: "broker:\n  url: nats://127.0.0.1:4222 # none yet\n",
		},
		{
			name: "append to null",
			src:  "users:\n  subscriptions: null\n",
			edit: func(src []byte) ([]byte, error) { return Append(src, "users.subscriptions", "a.b.c.v1") },
			want: "users:\n  subscriptions:\n    - a.b.c.v1\n",
		},
		{
			name: "a block sequence level with its key",
			src:  "publishes:\n- a.v1\n- b.v1\nlisten: :8080\n",
			edit: func(src []byte) ([]byte, error) { return Append(src, "publishes", "c.v1") },
			want: "publishes:\n- a.v1\n- b.v1\n- c.v1\nlisten: :8080\n",
		},
		{
			name: "a comment inside the last entry stays with it",
			src:  "settings:\n  a:\n    x: 1\n    # y: 2\n# next\nz: 1\n",
			edit: func(src []byte) ([]byte, error) { return Set(src, "settings.b", "2") },
			want: "settings:\n  a:\n    x: 1\n    # y: 2\n  b: 2\n# next\nz: 1\n",
		},
		{
			name: "replace a block scalar",
			src:  "description: |\n  Takes orders.\n  Sees them through.\nowner: checkout-team\n",
			edit: func(src []byte) ([]byte, error) { return Set(src, "description", "Orders.") },
			want: "description: Orders.\nowner: checkout-team\n",
		},
		{
			name: "keep an anchor",
			src:  "base: &timeout 2s\nother: *timeout\n",
			edit: func(src []byte) ([]byte, error) { return Set(src, "base", "3s") },
			want: "base: &timeout 3s\nother: *timeout\n",
		},
		{
			name: "insert a multi-line string",
			src:  "orders:\n  owner: checkout-team\n",
			edit: func(src []byte) ([]byte, error) {
				return Insert(src, "orders", "description", "Takes orders.\nSees them through.")
			},
			want: "orders:\n  owner: checkout-team\n  description: |-\n    Takes orders.\n    Sees them through.\n",
		},
		{
			name: "insert under an empty value",
			src:  "services:\nbroker: {}\n",
			edit: func(src []byte) ([]byte, error) {
				return Insert(src, "services", "users", map[string]any{"owner": "identity-team"})
			},
			want: "services:\n  users:\n    owner: identity-team\nbroker: {}\n",
		},
		{
			name: "insert into an empty flow mapping",
			src:  "services:\nbroker: {}\n",
			edit: func(src []byte) ([]byte, error) { return Insert(src, "broker", "kind", "nats") },
			want: "services:\nbroker: {kind: nats}\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.edit([]byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
			if _, err := parser.ParseBytes(got, parser.ParseComments); err != nil {
				t.Errorf("the result does not parse: %v", err)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func([]byte) ([]byte, error)
		want string // the start of the error's message
	}{
		{
			name: "set a block mapping",
			edit: func(src []byte) ([]byte, error) { return Set(src, "services.orders.dependencies", "{}") },
			want: "services.orders.dependencies: is a block mapping; set its keys one by one",
		},
		{
			name: "set a block sequence",
			edit: func(src []byte) ([]byte, error) { return Set(src, "services.users.subscriptions", "[a]") },
			want: "services.users.subscriptions: is a block sequence",
		},
		{
			name: "value that is not YAML",
			edit: func(src []byte) ([]byte, error) { return Set(src, "gateway.cors.allowed_origins", "[a, b") },
			want: `gateway.cors.allowed_origins: value "[a, b" is not YAML`,
		},
		{
			name: "value in block style",
			edit: func(src []byte) ([]byte, error) { return Set(src, "gateway.listen", "host: x") },
			want: `gateway.listen: value "host: x" is not a scalar or flow text`,
		},
		{
			name: "value on several lines",
			edit: func(src []byte) ([]byte, error) { return Set(src, "gateway.listen", "a\nb") },
			want: "gateway.listen: value \"a\\nb\" spans lines",
		},
		{
			name: "empty value",
			edit: func(src []byte) ([]byte, error) { return Set(src, "gateway.listen", " ") },
			want: "gateway.listen: empty value",
		},
		{
			name: "value that does not read back inside a flow sequence",
			edit: func(src []byte) ([]byte, error) { return Set(src, "gateway.cors.allowed_origins.0", "x, y") },
			want: "gateway.cors.allowed_origins.0: x, y would read back as x here",
		},
		{
			name: "path crossing a scalar",
			edit: func(src []byte) ([]byte, error) { return Set(src, "services.orders.owner.team", "x") },
			want: "services.orders.owner: not a mapping",
		},
		{
			name: "index out of range",
			edit: func(src []byte) ([]byte, error) { return Set(src, "gateway.routes.9.timeout", "1s") },
			want: "gateway.routes.9: index 9 out of range (4 items)",
		},
		{
			name: "key on a sequence",
			edit: func(src []byte) ([]byte, error) { return Set(src, "gateway.routes.auth", "x") },
			want: "gateway.routes: not a mapping",
		},
		{
			name: "index of a missing sequence",
			edit: func(src []byte) ([]byte, error) { return Set(src, "services.orders.publishes.0", "x") },
			want: "services.orders.publishes.0: no sequence at services.orders.publishes to index",
		},
		{
			name: "empty path segment",
			edit: func(src []byte) ([]byte, error) { return Set(src, "gateway..listen", "x") },
			want: "gateway..listen: empty path segment",
		},
		{
			name: "append to a mapping",
			edit: func(src []byte) ([]byte, error) { return Append(src, "services.orders.settings", "x") },
			want: "services.orders.settings: not a sequence",
		},
		{
			name: "append to a scalar",
			edit: func(src []byte) ([]byte, error) { return Append(src, "services.orders.owner", "x") },
			want: "services.orders.owner: not a sequence",
		},
		{
			name: "insert an existing key",
			edit: func(src []byte) ([]byte, error) { return Insert(src, "services", "orders", map[string]any{}) },
			want: "services.orders: already exists",
		},
		{
			name: "insert under a sequence",
			edit: func(src []byte) ([]byte, error) { return Insert(src, "gateway.routes", "x", 1) },
			want: "gateway.routes: not a mapping",
		},
		{
			name: "insert under a missing parent",
			edit: func(src []byte) ([]byte, error) { return Insert(src, "gateway.nope", "x", 1) },
			want: "gateway.nope: not found",
		},
		{
			name: "insert a multi-line string into a flow mapping",
			edit: func(src []byte) ([]byte, error) {
				return Insert(src, "gateway.dependencies.payments.policy", "note", "a\nb")
			},
			want: "gateway.dependencies.payments.policy.note: the value spans lines",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.edit([]byte(platform))
			if err == nil {
				t.Fatalf("no error; got\n%s", got)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error %q, want it to start with %q", err, tt.want)
			}
		})
	}
}

func TestUnparsableSource(t *testing.T) {
	_, err := Set([]byte("services: {users: [\n"), "services.users", "[]")
	if err == nil || !strings.HasPrefix(err.Error(), "services.users: ") {
		t.Errorf("error %v, want one naming services.users", err)
	}
}

// TestSetEveryScalar sets each scalar of platform in turn and checks that only
// its line changed.
func TestSetEveryScalar(t *testing.T) {
	d, err := load([]byte(platform), "")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	var walk func(n ast.Node, path string)
	walk = func(n ast.Node, path string) {
		switch n := unwrap(n).(type) {
		case *ast.MappingNode:
			for _, mv := range n.Values {
				walk(mv.Value, strings.TrimPrefix(path+"."+keyString(mv.Key), "."))
			}
		case *ast.SequenceNode:
			for i, v := range n.Values {
				walk(v, path+"."+strconv.Itoa(i))
			}
		default:
			paths = append(paths, path)
		}
	}
	walk(d.root, "")
	if len(paths) < 30 {
		t.Fatalf("found %d scalars, want all of them", len(paths))
	}
	before := strings.Split(platform, "\n")
	for _, path := range paths {
		got, err := Set([]byte(platform), path, "changed")
		if err != nil {
			t.Errorf("Set %s: %v", path, err)
			continue
		}
		after := strings.Split(string(got), "\n")
		if len(after) != len(before) {
			t.Errorf("Set %s: %d lines, want %d", path, len(after), len(before))
			continue
		}
		changed := 0
		for i := range before {
			if before[i] != after[i] {
				changed++
			}
		}
		if changed != 1 {
			t.Errorf("Set %s changed %d lines, want 1", path, changed)
		}
	}
}
