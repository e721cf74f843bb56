// Package config describes a Switchyard platform — its services, what each depends on
// and under which policies, what each publishes and consumes, the gateway's routes and
// the broker — and loads that description from switchyard.yaml.
//
// Loading is strict: an unknown key, a value of the wrong type, a bad duration, a
// dangling reference (a dependency on a service that is not declared, a route to
// nowhere) or a dependency cycle is an error that names the file, the line and the key.
// All problems are reported at once, in file order.
//
// Environment variables override the file (see [Load]); nothing else in the toolkit
// reads the environment, so a component always receives its configuration as a value.
//
// Only the command line (package cli) loads a Config. Components take their own Config structs; the
// command maps this description onto them.
package config

import (
	"fmt"

	"maps"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/switchyard/switchyard/gateway/transform"
)

// Config is a whole platform as declared in switchyard.yaml.
type Config struct {
	// Version of the file format. Only 1 exists.
	Version int `yaml:"version"`

	// DataDir holds each service's SQLite file, the embedded broker's storage and the
	// local stack's stack.json. Relative to the working directory. Default ".switchyard";
	// SWITCHYARD_DATA_DIR overrides it.
	DataDir string `yaml:"data_dir"`

	// Broker is the event broker every service publishes to and consumes from.
	Broker Broker `yaml:"broker"`

	// Redis, when its URL is set, backs the shared caches and rate limits. Empty means
	// in-process equivalents. REDIS_URL overrides it.
	Redis Redis `yaml:"redis"`

	// Telemetry configures logs, traces and metrics for every service.
	Telemetry Telemetry `yaml:"telemetry"`

	// Discovery says how services find each other.
	Discovery Discovery `yaml:"discovery"`

	// Services by name. A name is lower-case letters, digits and dashes.
	Services map[string]*Service `yaml:"services"`

	// Gateway is the single entry point; absent means no gateway runs.
	Gateway *Gateway `yaml:"gateway"`

	// Security says whose access tokens the gateway and every service accept.
	Security Security `yaml:"security"`

	// Events is the directory of the platform's event schemas, <type>.json each,
	// relative to this file; empty means the binary's own.
	Events string `yaml:"events"`

	// Load is the traffic `switchyard load` sends, when the binary has no load of
	// its own for this platform.
	Load *Traffic `yaml:"load"`

	// Source names where this configuration came from (a file path, or the built-in
	// default); it prefixes every error message.
	Source string `yaml:"-"`

	file *ast.File // as parsed, to place errors found after loading
}

// Broker selects and configures the event broker.
type Broker struct {
	// Kind is "nats" (JetStream; the default) or "kafka".
	Kind string `yaml:"kind"`

	// URL of an external broker: nats://host:port[,nats://...] for NATS, host:port[,...]
	// for Kafka. Empty with kind nats means `up` embeds a NATS server. NATS_URL
	// overrides it.
	URL string `yaml:"url"`

	// Embedded configures the NATS server `up` runs when URL is empty.
	Embedded EmbeddedBroker `yaml:"embedded"`

	// Replicas is how many copies a JetStream cluster keeps of each stream and of
	// the discovery bucket: 1 (the default) on one server, 3 on a three-node cluster
	// so that losing a node loses nothing. NATS_REPLICAS overrides it.
	Replicas int `yaml:"replicas"`
}

// EmbeddedBroker configures the NATS JetStream server embedded by `up`.
type EmbeddedBroker struct {
	// Listen is the client address, host:port. Default "127.0.0.1:0" (any free port;
	// stack.json records the one chosen). Port 4222 is refused: it belongs to a NATS
	// server the user may already run.
	Listen string `yaml:"listen"`

	// Sync is "always" (fsync every write; the default) or a duration between fsyncs.
	Sync string `yaml:"sync"`
}

// Redis configures the optional shared Redis.
type Redis struct {
	// URL is redis://[user:password@]host:port[/db] or rediss://...; empty means none.
	URL string `yaml:"url"`
}

