// Package simulate runs a service that is declared but not written: from the
// simulate block of its declaration in switchyard.yaml it builds a real service on
// the platform — its own process, database, outbox and inbox, the real call stack
// toward its dependencies with their policies, real spans and metrics — that
// answers its endpoints after a drawn latency, fails at a declared rate, calls its
// dependencies and publishes its events as declared, and handles the events it
// subscribes to. A system can be run, traced, loaded and checked before any of its
// code exists, and its services replaced by real ones one at a time.
//
// What a simulated service guarantees:
//
//   - it serves exactly its declared endpoints (REST routes, unary gRPC methods,
//     WebSocket streams), open only to its declared callers (the services that
//     depend on it and the gateway), or to anyone when nothing calls it;
//   - each request draws its own processing time (fixed, or log-normal from p50
//     and p99), then, unless it draws an error, makes its calls in order — each
//     with its probability, count, and in parallel or in sequence — and, when it
//     publishes, writes its row and its events in one transaction before it
//     answers: the outbox publishes them; a request that publishes nothing (a
//     read, a failure, a stream) costs what a real read costs — its row joins
//     the journal's next batch (journal.go) — so a simulated hop costs no more
//     than the code it stands for (bench/RESULTS.md);
//   - event data is drawn from the event's JSON Schema (event.Registry.Example),
//     with the declared fields set over it, and must validate;
//   - a delivery is handled through the inbox: its calls are made and its events
//     written once per event however often the broker delivers it; a drawn error
//     fails it (redelivered, then dead-lettered as any consumer's);
//   - a gRPC method whose generated code the binary links answers real messages
//     built from the declared response (so real callers can read them); any other
//     answers filler of the declared size;
//   - simulate_requests_total, simulate_calls_total and simulate_events_total count
//     what it did, beside the platform's own metrics.
//
// Its choices repeat from run to run when the block sets a seed.
package simulate

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/tmpl"
	"github.com/switchyard/switchyard/outbox"
	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/problem"
	"github.com/switchyard/switchyard/rpc"
	"github.com/switchyard/switchyard/server"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/telemetry"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Service is the named service, simulated from its declaration's simulate block.
func Service(name string) platform.Service {
	return platform.Service{Name: name, Build: build}
}

// sim is one simulated service's process.
type sim struct {
	p        *platform.Process
	db       *store.DB
	outbox   *outbox.Outbox
	events   *event.Registry
	clients  map[string]*rpc.Client
	problems problem.Writer
	metrics  *metrics
	journal  *journal
	seed     uint64
	draws    atomic.Uint64
}

func build(ctx context.Context, p *platform.Process) (*platform.Component, error) {
	decl := p.Declared.Simulate
	if decl == nil {
		return nil, fmt.Errorf("%s declares no simulate block in %s", p.Name, p.Config.Source)
	}
	s := &sim{p: p, clients: map[string]*rpc.Client{}, problems: problem.Writer{Log: p.Log, RequestID: telemetry.RequestID}, seed: decl.Seed}
	if s.seed == 0 {
		s.seed = rand.Uint64()
	}
	var err error
	if s.metrics, err = newMetrics(p.Metrics.Registry); err != nil {
		return nil, err
	}
	own, _ := fs.Sub(migrations, "migrations")
	if s.db, err = p.Database(ctx, own); err != nil {
		return nil, err
	}
	s.journal = newJournal(s)
	p.Go(s.journal.run)
	if len(p.Declared.Publishes) > 0 {
		if s.events, err = p.Events(); err != nil {
			return nil, err
		}
		for i, typ := range p.Declared.Publishes {
			if _, err := s.events.Example(typ, rand.New(rand.NewPCG(1, 1))); err != nil {
				return nil, p.Config.Errorf(fmt.Sprintf("services.%s.publishes.%d", p.Name, i), "%v (the simulation draws its events' data from their schemas)", err)
			}
		}
		if s.outbox, err = p.Outbox(ctx, s.db); err != nil {
			return nil, err
		}
	}
	for _, dep := range slices.Sorted(maps.Keys(p.Declared.Dependencies)) {
		c, err := p.Client(ctx, dep)
		if err != nil {
			return nil, err
		}
		s.clients[dep] = c
	}

	// Each endpoint is open to the declared callers only (inside the mux, so that
	// spans and logs name the route), or to anyone when nothing calls the service.
	guard := func(h http.Handler) http.Handler { return h }
	if callers := p.Config.Callers(p.Name); len(callers) > 0 {
		verifier, err := p.Callers()
		if err != nil {
			return nil, err
		}
		guard = func(h http.Handler) http.Handler { return verifier.RequireService(s.problems.Write, h) }
	} else {
		p.Log.Info("no service calls this one: its endpoints are open to any client")
	}
	key := "services." + p.Name + ".simulate"
	mux := http.NewServeMux()
	for i, decl := range decl.Endpoints {
		ep, err := s.compileEndpoint(fmt.Sprintf("%s.endpoints.%d", key, i), decl)
		if err != nil {
			return nil, err
		}
		mux.Handle(ep.pattern, guard(s.endpointHandler(ep)))
	}
	if err := s.consume(ctx, key, decl.Handlers); err != nil {
		return nil, err
	}
	handler := http.Handler(mux)
	p.Log.Info("simulated", "endpoints", len(decl.Endpoints), "handlers", len(decl.Handlers), "seed", s.seed)
	return &platform.Component{Handler: handler, Checks: map[string]server.Check{"database": s.db.PingContext}}, nil
}

