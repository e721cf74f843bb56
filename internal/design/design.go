// Package design renders the platform's communication design document — the one
// the design seed asks an architect to write — from what the platform really is:
// switchyard.yaml (services, owners, dependencies and their policies, events,
// gateway routes), the contracts in api/ (OpenAPI documents, protobuf services,
// event schemas), the sagas as the code defines them, the alert rules derived from
// the policies, and, when given, the traffic observed in traces. Change a policy and
// the document changes; nothing in it is written by hand.
package design

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/diagram"
	"github.com/switchyard/switchyard/internal/analysis"
	"github.com/switchyard/switchyard/internal/monitoring"
	"github.com/switchyard/switchyard/resilience"
	"github.com/switchyard/switchyard/saga"
)

// Saga is one kind of saga and the service that runs it.
type Saga struct {
	Service, Name string
	Deadline      time.Duration
	Steps         []saga.StepInfo
}

// Input is everything the document is drawn from.
type Input struct {
	Config *config.Config
	// Services, the gateway included, by name.
	Services []*config.Service
	// Policy is the call policy a dependency's configuration amounts to, defaults
	// applied.
	Policy func(config.Policy) resilience.Config
	// Declared edges (dependencies, publications, subscriptions).
	Declared []diagram.Edge
	// Contracts maps a service to the files of its API contract (api/...).
	Contracts map[string][]string
	// Schemas holds the event schemas, <type>.json at its root; SchemaDir is
	// where they live in the source tree.
	Schemas   fs.FS
	SchemaDir string
	// Notes say what the application's code does that the configuration cannot.
	Notes Notes
	Sagas []Saga
	Rules monitoring.RuleFile
	// Analysis, when set, is the policy analysis of the configuration (switchyard lint).
	Analysis *analysis.Report
	// Observed, when set, is the traffic seen in traces, drawn with its drift.
	Observed *diagram.Graph
	// ObservedFrom says where and over which window it was seen.
	ObservedFrom string
}

// Notes are the application's sentences about its code; each is optional.
type Notes struct {
	// Identity: who issues end users' tokens and how the gateway verifies them.
	Identity string
	// Gateway: the routes the gateway answers itself.
	Gateway string
	// RealTime: what the streams carry, how a client resumes one.
	RealTime string
	// Consistency: the read models and what feeds them.
	Consistency string
}

type doc struct {
	w   io.Writer
	err error
}

func (d *doc) f(format string, args ...any) {
	if d.err == nil {
		_, d.err = fmt.Fprintf(d.w, format, args...)
	}
}

// Render writes the document as Markdown.
func Render(w io.Writer, in Input) error {
	d := &doc{w: w}
	cfg := in.Config
	services := slices.Clone(in.Services)
	slices.SortFunc(services, func(a, b *config.Service) int { return cmp.Compare(a.Name, b.Name) })

	d.f("# Communication design\n\n")
	d.f("Rendered by `switchyard design` from %s, the contracts it names, the event schemas and the code's saga definitions.\n", cfg.Source)
	d.f("Do not edit: change the configuration or the contracts and render it again.\n\n")

	d.f("## Services and ownership\n\n| Service | Owner | Listens on | Database | Role |\n|---|---|---|---|---|\n")
	for _, s := range services {
		db := "its own (`" + dbKind(cfg, s) + "`)"
		if s.Name == "gateway" {
			db = "none"
		}
		role := cell(s.Description)
		if s.Simulated() {
			role = strings.TrimSpace("*simulated* " + role)
		}
		d.f("| %s | %s | `%s` | %s | %s |\n", s.Name, cmp.Or(s.Owner, "—"), s.Listen, db, role)
	}
	d.f("\nInfrastructure: broker `%s`; service discovery `%s`", cfg.Broker.Kind, cfg.Discovery.Kind)
	if cfg.Discovery.Kind == "nats" {
		d.f(" (heartbeat %s)", cfg.Discovery.Heartbeat.Std())
	}
	d.f("; one database per service (SQLite under `switchyard up`, PostgreSQL in production); Redis for shared rate limits when `REDIS_URL` is set.\n\n")

	d.simulated(services)
	d.interactions(in)
	d.synchronous(in, services)
	d.asynchronous(in, services)
	d.discovery(cfg)
	d.reliability(in, services)
	if in.Analysis != nil && d.err == nil {
		d.err = in.Analysis.Markdown(d.w)
	}
	d.tracing(cfg)
	d.gateway(in)
	d.consistency(in)
	d.monitoring(in, services)
	return d.err
}