// Telemetry configures logs, traces and metrics.
type Telemetry struct {
	// LogLevel is debug, info (default), warn or error.
	LogLevel string `yaml:"log_level"`

	// OTLPEndpoint is an OTLP/HTTP collector base URL (e.g. http://127.0.0.1:4318).
	// Empty means spans are not exported. OTEL_EXPORTER_OTLP_ENDPOINT overrides it.
	OTLPEndpoint string `yaml:"otlp_endpoint"`

	// SampleRatio is the share of new traces recorded, 0 to 1. Default 1. A request
	// arriving with a sampled parent is always recorded.
	SampleRatio *float64 `yaml:"sample_ratio"`

	// DatabaseSpans records a span per SQL statement run inside a traced request, so
	// traces and diagrams show the databases. Default: on under `switchyard up`, off
	// otherwise.
	DatabaseSpans *bool `yaml:"database_spans"`

	// Hub is where `switchyard up` receives every service's spans and log lines
	// (OTLP/HTTP on /v1/traces) and answers `switchyard logs` and `diagram` and the
	// dashboard. Default 127.0.0.1:4319 (never 4318, a collector's port).
	Hub string `yaml:"hub"`
}

// Discovery configures how instances are announced and found.
type Discovery struct {
	// Kind is nats (a key-value bucket on the broker; the default), static (each
	// service at its listen address) or dns (A or SRV records, e.g. Kubernetes
	// headless Services).
	Kind string `yaml:"kind"`
	// Heartbeat between an instance's announcements under nats; an instance silent
	// for three heartbeats is forgotten, a heartbeat later (the registry asked
	// twice) [1s].
	Heartbeat Duration `yaml:"heartbeat"`
	// DNS configures the dns kind.
	DNS DNSDiscovery `yaml:"dns"`
}

// DNSDiscovery configures DNS-based discovery.
type DNSDiscovery struct {
	// Name is the DNS name of a service, "%s" standing for its name
	// [%s.switchyard.svc.cluster.local].
	Name string `yaml:"name"`
	// SRV looks up _http._tcp SRV records for the ports instead of A records.
	SRV bool `yaml:"srv"`
	// Port of every instance when SRV is off [8080].
	Port int `yaml:"port"`
}

// Service is one service of the platform.
type Service struct {
	// Name is the key under services; filled by Load.
	Name string `yaml:"-"`

	// Owner is the team accountable for the service (used in the design document).
	Owner string `yaml:"owner"`

	// Description says in a sentence what the service is for.
	Description string `yaml:"description"`

	// Listen is the HTTP address, host:port. Required; port 0 picks a free port.
	Listen string `yaml:"listen"`

	// Database is the service's own database URL: sqlite:path, or
	// postgres://user@host:port/db. Default: a SQLite file <data_dir>/<name>.db.
	// DATABASE_URL and <NAME>_DATABASE_URL override it (see Load).
	Database string `yaml:"database"`

	// Dependencies are the services this one calls synchronously, by name.
	Dependencies map[string]*Dependency `yaml:"dependencies"`

	// Publishes lists the event types this service emits.
	Publishes []string `yaml:"publishes"`

	// Subscriptions lists the event types this service consumes.
	Subscriptions []string `yaml:"subscriptions"`

	// Settings are the service's own options, decoded by the service.
	Settings Settings `yaml:"settings"`

	// Contracts name the files of the service's API contract (an OpenAPI document,
	// a .proto), for the design document: "api/openapi/users.yaml".
	Contracts []string `yaml:"contracts"`

	// Simulate, when present, runs the service as a simulation of what it declares
	// here, whether or not the binary has its code: for a system designed before it
	// is written, or a dependency stood in for. Remove it once the code is there.
	Simulate *Simulate `yaml:"simulate"`

	// Replicas is how many instances `switchyard up` runs [1]; they share the
	// service's database and consumer group.
	Replicas int `yaml:"replicas"`
}