// rand returns the choices of one exchange: the service's seed, and the
// exchange's number in order of arrival.
func (s *sim) rand() *rand.Rand { return rand.New(rand.NewPCG(s.seed, s.draws.Add(1))) }

// consume subscribes to every declared subscription, each with its handler (or
// the default: handled at once).
func (s *sim) consume(ctx context.Context, key string, declared []*config.Handler) error {
	subs := s.p.Declared.Subscriptions
	if len(subs) == 0 {
		return nil
	}
	in, err := s.p.Inbox(ctx, s.db)
	if err != nil {
		return err
	}
	handlers := map[string]*handler{}
	for _, typ := range subs {
		handlers[typ] = &handler{event: typ}
	}
	for i, h := range declared {
		compiled, err := s.compileHandler(fmt.Sprintf("%s.handlers.%d", key, i), h)
		if err != nil {
			return err
		}
		handlers[h.Event] = compiled
	}
	write := in.Wrap(s.p.Name, s.record)
	return s.p.Consume(bus.Subscription{Types: slices.Clone(subs)}, func(ctx context.Context, m *bus.Message) error {
		return s.deliver(ctx, handlers[m.Event.Type], m, write)
	})
}

// latency is a processing time to draw.
type latency struct {
	median time.Duration
	sigma  float64 // of the log-normal; 0 for a fixed time
}

func newLatency(l config.Latency) latency {
	out := latency{median: l.P50}
	if l.P50 > 0 && l.P99 > l.P50 {
		out.sigma = math.Log(float64(l.P99)/float64(l.P50)) / 2.3263478740408408 // z of 0.99
	}
	return out
}

func (l latency) draw(rnd *rand.Rand) time.Duration {
	if l.sigma == 0 {
		return l.median
	}
	d := time.Duration(float64(l.median) * math.Exp(l.sigma*rnd.NormFloat64()))
	return min(d, time.Minute)
}

// pause waits d, or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func chance(rnd *rand.Rand, p *float64) bool {
	return p == nil || rnd.Float64() < *p
}

// emit is a compiled Emit.
type emit struct {
	typ         string
	probability *float64
	subject     string
	data        map[string]any
}

func compileEmits(list []*config.Emit, key string, sc tmpl.Scope, cfg *config.Config) ([]emit, error) {
	out := make([]emit, 0, len(list))
	for i, e := range list {
		k := fmt.Sprintf("%s.%d", key, i)
		if err := tmpl.Check(e.Subject, sc); err != nil {
			return nil, cfg.Errorf(k+".subject", "%v", err)
		}
		data := map[string]any{}
		for f, v := range e.Data {
			data[f] = v
		}
		if err := tmpl.Check(data, sc); err != nil {
			return nil, cfg.Errorf(k+".data", "%v", err)
		}
		out = append(out, emit{typ: e.Type, probability: e.Probability, subject: e.Subject, data: data})
	}
	return out, nil
}