// simulated describes what the simulated services do, as their simulate blocks
// declare: a design before its code.
func (d *doc) simulated(services []*config.Service) {
	var sims []*config.Service
	for _, s := range services {
		if s.Simulated() {
			sims = append(sims, s)
		}
	}
	if len(sims) == 0 {
		return
	}
	d.f("## Simulated services\n\n")
	d.f("These services run as simulations of their declarations (`simulate:` in the configuration): real processes with their own databases, outboxes and inboxes and the real call stack, answering after the latencies below, failing at the rates below. Each is replaced by its code by removing its block once the code is built into the binary.\n\n")
	for _, s := range sims {
		d.f("### %s\n\n", s.Name)
		if len(s.Simulate.Endpoints) > 0 {
			d.f("| Endpoint | Latency p50 / p99 | Errors | Calls | Publishes |\n|---|---|---|---|---|\n")
			for _, ep := range s.Simulate.Endpoints {
				d.f("| `%s` | %s / %s | %s | %s | %s |\n", ep.Endpoint, ep.Latency.P50, ep.Latency.P99, share(ep.ErrorRate),
					calls(ep.Calls), emits(ep.Publishes, ep.Outcomes))
			}
			d.f("\n")
		}
		if len(s.Simulate.Handlers) > 0 {
			d.f("| Handles | Latency p50 / p99 | Errors | Calls | Publishes |\n|---|---|---|---|---|\n")
			for _, h := range s.Simulate.Handlers {
				d.f("| `%s` | %s / %s | %s | %s | %s |\n", h.Event, h.Latency.P50, h.Latency.P99, share(h.ErrorRate), calls(h.Calls), emits(h.Publishes, nil))
			}
			d.f("\n")
		}
	}
}

func share(r float64) string {
	if r == 0 {
		return "none"
	}
	return strconv.FormatFloat(100*r, 'g', 3, 64) + " %"
}

func calls(list []*config.Call) string {
	var parts []string
	for _, c := range list {
		p := c.To + " `" + c.Endpoint + "`"
		if c.Count > 1 {
			mode := "in sequence"
			if c.Parallel {
				mode = "in parallel"
			}
			p += fmt.Sprintf(" ×%d %s", c.Count, mode)
		}
		if c.Probability != nil {
			p += " (" + share(*c.Probability) + " of requests)"
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "—"
	}
	return strings.Join(parts, "; ")
}

func emits(list []*config.Emit, outcomes []*config.Outcome) string {
	var parts []string
	for _, e := range list {
		parts = append(parts, "`"+e.Type+"`")
	}
	total := 0.0
	for _, o := range outcomes {
		total += o.Weight
	}
	for _, o := range outcomes {
		for _, e := range o.Publishes {
			parts = append(parts, fmt.Sprintf("`%s` (%s of answers)", e.Type, share(o.Weight/total)))
		}
	}
	if len(parts) == 0 {
		return "—"
	}
	return strings.Join(parts, ", ")
}

func dbKind(cfg *config.Config, s *config.Service) string {
	if u := cfg.DatabaseURL(s.Name); strings.HasPrefix(u, "postgres") {
		return "postgres"
	}
	return "sqlite"
}

func cell(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "|", "\\|") }