// Dependency is a synchronous call edge from one service to another.
type Dependency struct {
	// Protocol is "rest" or "grpc".
	Protocol string `yaml:"protocol"`

	// Address, when set, is the one host:port every call of this edge goes to,
	// instead of the instances discovery knows: an endpoint outside the platform,
	// a sidecar, or the fault proxy `switchyard faults run` puts on the edge.
	Address string `yaml:"address"`

	// Policy governs every call on this edge; unset fields take the defaults.
	Policy Policy `yaml:"policy"`
}

// Policy is the resilience policy of one dependency. Zero fields take the default in
// brackets.
type Policy struct {
	// Timeout is the overall deadline of a call, retries included [2s].
	Timeout Duration `yaml:"timeout"`
	// TryTimeout bounds each attempt [1s].
	TryTimeout Duration `yaml:"try_timeout"`
	// Retry governs retries of safe calls.
	Retry Retry `yaml:"retry"`
	// Breaker is the circuit breaker in front of the dependency.
	Breaker Breaker `yaml:"breaker"`
	// Bulkhead caps the calls in flight to the dependency.
	Bulkhead Bulkhead `yaml:"bulkhead"`
	// Hedge, when its delay is set, sends a second attempt of an idempotent read that
	// has not answered within it.
	Hedge Hedge `yaml:"hedge"`
}

// Hedge configures hedged reads.
type Hedge struct {
	// Delay before a hedged attempt; zero disables hedging.
	Delay Duration `yaml:"delay"`
	// Max hedged attempts per call [1].
	Max int `yaml:"max"`
}

// Retry configures retries with exponential backoff and full jitter.
type Retry struct {
	// MaxAttempts counts the first try; 1 disables retries [3].
	MaxAttempts int `yaml:"max_attempts"`
	// Backoff is the first retry's upper bound [50ms]; it doubles per attempt.
	Backoff Duration `yaml:"backoff"`
	// MaxBackoff caps the backoff [1s].
	MaxBackoff Duration `yaml:"max_backoff"`
	// BudgetRatio caps retries at this share of calls [0.2].
	BudgetRatio float64 `yaml:"budget_ratio"`
	// BudgetPerSecond is added to the budget every second [10].
	BudgetPerSecond int `yaml:"budget_per_second"`
}

// Breaker configures a circuit breaker. It opens either on a failure ratio over a
// window (the default: 0.5 of at least 10 calls in 10s) or, when
// consecutive_failures is set, on that many failures in a row — not both.
type Breaker struct {
	// Disabled removes the breaker: every call reaches the dependency however often
	// it fails. `switchyard lint` warns about it; set it only for a dependency whose
	// failures a breaker must never turn into refusals.
	Disabled bool `yaml:"disabled"`
	// FailureRatio opens the breaker when this share of calls in Window fail [0.5].
	FailureRatio float64 `yaml:"failure_ratio"`
	// MinCalls is how many calls Window needs before the ratio counts [10].
	MinCalls int `yaml:"min_calls"`
	// ConsecutiveFailures opens the breaker after this many failures in a row.
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// Window is the period over which the ratio is measured [10s].
	Window Duration `yaml:"window"`
	// OpenFor is how long the breaker stays open before probing [5s].
	OpenFor Duration `yaml:"open_for"`
	// HalfOpenProbes is how many probes must succeed to close it [1].
	HalfOpenProbes int `yaml:"half_open_probes"`
}

// Bulkhead caps concurrency toward one dependency.
type Bulkhead struct {
	// MaxConcurrent calls in flight [64].
	MaxConcurrent int `yaml:"max_concurrent"`
	// MaxWait for a free slot before the call is rejected [0: reject at once].
	MaxWait Duration `yaml:"max_wait"`
}