// eventsOf draws the events an exchange publishes.
func (s *sim) eventsOf(ctx context.Context, rnd *rand.Rand, v *tmpl.Vars, list ...[]emit) ([]event.Event, error) {
	var out []event.Event
	for _, l := range list {
		for _, e := range l {
			if !chance(rnd, e.probability) {
				continue
			}
			data, err := s.events.Example(e.typ, rnd)
			if err != nil {
				return nil, err
			}
			data = tmpl.Merge(data, tmpl.Render(e.data, v))
			subject := v.ID
			if e.subject != "" {
				subject = tmpl.RenderString(e.subject, v)
			}
			ev, err := event.New(ctx, "/switchyard/"+s.p.Name, e.typ, subject, data)
			if err != nil {
				return nil, err
			}
			if err := s.events.Validate(&ev); err != nil {
				return nil, fmt.Errorf("the declared data breaks the schema of %s: %w", e.typ, err)
			}
			out = append(out, ev)
		}
	}
	return out, nil
}

// row records one exchange, and writes its events, in one transaction.
type row struct {
	id, kind, name string
	status         int
	took           time.Duration
	events         []event.Event
}

func (s *sim) write(ctx context.Context, r row) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		return s.insert(ctx, tx, r)
	})
}

func (s *sim) insert(ctx context.Context, tx *sql.Tx, r row) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO simulated (id, kind, name, status, took_ms, at) VALUES ($1, $2, $3, $4, $5, $6)`,
		r.id, r.kind, r.name, r.status, float64(r.took.Microseconds())/1000, store.Millis(time.Now())); err != nil {
		return err
	}
	if len(r.events) == 0 {
		return nil
	}
	if err := s.outbox.Add(ctx, tx, r.events...); err != nil {
		return err
	}
	for _, e := range r.events {
		s.metrics.events.WithLabelValues(e.Type, "published").Inc()
	}
	return nil
}

// metrics count what a simulated service did.
type metrics struct {
	requests *prometheus.CounterVec // endpoint, status
	calls    *prometheus.CounterVec // dependency, endpoint, outcome
	events   *prometheus.CounterVec // type, direction (published, handled, failed)
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "simulate_requests_total",
			Help: "Requests a simulated service answered, by endpoint and status."}, []string{"endpoint", "status"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "simulate_calls_total",
			Help: "Calls a simulated service made to its dependencies, by dependency, endpoint and outcome (ok or failed, after the policy's retries)."},
			[]string{"dependency", "endpoint", "outcome"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "simulate_events_total",
			Help: "Events a simulated service wrote to its outbox (published) and deliveries it handled (handled, failed), by type."},
			[]string{"type", "direction"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.calls, m.events} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// failure is a request's simulated failure, answered with its status.
type failure struct {
	status int
	detail string
}

func (f *failure) Error() string { return f.detail }

// fail answers err: a simulated failure with its declared status (a problem
// document, not logged as an error: it was asked for), anything else as the
// platform answers errors.
func (s *sim) fail(w http.ResponseWriter, r *http.Request, err error) {
	var f *failure
	if !errors.As(err, &f) {
		s.problems.Write(w, r, err)
		return
	}
	kind := problem.KindForStatus(f.status)
	problem.WriteDetails(w, problem.Details{Type: kind.TypeURI(), Title: "Simulated failure", Status: f.status,
		Detail: f.detail, Instance: r.URL.Path, RequestID: telemetry.RequestID(r.Context())})
}

func (f *failure) asProblem() *problem.Error {
	return &problem.Error{Kind: problem.KindForStatus(f.status), Detail: f.detail}
}

// Builder returns how a binary runs the named process of cfg: the simulation of a
// service whose declaration has a simulate block (whether or not the binary has
// its code: the file says what runs), else the binary's own builder among
// services. It is false when there is neither.
func Builder(cfg *config.Config, name string, services []platform.Service) (platform.Service, bool) {
	if cfg.Service(name).Simulated() {
		return Service(name), true
	}
	for _, s := range services {
		if s.Name == name {
			return s, true
		}
	}
	return platform.Service{}, false
}