func (d *doc) interactions(in Input) {
	d.f("## Service interaction diagram\n\nAs declared (`--REST-->` and `--gRPC-->` are calls; `--event-->` goes through the bus):\n\n```\n")
	width := 0
	for _, e := range in.Declared {
		width = max(width, len(e.From))
	}
	var lines []string
	subscribers := map[string][]string{}
	for _, e := range in.Declared {
		if e.Protocol == diagram.Event && e.From == diagram.Bus {
			subscribers[e.Label] = append(subscribers[e.Label], e.To)
		}
	}
	for _, e := range in.Declared {
		switch {
		case e.Protocol == diagram.HTTP:
			lines = append(lines, fmt.Sprintf("%-*s --REST--> %s", width, e.From, e.To))
		case e.Protocol == diagram.GRPC:
			lines = append(lines, fmt.Sprintf("%-*s --gRPC--> %s", width, e.From, e.To))
		case e.To == diagram.Bus:
			to := "(no subscriber)"
			if subs := subscribers[e.Label]; len(subs) > 0 {
				to = strings.Join(subs, ", ")
			}
			lines = append(lines, fmt.Sprintf("%-*s --event--> bus --> %s   %s", width, e.From, to, e.Label))
		}
	}
	d.f("%s\n```\n\n", strings.Join(lines, "\n"))
	if in.Observed == nil {
		d.f("No traffic was given (`switchyard design --observed` draws the diagram of a running stack too).\n\n")
		return
	}
	d.f("As observed in traces (%s):\n\n```\n", in.ObservedFrom)
	var b strings.Builder
	_ = in.Observed.Text(&b)
	d.f("%s```\n\n```mermaid\n", b.String())
	b.Reset()
	_ = in.Observed.Mermaid(&b)
	d.f("%s```\n\n", b.String())
	unseen, undeclared := diagram.Drift(in.Declared, in.Observed.Edges)
	d.f("Drift: %d declared edges not seen, %d seen but not declared.\n\n", len(unseen), len(undeclared))
	for _, e := range unseen {
		d.f("- declared, not seen: %s --%s--> %s %s\n", e.From, e.Protocol, e.To, e.Label)
	}
	for _, e := range undeclared {
		d.f("- seen, not declared: %s --%s--> %s %s (%d)\n", e.From, e.Protocol, e.To, e.Label, e.Calls)
	}
	if len(unseen)+len(undeclared) > 0 {
		d.f("\n")
	}
}

func (d *doc) synchronous(in Input, services []*config.Service) {
	d.f("## Synchronous communication\n\n")
	if len(in.Contracts) == 0 {
		d.f("Contracts: none declared yet (`contracts:` of a service names its OpenAPI documents or protobuf files)")
		if slices.ContainsFunc(services, (*config.Service).Simulated) {
			d.f("; the simulated services' endpoints above stand for them")
		}
		d.f(".\n")
	} else {
		d.f("Contracts:\n\n")
		for _, name := range slices.Sorted(maps.Keys(in.Contracts)) {
			d.f("- %s: %s\n", name, "`"+strings.Join(in.Contracts[name], "`, `")+"`")
		}
	}
	d.f("\nAuthentication: every call between services carries a service token — a JWT the caller signs with its own Ed25519 key (EdDSA, 60 s), audience the callee; the callee accepts only the callers that declare it as a dependency.")
	if in.Notes.Identity != "" {
		d.f(" End users' tokens (%s) ride along where the callee acts for a user.", in.Notes.Identity)
	}
	d.f(" gRPC is Connect's gRPC protocol over HTTP/2 cleartext; REST is JSON over HTTP/1.1 with RFC 9457 problem details.\n\n")
	d.f("| Caller | Callee | Protocol | Timeout | Per try | Retries | Circuit breaker | Bulkhead |\n|---|---|---|---|---|---|---|---|\n")
	for _, s := range services {
		for _, dep := range slices.Sorted(maps.Keys(s.Dependencies)) {
			p := in.Policy(s.Dependencies[dep].Policy)
			proto := "REST"
			if s.Dependencies[dep].Protocol == "grpc" {
				proto = "gRPC"
			}
			retries := "none"
			if p.MaxAttempts > 1 {
				retries = fmt.Sprintf("%d attempts, backoff %s–%s, full jitter", p.MaxAttempts, p.Backoff, p.MaxBackoff)
			}
			breaker := fmt.Sprintf("opens at %.0f%% failures of ≥%d calls in %s; open %s", 100*p.FailureRatio, p.MinCalls, p.Window, p.OpenFor)
			if p.ConsecutiveFailures > 0 {
				breaker = fmt.Sprintf("opens after %d failures in a row; open %s", p.ConsecutiveFailures, p.OpenFor)
			}
			d.f("| %s | %s | %s | %s | %s | %s | %s | %d in flight |\n", s.Name, dep, proto, p.Timeout, p.TryTimeout, retries, breaker, p.MaxConcurrent)
		}
	}
	d.f("\nOnly idempotent calls are retried: safe methods, and writes carrying an Idempotency-Key.\n\n")
}