// Gateway is the platform's single entry point.
type Gateway struct {
	// Listen is the gateway's address, host:port [127.0.0.1:8080].
	Listen string `yaml:"listen"`
	// Owner is the team accountable for the gateway (used in the design document).
	Owner string `yaml:"owner"`
	// Contracts name the files of the public API's contract, for the design document.
	Contracts []string `yaml:"contracts"`
	// Policy governs the gateway's calls to every route's service (only safe
	// requests, and writes carrying an Idempotency-Key, are retried); unset fields
	// take a dependency's defaults. A route's timeout cuts its calls shorter.
	Policy Policy `yaml:"policy"`
	// Dependencies the gateway calls itself (for aggregated answers) beyond the
	// services its routes lead to, which are its dependencies implicitly.
	Dependencies map[string]*Dependency `yaml:"dependencies"`
	// MaxBodyBytes is the default body limit of a route [1 MiB].
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// CORS lets browser code from other origins call the API; off without origins.
	CORS CORS `yaml:"cors"`
	// Shedding is the adaptive concurrency limit in front of every route.
	Shedding Shedding `yaml:"shedding"`
	// Routes are matched by longest prefix.
	Routes []Route `yaml:"routes"`

	// addresses are fixed addresses of the services the routes lead to
	// (GATEWAY_TO_<SERVICE>_ADDRESS), for GatewayService.
	addresses map[string]string
}

// CORS is the gateway's cross-origin policy.
type CORS struct {
	// AllowedOrigins as browsers send them, e.g. https://shop.example.com.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// MaxAge a preflight answer may be cached [10m].
	MaxAge Duration `yaml:"max_age"`
}

// Shedding bounds the gateway's adaptive concurrency limit; max_limit 0 turns it off.
type Shedding struct {
	MinLimit     uint `yaml:"min_limit"`
	MaxLimit     uint `yaml:"max_limit"`
	InitialLimit uint `yaml:"initial_limit"`
}

// Security is how end users' identities are trusted.
type Security struct {
	// Issuers whose access tokens the gateway and every service accept. Empty
	// means routes needing a user refuse, unless the application brings its own
	// verifier.
	Issuers []Issuer `yaml:"issuers"`
	// TLS chooses service tokens or mutual TLS between services (service_tls,
	// trust_domain; see ServiceTLS) [tokens].
	TLS ServiceTLS `yaml:",inline"`
}

// Issuer is an OpenID Connect provider (or any issuer of JWT access tokens)
// whose tokens are trusted: a declared service that issues them (the shop's
// users), or a provider a team already runs (Keycloak, Auth0, Entra ID).
type Issuer struct {
	// Name tells issuers apart in errors, metrics and route rules.
	Name string `yaml:"name"`
	// Issuer is the iss its tokens carry, exactly (an https URL for a provider).
	Issuer string `yaml:"issuer"`
	// Service, for an issuer that is a declared service, whose keys are fetched
	// from it directly (its /.well-known/jwks.json, through discovery).
	Service string `yaml:"service"`
	// Discovery is the provider's discovery document, e.g.
	// https://idp.example.com/realms/shop/.well-known/openid-configuration; its
	// jwks_uri gives the keys.
	Discovery string `yaml:"discovery"`
	// JWKS is the provider's key set URL, when it publishes no discovery document.
	JWKS string `yaml:"jwks"`
	// Audience its tokens must carry in aud for this platform. Required.
	Audience string `yaml:"audience"`
	// Algorithms it signs with, of EdDSA, ES256 and RS256 [EdDSA].
	Algorithms []string `yaml:"algorithms"`
	// TokenTypes are the typ headers its access tokens carry [at+jwt]; Keycloak and
	// Entra ID use JWT.
	TokenTypes []string `yaml:"token_types"`
	// RolesClaim is where its tokens carry roles, a claim or a dot path such as
	// realm_access.roles [roles].
	RolesClaim string `yaml:"roles_claim"`
}

