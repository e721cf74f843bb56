package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard"
	"github.com/switchyard/switchyard/config"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

const minimal = `version: 1
services:
  users:
    listen: 127.0.0.1:8081
`

func TestTheBuiltInPlatformLoads(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(switchyard.DefaultConfigName, switchyard.DefaultConfig, nil)
	if err != nil {
		t.Fatalf("the built-in switchyard.yaml does not load:\n%v", err)
	}
	if cfg.Service("users") == nil || cfg.Service("catalog") == nil {
		t.Fatalf("built-in platform lacks users or catalog: %v", cfg.ServiceNames())
	}
	if got := cfg.DatabaseURL("users"); got != "sqlite:.switchyard/users.db" {
		t.Errorf("default users database = %q, want a SQLite file in the data dir", got)
	}
}

func TestTheRepositoryFileIsTheBuiltInOne(t *testing.T) {
	t.Parallel()
	onDisk, err := os.ReadFile(filepath.Join("..", "switchyard.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(onDisk) != string(switchyard.DefaultConfig) {
		t.Fatal("switchyard.yaml differs from the embedded default; rebuild")
	}
}

func TestDefaultsAreFilledIn(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("test.yaml", []byte(minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != ".switchyard" || cfg.Broker.Kind != "nats" || cfg.Broker.Embedded.Sync != "always" ||
		cfg.Broker.Embedded.Listen != "127.0.0.1:0" || cfg.Telemetry.LogLevel != "info" {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	if cfg.Service("users").Name != "users" {
		t.Errorf("service name not filled from its key")
	}
}

func TestEnvironmentOverridesTheFile(t *testing.T) {
	t.Parallel()
	src := minimal + `  catalog:
    listen: 127.0.0.1:8082
    database: sqlite:/tmp/catalog.db
`
	cfg, err := config.Load("test.yaml", []byte(src), env(
		"NATS_URL", "nats://10.0.0.1:4222",
		"REDIS_URL", "redis://127.0.0.1:6379/0",
		"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318",
		"SWITCHYARD_DATA_DIR", "/var/lib/sy",
		"DATABASE_URL", "postgres://app:secret@db:5432/shop?sslmode=disable",
		"CATALOG_DATABASE_URL", "sqlite:/data/cat.db",
	))
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string][2]string{
		"broker.url":              {cfg.Broker.URL, "nats://10.0.0.1:4222"},
		"redis.url":               {cfg.Redis.URL, "redis://127.0.0.1:6379/0"},
		"telemetry.otlp_endpoint": {cfg.Telemetry.OTLPEndpoint, "http://127.0.0.1:4318"},
		"data_dir":                {cfg.DataDir, "/var/lib/sy"},
		"users database (shared server, own database)": {cfg.DatabaseURL("users"), "postgres://app:secret@db:5432/shop_users?sslmode=disable"},
		"catalog database (its own variable wins)":     {cfg.DatabaseURL("catalog"), "sqlite:/data/cat.db"},
	}
	for what, c := range checks {
		if c[0] != c[1] {
			t.Errorf("%s = %q, want %q", what, c[0], c[1])
		}
	}
}

func TestAnEdgeCanBePointedAtAFixedAddress(t *testing.T) {
	t.Parallel()
	src := minimal + `  orders:
    listen: 127.0.0.1:8083
    dependencies:
      users: {protocol: rest, address: "10.0.0.9:80"}
`
	cfg, err := config.Load("test.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Services["orders"].Dependencies["users"].Address; got != "10.0.0.9:80" {
		t.Errorf("from the file: address = %q", got)
	}
	if cfg, err := config.Load("test.yaml", []byte(src), env("ORDERS_REPLICAS", "3")); err != nil || cfg.Services["orders"].Replicas != 3 {
		t.Errorf("ORDERS_REPLICAS=3: %v", err)
	}
	if _, err := config.Load("test.yaml", []byte(src), env("ORDERS_REPLICAS", "many")); err == nil || !strings.Contains(err.Error(), "ORDERS_REPLICAS") {
		t.Errorf("ORDERS_REPLICAS=many: %v", err)
	}
	// The environment wins: how the faults runner puts a proxy on the edge.
	cfg, err = config.Load("test.yaml", []byte(src), env("ORDERS_TO_USERS_ADDRESS", "127.0.0.1:41001"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Services["orders"].Dependencies["users"].Address; got != "127.0.0.1:41001" {
		t.Errorf("from ORDERS_TO_USERS_ADDRESS: address = %q", got)
	}
	if _, err := config.Load("test.yaml", []byte(src), env("ORDERS_TO_USERS_ADDRESS", "nowhere")); err == nil ||
		!strings.Contains(err.Error(), "services.orders.dependencies.users.address") {
		t.Errorf("a bad address from the environment: %v", err)
	}
}

func TestServicesStartAfterTheirDependencies(t *testing.T) {
	t.Parallel()
	src := `version: 1
services:
  orders:
    listen: 127.0.0.1:0
    dependencies:
      users: {protocol: rest}
      inventory: {protocol: grpc}
  users: {listen: "127.0.0.1:0"}
  inventory: {listen: "127.0.0.1:0"}
  aardvark: {listen: "127.0.0.1:0"}
`
	cfg, err := config.Load("t.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(cfg.ServiceNames(), ",")
	if got != "aardvark,inventory,users,orders" {
		t.Errorf("start order = %s", got)
	}
}

func TestPoliciesDecode(t *testing.T) {
	t.Parallel()
	src := `version: 1
services:
  users: {listen: "127.0.0.1:0"}
  orders:
    listen: 127.0.0.1:0
    dependencies:
      users:
        protocol: rest
        policy:
          timeout: 1500ms
          try_timeout: 500ms
          retry: {max_attempts: 4, backoff: 20ms, max_backoff: 400ms}
          breaker: {failure_ratio: 0.25, window: 30s, open_for: 2s}
          bulkhead: {max_concurrent: 8, max_wait: 5ms}
`
	cfg, err := config.Load("t.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Service("orders").Dependencies["users"].Policy
	if p.Timeout.Std() != 1500*time.Millisecond || p.TryTimeout.Std() != 500*time.Millisecond ||
		p.Retry.MaxAttempts != 4 || p.Breaker.FailureRatio != 0.25 || p.Bulkhead.MaxWait.Std() != 5*time.Millisecond {
		t.Errorf("policy decoded wrong: %+v", p)
	}
	if p.Breaker.OpenFor.Or(time.Minute) != 2*time.Second || p.Breaker.MinCalls != 0 {
		t.Errorf("Or/zero handling wrong: %+v", p.Breaker)
	}
}

// Each broken file must fail with a message naming the file, the line and the key.
func TestBrokenConfigurationsAreReportedWithFileLineAndKey(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		src  string
		want []string // substrings of the error, in order
	}{
		{
			name: "unknown key",
			src:  minimal + "    polcy: {}\n",
			want: []string{"bad.yaml:5:5: services.users.polcy:", `unknown key "polcy"`},
		},
		{
			name: "duration without a unit",
			src: minimal + `    dependencies: {}
  orders:
    listen: 127.0.0.1:8083
    dependencies:
      users:
        protocol: rest
        policy: {timeout: 5}
`,
			want: []string{"bad.yaml:11:27: services.orders.dependencies.users.policy.timeout:", `"5" is not a duration`},
		},
		{
			name: "a fixed address without a port",
			src: minimal + `  orders:
    listen: 127.0.0.1:8083
    dependencies:
      users:
        protocol: rest
        address: 127.0.0.1
`,
			want: []string{"bad.yaml:10:9: services.orders.dependencies.users.address:", "missing port"},
		},
		{
			name: "malformed duration",
			src: minimal + `  orders:
    listen: 127.0.0.1:8083
    dependencies:
      users:
        protocol: rest
        policy:
          timeout: 5 sec
`,
			want: []string{"bad.yaml:11:20: services.orders.dependencies.users.policy.timeout:", `"5 sec" is not a duration`},
		},
		{
			name: "dependency on an undeclared service",
			src: minimal + `  orders:
    listen: 127.0.0.1:8083
    dependencies:
      payment: {protocol: grpc}
`,
			want: []string{"bad.yaml:8:7: services.orders.dependencies.payment: no service \"payment\" is declared"},
		},
		{
			name: "route to an undeclared service",
			src: minimal + `gateway:
  routes:
    - prefix: /api/v1/orders/
      service: orders
`,
			want: []string{"bad.yaml:8:7: gateway.routes.0.service: no service \"orders\" is declared"},
		},
		{
			name: "gateway route mistakes",
			src: minimal + `gateway:
  cors: {allowed_origins: [https://shop.example/]}
  routes:
    - prefix: /api/v1/users
      service: users
      upstream: http://127.0.0.1:9000
    - prefix: /legacy
      upstream: ftp://old.example
    - prefix: /api/v1/me
      service: users
      auth: maybe
      rate_limit: {requests: 0, on_redis_error: sometimes}
      canary: {version: "", weight: 150}
      objective: 99.9
`,
			want: []string{
				"gateway.cors.allowed_origins.0: an origin is scheme://host[:port] with no path",
				"gateway.routes.0.upstream: a route goes to a service or to an upstream URL, not both",
				"gateway.routes.1.upstream: want http://host:port",
				"gateway.routes.2.auth: want none, optional, required or admin",
				"gateway.routes.2.rate_limit.requests: want a positive number",
				"gateway.routes.2.rate_limit.on_redis_error: want open or closed",
				"gateway.routes.2.canary.version: the canary instances' version tag is required",
				"gateway.routes.2.canary.weight: want 0 to 100",
				"gateway.routes.2.objective: want a share of requests above 0 and below 1 (0.999 for 99.9 %), got 99.9",
			},
		},
		{
			name: "transformation rules, decoded strictly",
			src: minimal + `gateway:
  routes:
    - prefix: /api/v1/users
      service: users
      transform:
        request:
          headers: {sets: {X-A: b}}
`,
			want: []string{"bad.yaml:11:21: gateway.routes.0.transform.request.headers.sets:", `unknown key "sets"`},
		},
		{
			name: "transformation rules, checked",
			src: minimal + `gateway:
  routes:
    - prefix: /api/v1/users
      service: users
      streaming: true
      transform:
        request:
          headers:
            set: {X-User-Id: root}
          rewrite:
            - match: /api/v2/users/{id}
              to: /v1/users/{sku}
          body: {allow: [name], deny: [role]}
        response:
          body:
            deny: [a..b]
          template: {name: "{{request.name}}"}
`,
			want: []string{
				"bad.yaml:13:19: gateway.routes.0.transform.request.headers.set.X-User-Id: X-User-Id may not be set by a rule",
				"bad.yaml:15:20: gateway.routes.0.transform.request.rewrite.0: match \"/api/v2/users/{id}\" is not under the route's prefix /api/v1/users",
				"bad.yaml:17:11: gateway.routes.0.transform.request.body: allow or deny, not both",
				"bad.yaml:18:9: gateway.routes.0.transform.response: a streaming route's answers are never whole",
				"bad.yaml:20:20: gateway.routes.0.transform.response.body.deny.0: \"a..b\" has an empty segment",
				"bad.yaml:21:11: gateway.routes.0.transform.response.template: {{request.name}} is not something this template can read",
			},
		},
		{
			name: "cache mistakes",
			src: minimal + `gateway:
  routes:
    - prefix: /api/v1/users
      service: users
      cache:
        override: true
        vary: [Authorization, "Bad Header"]
        invalidate:
          - event: inventory.stock.changed.v1
            paths:
              - /api/v1/products/{subject}
              - /api/v1/users/{id}
`,
			want: []string{
				"bad.yaml:10:9: gateway.routes.0.cache.override: overriding the service's Cache-Control needs a max_age",
				"bad.yaml:11:16: gateway.routes.0.cache.vary.0: the caller is always part of the key",
				"bad.yaml:11:31: gateway.routes.0.cache.vary.1: \"Bad Header\" is not a header name",
				"bad.yaml:13:13: gateway.routes.0.cache.invalidate.0.event: no service publishes",
				"bad.yaml:15:17: gateway.routes.0.cache.invalidate.0.paths.0: \"/api/v1/products/{subject}\" is not under the route's prefix",
				"bad.yaml:16:17: gateway.routes.0.cache.invalidate.0.paths.1: \"/api/v1/users/{id}\" is a path whose only placeholder is {subject}",
			},
		},
		{
			name: "a disabled breaker with settings",
			src: minimal + `  orders:
    listen: 127.0.0.1:8083
    dependencies:
      users: {protocol: rest, policy: {breaker: {disabled: true, min_calls: 5}}}
`,
			want: []string{"services.orders.dependencies.users.policy.breaker.disabled: a disabled breaker takes no other setting"},
		},
		{
			name: "subscription nobody publishes",
			src: minimal + `    subscriptions: [inventory.stock.changed.v1]
`,
			want: []string{"bad.yaml:5:21: services.users.subscriptions.0: no service publishes"},
		},
		{
			name: "badly named event type",
			src: minimal + `    publishes: [UserCreated]
`,
			want: []string{"services.users.publishes.0:", "not an event type"},
		},
		{
			name: "dependency cycle",
			src: `version: 1
services:
  a: {listen: "127.0.0.1:0", dependencies: {b: {protocol: rest}}}
  b: {listen: "127.0.0.1:0", dependencies: {a: {protocol: rest}}}
`,
			want: []string{"synchronous dependency cycle: a → b → a"},
		},
		{
			name: "embedded broker on 4222",
			src:  minimal + "broker:\n  embedded: {listen: 127.0.0.1:4222}\n",
			want: []string{"bad.yaml:6:14: broker.embedded.listen: port 4222 is left to"},
		},
		{
			name: "listen is required",
			src:  "version: 1\nservices:\n  users: {owner: me}\n",
			want: []string{"bad.yaml:3:3: services.users: listen is required"},
		},
		{
			name: "two services on one port",
			src:  minimal + "  catalog: {listen: \"127.0.0.1:8081\"}\n",
			want: []string{"services.users.listen: 127.0.0.1:8081 is also the address of catalog"},
		},
		{
			name: "not YAML",
			src:  "version: 1\nservices: [\n",
			want: []string{"bad.yaml:"},
		},
		{
			name: "wrong type",
			src:  "version: one\n",
			want: []string{`bad.yaml:1:10: version: want a whole number, got "one"`},
		},
		{
			name: "wrong version and no services",
			src:  "version: 2\n",
			want: []string{"bad.yaml: services: declare at least one service", "bad.yaml:1:1: version: want 1, got 2"},
		},
		{
			name: "bad database URL",
			src:  minimal + "    database: mysql://db/users\n",
			want: []string{"bad.yaml:5:5: services.users.database: want sqlite:<path> or postgres://"},
		},
		{
			name: "issuers that cannot be trusted",
			src: minimal + `security:
  issuers:
    - {name: shop, issuer: "http://localhost:8080/oidc", service: users, audience: switchyard}
    - {name: shop, issuer: "http://localhost:8080/oidc", service: ghosts, discovery: "https://idp.example/.well-known/openid-configuration"}
    - {name: Kc, issuer: "https://kc.example/realms/a", jwks: "ftp://kc.example/keys", audience: a, algorithms: [HS256]}
`,
			want: []string{
				"security.issuers.1.name: \"shop\" is also the name of issuer 0",
				"security.issuers.1.issuer: \"http://localhost:8080/oidc\" is also the iss of issuer 0",
				"security.issuers.1.audience: the aud its tokens must carry for this platform is required",
				"security.issuers.1: exactly one of service, discovery and jwks",
				"security.issuers.1.service: no service \"ghosts\" is declared",
				"security.issuers.2.name: want lower-case letters",
				"security.issuers.2.jwks: want a http:// or https:// URL",
				"bad.yaml:9:114: security.issuers.2.algorithms.0: want one of EdDSA, ES256, RS256, got \"HS256\"",
			},
		},
		{
			name: "route rules on tokens",
			src: minimal + `security:
  issuers: [{name: shop, issuer: "http://localhost:8080/oidc", service: users, audience: switchyard}]
gateway:
  listen: 127.0.0.1:8080
  routes:
    - {prefix: /a, service: users, auth: optional, scopes: [orders]}
    - {prefix: /b, service: users, auth: required, scopes: ["orders write"], issuers: [keycloak]}
`,
			want: []string{
				"gateway.routes.0.auth: scopes, roles and issuers need auth: required (or admin), got \"optional\"",
				"gateway.routes.1.scopes.0: a scope is a non-empty word",
				"gateway.routes.1.issuers.0: no issuer \"keycloak\" is declared under security.issuers",
			},
		},
		{
			name: "out of range policy values",
			src: minimal + `  orders:
    listen: 127.0.0.1:8083
    dependencies:
      users:
        protocol: soap
        policy:
          retry: {max_attempts: 50}
          breaker: {failure_ratio: 1.5}
`,
			want: []string{"protocol: want rest or grpc", "retry.max_attempts: want 1 to 10, got 50", "breaker.failure_ratio: want 0 to 1"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load("bad.yaml", []byte(tc.src), nil)
			if err == nil {
				t.Fatal("loaded without error")
			}
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, want config.Errors", err)
			}
			msg := err.Error()
			at := 0
			for _, w := range tc.want {
				i := strings.Index(msg[at:], w)
				if i < 0 {
					t.Fatalf("error does not contain %q (in order):\n%s", w, msg)
				}
				at += i + len(w)
			}
		})
	}
}

func TestBadEnvironmentOverridesNameTheVariable(t *testing.T) {
	t.Parallel()
	_, err := config.Load("t.yaml", []byte(minimal), env(
		"NATS_URL", "http://nats:4222",
		"DATABASE_URL", "sqlite:/tmp/x.db",
		"USERS_DATABASE_URL", "mysql://u:hunter2@db/users",
	))
	if err == nil {
		t.Fatal("bad overrides accepted")
	}
	msg := err.Error()
	for _, want := range []string{"environment: NATS_URL:", "environment: DATABASE_URL:", "environment: USERS_DATABASE_URL:"} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("a password leaked into the message:\n%s", msg)
	}
}

func TestLoadFileRefusesHugeFiles(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "huge.yaml")
	if err := os.WriteFile(path, []byte(minimal+"#"+strings.Repeat("x", config.MaxFileSize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.LoadFile(path, nil)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("got %v", err)
	}
}

func TestServiceSettingsDecodeStrictlyWithPositions(t *testing.T) {
	t.Parallel()
	type sim struct {
		DeclineRate float64         `yaml:"decline_rate"`
		Latency     config.Duration `yaml:"latency"`
	}
	load := func(settings string) *config.Service {
		t.Helper()
		cfg, err := config.Load("s.yaml", []byte(minimal+"    settings:\n"+settings), nil)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Service("users")
	}
	var got sim
	if err := load("      decline_rate: 0.25\n      latency: 30ms\n").Settings.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.DeclineRate != 0.25 || got.Latency.Std() != 30*time.Millisecond {
		t.Errorf("decoded %+v", got)
	}

	defaults := sim{DeclineRate: 0.1}
	cfg, _ := config.Load("s.yaml", []byte(minimal), nil)
	if err := cfg.Service("users").Settings.Decode(&defaults); err != nil || defaults.DeclineRate != 0.1 {
		t.Errorf("no settings: %v, %+v; want the defaults kept", err, defaults)
	}

	for settings, want := range map[string]string{
		"      decline_rat: 0.25\n":  `s.yaml:6:7: services.users.settings.decline_rat: unknown key "decline_rat"`,
		"      decline_rate: lots\n": `s.yaml:6:21: services.users.settings.decline_rate: want a number, got "lots"`,
		"      latency: soon\n":      `s.yaml:6:16: services.users.settings.latency: "soon" is not a duration: write it with a unit, e.g. "5s" or "250ms"`,
	} {
		err := load(settings).Settings.Decode(&sim{})
		if err == nil || err.Error() != want {
			t.Errorf("settings %q: error %v, want %s", settings, err, want)
		}
	}
	err := load("      decline_rate: 2\n").Settings.Invalid("decline_rate", "want 0 to 1")
	if err.Error() != "s.yaml:6:7: services.users.settings.decline_rate: want 0 to 1" {
		t.Errorf("Invalid = %v", err)
	}
}