func (d *doc) asynchronous(in Input, services []*config.Service) {
	d.f("## Asynchronous communication\n\n")
	d.f("Every event is a CloudEvents 1.0 envelope (JSON, structured mode): `id` (UUIDv7), `source`, `type`, `subject` (the entity), `time`, `datacontenttype`, `data`, and the extensions `traceparent`/`tracestate` (W3C trace context), `correlationid` and `causationid`. `data` is validated against the type's JSON Schema by the producer before it is stored and by the consumer before it is handled.\n\n")
	d.f("Naming: `<domain>.<entity>.<verb>.v<N>` (past tense; a breaking change is a new version, published alongside the old until its consumers move). Topics: a JetStream stream per domain, subject `<domain>.<entity>.<verb>`; one durable consumer per subscribing service (its consumer group) and subject.\n\n")
	d.f("| Event | Published by | Consumed by | Required data | Schema |\n|---|---|---|---|---|\n")
	publishers, consumers := map[string][]string{}, map[string][]string{}
	for _, s := range services {
		for _, t := range s.Publishes {
			publishers[t] = append(publishers[t], s.Name)
		}
		for _, t := range s.Subscriptions {
			consumers[t] = append(consumers[t], s.Name)
		}
	}
	types := slices.Sorted(maps.Keys(publishers))
	for _, t := range slices.Sorted(maps.Keys(consumers)) {
		if !slices.Contains(types, t) {
			types = append(types, t)
		}
	}
	for _, t := range types {
		d.f("| `%s` | %s | %s | %s | `%s/%s.json` |\n", t, list(publishers[t]), list(consumers[t]), required(in.Schemas, t), cmp.Or(in.SchemaDir, "events"), t)
	}
	d.f("\nDelivery: producers write events to an outbox table in the transaction that changes their state; a relay publishes them in order with the event id as the broker's de-duplication id, so a crash between commit and publish loses nothing and duplicates nothing. Consumers are at-least-once: each records handled event ids in an inbox table in the transaction of its effects, so a redelivery changes nothing.\n\n")
	d.f("Dead letters: a failing handler is retried with backoff; after its attempts (or at once, for an invalid event) the event goes to the dead-letter stream with every attempt's error. `switchyard events dlq list|show|replay|purge` (and the gateway's admin routes) inspect, replay or drop them.\n\n")
	d.f("Idempotency: commands over HTTP take an `Idempotency-Key` (the same key and body replay the first answer; another body is refused); saga steps call with the saga's id as key; consumers deduplicate through their inbox.\n\n")
	d.realTime(in, services)
}

// realTime lists the streams: the gateway's streaming routes and the WebSocket
// endpoints the simulations declare.
func (d *doc) realTime(in Input, services []*config.Service) {
	var streams []string
	if g := in.Config.Gateway; g != nil {
		for _, r := range g.Routes {
			if r.Streaming {
				streams = append(streams, fmt.Sprintf("`%s` → %s (auth %s)", r.Prefix, cmp.Or(r.Service, r.Upstream), cmp.Or(r.Auth, "required")))
			}
		}
	}
	for _, s := range services {
		if s.Simulate == nil {
			continue
		}
		for _, ep := range s.Simulate.Endpoints {
			if kind, _, path, err := config.ParseEndpoint(ep.Endpoint); err == nil && kind == config.Stream {
				streams = append(streams, fmt.Sprintf("%s `%s` (simulated: a %d-byte message every %s)", s.Name, path, cmp.Or(ep.MessageBytes, 128), ep.Interval.Std()))
			}
		}
	}
	if len(streams) == 0 && in.Notes.RealTime == "" {
		d.f("Real time: no streams are declared.\n\n")
		return
	}
	d.f("Real time: WebSocket streams, each proxied by the gateway without a deadline per message or a concurrency slot:")
	if len(streams) > 0 {
		d.f(" %s.", strings.Join(streams, "; "))
	}
	if in.Notes.RealTime != "" {
		d.f(" %s", in.Notes.RealTime)
	}
	d.f("\n\n")
}