// Route maps a public path prefix to a service, or to a fixed upstream URL.
type Route struct {
	// Prefix of the public path, e.g. /api/v1/orders. Must start with "/".
	Prefix string `yaml:"prefix"`
	// Service that serves the route (by name); or
	Service string `yaml:"service"`
	// Upstream, instead of Service, is a fixed http:// URL (a legacy system being
	// strangled route by route).
	Upstream string `yaml:"upstream"`
	// Path replaces Prefix upstream [the prefix without its leading /api].
	Path string `yaml:"path"`
	// Auth is none, optional, required (a valid user token) or admin.
	Auth string `yaml:"auth"`
	// Scopes a token must carry, every one, to use the route (auth required).
	Scopes []string `yaml:"scopes"`
	// Roles of which a token must carry at least one to use the route.
	Roles []string `yaml:"roles"`
	// Issuers, by name, whose tokens the route accepts [every declared issuer].
	Issuers []string `yaml:"issuers"`
	// Timeout of the whole request through the gateway [30s].
	Timeout Duration `yaml:"timeout"`
	// MaxBodyBytes is the largest request body [the gateway's max_body_bytes].
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// RateLimit per principal (user, else API key, else client address).
	RateLimit *RateLimit `yaml:"rate_limit"`
	// Canary sends a share of the route's principals to instances of a version.
	Canary *Canary `yaml:"canary"`
	// Streaming marks long-lived requests (WebSocket), not counted by load shedding.
	Streaming bool `yaml:"streaming"`
	// Transform rewrites the route's requests and answers: headers, query, path,
	// JSON body fields, the answer's shape.
	Transform *transform.Spec `yaml:"transform"`
	// Cache keeps the route's answers to GET and HEAD requests in the gateway (in
	// Redis when REDIS_URL is set, shared by its replicas).
	Cache *RouteCache `yaml:"cache"`
	// Objective is the share of the route's requests that must succeed, its error
	// budget being the rest; `switchyard lint` holds the route's fan-out to it
	// [0.999].
	Objective float64 `yaml:"objective"`
}

// RouteCache is a route's response cache. The service's Cache-Control says what
// is kept and for how long, unless Override; every caller with a verified token
// has answers of their own.
type RouteCache struct {
	// MaxAge is how long an answer is fresh when the service does not say [kept
	// only as the service says].
	MaxAge Duration `yaml:"max_age"`
	// Override makes max_age and stale_if_error win over the service's Cache-Control.
	Override bool `yaml:"override"`
	// StaleIfError is how long past its freshness an answer may stand in for a
	// failing service [the service's stale-if-error, else none].
	StaleIfError Duration `yaml:"stale_if_error"`
	// Vary names the request headers that select a variant (Accept-Language).
	Vary []string `yaml:"vary"`
	// MaxEntryBytes is the largest answer kept [1 MiB].
	MaxEntryBytes int `yaml:"max_entry_bytes"`
	// Invalidate drops the paths an event names, at once and again once the
	// services that consume it have had time to (settle).
	Invalidate []Invalidation `yaml:"invalidate"`
}

// Invalidation is an event that outdates cached answers.
type Invalidation struct {
	// Event is the event type, e.g. inventory.stock.changed.v1.
	Event string `yaml:"event"`
	// Paths are public paths under the route's prefix; {subject} is the event's
	// subject (its aggregate id), path-escaped.
	Paths []string `yaml:"paths"`
	// Settle is when the paths are dropped a second time, for answers a service
	// gave before it had applied the event itself [2s]; 0 after defaults means once.
	Settle *Duration `yaml:"settle"`
}

// RateLimit is requests per period per principal, with a burst.
type RateLimit struct {
	// Requests allowed per Per. Required.
	Requests int `yaml:"requests"`
	// Per is the period [1s].
	Per Duration `yaml:"per"`
	// Burst is how many may come at once [requests].
	Burst int `yaml:"burst"`
	// OnRedisError is what happens when the shared limiter (Redis) cannot answer:
	// open applies this replica's own limit, closed refuses with 503 [open].
	OnRedisError string `yaml:"on_redis_error"`
}