func list(names []string) string {
	if len(names) == 0 {
		return "—"
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// required lists the required properties of an event's data, from its schema.
func required(schemas fs.FS, typ string) string {
	if schemas == nil {
		return "—"
	}
	b, err := fs.ReadFile(schemas, typ+".json")
	if err != nil {
		return "(no schema)"
	}
	var s struct {
		Required []string `json:"required"`
	}
	if json.Unmarshal(b, &s) != nil || len(s.Required) == 0 {
		return "—"
	}
	return "`" + strings.Join(s.Required, "`, `") + "`"
}

func (d *doc) discovery(cfg *config.Config) {
	d.f("## Service discovery\n\n")
	switch cfg.Discovery.Kind {
	case "nats":
		d.f("- Mechanism: each instance announces itself in a key-value bucket on the broker, refreshing every %s; an instance silent for three heartbeats is forgotten once the registry says so twice, a heartbeat apart, and a draining one withdraws first.\n", cfg.Discovery.Heartbeat.Std())
	case "dns":
		d.f("- Mechanism: DNS (A or SRV records, e.g. a Kubernetes headless Service), re-resolved periodically.\n")
	default:
		d.f("- Mechanism: static, each service at its configured address.\n")
	}
	d.f("- Load balancing: client-side, per call — power of two choices weighing in-flight calls and latency; instances failing calls are ejected for a while (passive health checking); canary weights by instance version where the gateway asks.\n")
	d.f("- Health checking: `/livez` (the process runs) and `/readyz` (its database, broker and dependencies answer); a service is only announced once ready and withdraws before draining.\n\n")
}

func (d *doc) reliability(in Input, services []*config.Service) {
	d.f("## Reliability patterns\n\n")
	d.f("Each call goes, outermost first, through: the overall timeout → retries (exponential backoff with full jitter, honouring Retry-After, within a retry budget) → the circuit breaker → the bulkhead → the per-try timeout → one attempt on an instance the balancer picks. `resilience` implements it on failsafe-go; the policies are configured per dependency, as below for one of each protocol (defaults applied):\n\n")
	shown := map[string]bool{}
	for _, s := range services {
		for _, dep := range slices.Sorted(maps.Keys(s.Dependencies)) {
			dd := s.Dependencies[dep]
			if shown[dd.Protocol] {
				continue
			}
			shown[dd.Protocol] = true
			p := in.Policy(dd.Policy)
			d.f("```yaml\n# %s → %s (%s)\ntimeout: %s\ntry_timeout: %s\nretry: {max_attempts: %d, backoff: %s, max_backoff: %s, budget_ratio: %g}\nbreaker: {failure_ratio: %g, min_calls: %d, window: %s, open_for: %s}\nbulkhead: {max_concurrent: %d}\n```\n\n",
				s.Name, dep, dd.Protocol, p.Timeout, p.TryTimeout, p.MaxAttempts, p.Backoff, p.MaxBackoff, p.BudgetRatio,
				p.FailureRatio, p.MinCalls, p.Window, p.OpenFor, p.MaxConcurrent)
		}
	}
}

func (d *doc) tracing(cfg *config.Config) {
	ratio := 1.0
	if cfg.Telemetry.SampleRatio != nil {
		ratio = *cfg.Telemetry.SampleRatio
	}
	d.f("## Distributed tracing\n\n")
	d.f("- Propagation: W3C `traceparent`/`tracestate` and baggage on every HTTP and gRPC call; in each event's CloudEvents extensions, so the consumer continues the writer's trace.\n")
	d.f("- Spans: the gateway's and every service's server span; a client span per call (with each failed attempt as an event); a producer span when an event is written, another when the relay sends it and another when a dead letter is replayed; a consumer span per delivery; a span per saga step and compensation; a span per SQL statement inside a request when database spans are on (`telemetry.database_spans`; on under `switchyard up`).\n")
	d.f("- Sampling: %g%% of new traces, children following their parent.\n", 100*ratio)
	export := "OTLP/HTTP to the collector `OTEL_EXPORTER_OTLP_ENDPOINT` names (none is configured in the file)"
	if cfg.Telemetry.OTLPEndpoint != "" {
		export = "OTLP/HTTP to `" + cfg.Telemetry.OTLPEndpoint + "` (or `OTEL_EXPORTER_OTLP_ENDPOINT`)"
	}
	d.f("- Export: %s; under `switchyard up` also to the local hub on `%s`, which `switchyard diagram`, `switchyard logs` and the dashboard read.\n\n", export, cfg.Telemetry.Hub)
}

func (d *doc) gateway(in Input) {
	g := in.Config.Gateway
	if g == nil {
		return
	}
	d.f("## API gateway\n\n")
	identity := cmp.Or(in.Notes.Identity, "checked by the application's verifier (`GatewayOptions.Verifier`)")
	users := slices.ContainsFunc(g.Routes, func(r config.Route) bool { return r.Auth != "none" })
	d.f("Listens on `%s`. ", g.Listen)
	if users {
		d.f("Every request is authenticated per route (`none`, `optional`, `required`, `admin`) — end users' tokens are %s; identity headers from clients are dropped and the verified ones injected", identity)
	} else {
		d.f("No route needs an end user yet (every route is `auth: none`); identity headers from clients are dropped all the same")
	}
	d.f("; bodies are capped (default %d bytes); ", cmp.Or(g.MaxBodyBytes, 1<<20))
	if g.Shedding.MaxLimit > 0 {
		d.f("load is shed by an adaptive concurrency limit (%d–%d, starting at %d).\n\n", g.Shedding.MinLimit, g.Shedding.MaxLimit, g.Shedding.InitialLimit)
	} else {
		d.f("load shedding is off (`shedding.max_limit` 0).\n\n")
	}
	d.f("| Route | Leads to | Auth | Timeout | Rate limit | Notes |\n|---|---|---|---|---|---|\n")
	for _, r := range g.Routes {
		to := r.Service
		if r.Upstream != "" {
			to = "`" + r.Upstream + "`"
		}
		if r.Path != "" {
			to += " `" + r.Path + "`"
		}
		limit := "—"
		if rl := r.RateLimit; rl != nil {
			per := rl.Per.Std()
			if per == 0 {
				per = time.Second
			}
			limit = fmt.Sprintf("%d per %s, burst %d, Redis down → %s", rl.Requests, per, rl.Burst, cmp.Or(rl.OnRedisError, "open"))
		}
		var notes []string
		if r.Canary != nil {
			notes = append(notes, fmt.Sprintf("canary %g%% to version %s", r.Canary.Weight, r.Canary.Version))
		}
		if r.Streaming {
			notes = append(notes, "streaming (not shed)")
		}
		if r.MaxBodyBytes > 0 {
			notes = append(notes, fmt.Sprintf("body ≤ %d bytes", r.MaxBodyBytes))
		}
		if c := r.Cache; c != nil {
			note := "cached as the service's Cache-Control says"
			if c.Override {
				note = fmt.Sprintf("cached %s (overriding the service)", c.MaxAge)
			} else if c.MaxAge > 0 {
				note += fmt.Sprintf(", else %s", c.MaxAge)
			}
			for _, inv := range c.Invalidate {
				note += fmt.Sprintf("; `%s` drops %s", inv.Event, "`"+strings.Join(inv.Paths, "`, `")+"`")
			}
			notes = append(notes, note)
		}
		if r.Transform != nil {
			notes = append(notes, "transformed (see its `transform` rules)")
		}
		d.f("| `%s` | %s | %s | %s | %s | %s |\n", r.Prefix, to, cmp.Or(r.Auth, "required"), cmp.Or(r.Timeout.Std(), 30*time.Second), limit, cmp.Or(strings.Join(notes, "; "), "—"))
	}
	d.f("\nRate limits apply per principal — the user, else the API key, else the client address — in process, or shared by every replica through Redis (GCRA). Every request has the public prefix mapped to the service's path, hop-by-hop headers removed, a request id and the trace context added; routes with `transform` rules also rewrite headers, query, path and JSON fields as declared. Cached routes keep each signed-in caller's answers apart from everyone else's.")
	if in.Notes.Gateway != "" {
		d.f(" %s", in.Notes.Gateway)
	}
	d.f("\n\n")
}

func (d *doc) consistency(in Input) {
	d.f("## Data consistency\n\n")
	for _, s := range in.Sagas {
		d.f("The %s saga (run by %s; deadline %s before the pivot, after which the saga compensates):\n\n| Step | Does | Compensation |\n|---|---|---|\n", s.Name, s.Service, s.Deadline)
		for i, st := range s.Steps {
			undo := "—"
			if st.Compensated {
				undo = cmp.Or(st.UndoAbout, "undo "+st.Name)
			}
			name := st.Name
			if st.Pivot {
				name += " (pivot)"
			}
			d.f("| %d. %s | %s | %s |\n", i+1, name, cell(st.About), cell(undo))
		}
		d.f("\n")
	}
	if len(in.Sagas) > 0 {
		d.f("Sagas are persisted: each step's outcome is committed with the saga's state; a process holds a lease on the sagas it runs and another takes over when it lapses; writes are fenced by the lease. Compensations run in reverse order and are retried until they succeed — a saga whose compensation keeps failing is marked stuck and alerts.")
	} else {
		d.f("No service runs a saga yet: each writes its own database alone, and what others must learn of it travels as events from its outbox.")
	}
	if in.Notes.Consistency != "" {
		d.f(" %s", in.Notes.Consistency)
	} else if len(in.Declared) > 0 {
		d.f(" What a service keeps of another's events is eventually consistent, fed through its inbox.")
	}
	d.f("\n\n")
}

func (d *doc) monitoring(in Input, services []*config.Service) {
	d.f("## Monitoring and observability\n\n")
	d.f("Key metrics (every service, on `/metrics`): `http_server_requests_total`, `http_server_request_duration_seconds` (RED); `rpc_client_calls_total`, `rpc_client_dependency_call_duration_seconds`, `rpc_client_retries_total`, `rpc_client_breaker_state` (calls); `outbox_backlog`, `outbox_oldest_unsent_age_seconds`, `bus_consumed_total`, `bus_consumer_lag`, `bus_dead_letters_total` (events); `saga_active`, `saga_finished_total`, `saga_duration_seconds`, `saga_refused_total` (sagas); `gateway_rejected_total`, `gateway_concurrency_limit` (the gateway).\n\n")
	d.f("Logs: JSON lines with `service`, `trace_id`, `span_id` and `request_id`, secrets redacted; under `switchyard up` collected centrally (`switchyard logs --trace <id>` tells one request's story across services).\n\n")
	d.f("Alert conditions (`deploy/prometheus/rules.yml`, generated from the policies above; error budget for %.1f%% availability):\n\n| Alert | Service | Severity | Fires when | For |\n|---|---|---|---|---|\n", 100*monitoring.Objective)
	for _, g := range in.Rules.Groups {
		for _, r := range g.Rules {
			d.f("| %s | %s | %s | %s | %s |\n", r.Alert, r.Labels["service"], r.Labels["severity"], cell(r.Annotations["summary"]), cmp.Or(r.For, "at once"))
		}
	}
	d.f("\nDashboard: `deploy/grafana/switchyard.json` (a row per service, calls, events, sagas).\n")
}