// Canary is a weighted, sticky split by instance version.
type Canary struct {
	// Version tag of the canary instances (switchyard serve --instance-version).
	Version string `yaml:"version"`
	// Weight in percent of principals sent to them, 0 to 100; 100 is a blue-green
	// cut-over, 0 its undoing.
	Weight float64 `yaml:"weight"`
}

// Service returns the named service or nil.
func (c *Config) Service(name string) *Service { return c.Services[name] }

// GatewayName is the gateway's name as a service: in discovery, metrics, identities.
const GatewayName = "gateway"

// GatewayService describes the gateway as a service: its address and owner, and as
// its dependencies the services its routes lead to (under the gateway's policy)
// and those it declares itself. Nil when the platform declares no gateway.
func (c *Config) GatewayService() *Service {
	g := c.Gateway
	if g == nil {
		return nil
	}
	svc := &Service{Name: GatewayName, Owner: g.Owner, Listen: g.Listen, Dependencies: map[string]*Dependency{}, Contracts: g.Contracts,
		Description: "The single entry point: routes, authenticates, limits and sheds, and answers what needs several services."}
	for _, r := range g.Routes {
		if r.Service != "" {
			svc.Dependencies[r.Service] = &Dependency{Protocol: "rest", Policy: g.Policy, Address: g.addresses[r.Service]}
		}
	}
	maps.Copy(svc.Dependencies, g.Dependencies)
	return svc
}

// Processes lists every process the platform runs: its services in start order,
// then the gateway, if there is one.
func (c *Config) Processes() []*Service {
	var out []*Service
	for _, name := range c.ServiceNames() {
		out = append(out, c.Service(name))
	}
	if gw := c.GatewayService(); gw != nil {
		out = append(out, gw)
	}
	return out
}

// Process returns the named process's declaration: a service, or the gateway.
func (c *Config) Process(name string) *Service {
	if name == GatewayName && c.Gateway != nil {
		return c.GatewayService()
	}
	return c.Service(name)
}

// Callers lists who may call service: the services declaring it as a dependency,
// and the gateway when one of its routes (or its own dependencies) leads there.
func (c *Config) Callers(service string) []string {
	var out []string
	for _, p := range c.Processes() {
		if _, ok := p.Dependencies[service]; ok {
			out = append(out, p.Name)
		}
	}
	return out
}

// ServiceNames returns the service names in start order: every service after the
// services it depends on, ties broken by name.
func (c *Config) ServiceNames() []string {
	var order []string
	done := map[string]bool{}
	var visit func(string)
	visit = func(name string) {
		if done[name] {
			return
		}
		done[name] = true
		s := c.Services[name]
		if s == nil {
			return
		}
		deps := make([]string, 0, len(s.Dependencies))
		for d := range s.Dependencies {
			deps = append(deps, d)
		}
		slices.Sort(deps)
		for _, d := range deps {
			visit(d)
		}
		order = append(order, name)
	}
	names := make([]string, 0, len(c.Services))
	for n := range c.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		visit(n)
	}
	return order
}

// DatabaseURL returns the service's database URL, defaulting to a SQLite file in the
// data directory.
func (c *Config) DatabaseURL(service string) string {
	if s := c.Services[service]; s != nil && s.Database != "" {
		return s.Database
	}
	return "sqlite:" + filepath.Join(c.DataDir, service+".db")
}

// Duration is a time.Duration written as a Go duration string ("250ms", "2s").
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Or returns d, or def when d is zero.
func (d Duration) Or(def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return time.Duration(d)
}

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes d as a duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads a duration string, as JSON carries one.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration: write it with a unit, e.g. \"5s\"", b)
	}
	*d = Duration(v)
	return nil
}

func splitHostPort(addr string) (host string, port int, err error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("want host:port: %w", err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	return h, n, nil
}
