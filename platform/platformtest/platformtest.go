// Package platformtest runs a whole declared system in one test process: every
// service of a switchyard.yaml built by the platform exactly as `serve` builds it,
// each on its own loopback port with its own SQLite file (or the database a test
// names), finding the others through discovery on an embedded NATS broker that also
// carries their events, calling each other through the real rpc stack with service
// credentials. What `up` runs, without the processes — so that a system's tests
// can drive it end to end in a second.
//
//	sys := platformtest.Start(t, platformtest.Options{Config: platformFile, Events: events.Schemas, Services: services()})
//	resp, _ := http.Post(sys.URL("bookings")+"/v1/bookings", ...)
package platformtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/switchyard/switchyard/authn"
	"github.com/switchyard/switchyard/broker/brokertest"
	"github.com/switchyard/switchyard/bus"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/observe"
	"github.com/switchyard/switchyard/platform"
	"github.com/switchyard/switchyard/simulate"
	"github.com/switchyard/switchyard/store"
)

// Options describe the system to run. Config, Events and Services are required.
type Options struct {
	// Config is the system's switchyard.yaml. Every listen address is replaced by a
	// free port, data_dir by a temporary directory, and discovery beats every
	// 200ms.
	Config []byte
	// Events holds the event schemas.
	Events fs.FS
	// Services are the builders of the declared services. A service declaring a
	// simulate block runs as its simulation; one with neither is not started.
	Services []platform.Service
	// Settings replace services' own settings (services.<name>.settings), by
	// service.
	Settings map[string]map[string]any
	// Database returns the database URL of a service [a fresh SQLite file each].
	Database func(service string) string
	// Gateway also starts the gateway, when the system declares one and Services
	// builds it.
	Gateway bool
}

// System is a running system.
type System struct {
	t       testing.TB
	Config  *config.Config
	running map[string]*platform.Running
	mu      sync.Mutex
	dbs     map[string]*store.DB
	hub     *observe.Hub
}

var listen = regexp.MustCompile(`(?m)^(\s*)listen: .*$`)

// Start runs the system until t ends.
func Start(t testing.TB, opt Options) *System {
	t.Helper()
	dir := t.TempDir()
	raw := File(t, opt.Config, dir, opt.Settings)
	env := map[string]string{"NATS_URL": brokertest.Embedded(t)}
	if opt.Database != nil {
		declared, err := config.Load("switchyard.yaml (test)", raw, nil)
		must(t, err)
		for _, name := range declared.ServiceNames() {
			env[config.EnvName(name)+"_DATABASE_URL"] = opt.Database(name)
		}
	}
	// The broker and the databases reach the services through the environment, as
	// they do under `serve`.
	cfg, err := config.Load("switchyard.yaml (test)", raw, func(key string) string { return env[key] })
	must(t, err)
	_, err = authn.EnsureIdentities(filepath.Join(cfg.DataDir, "identity"), append(cfg.ServiceNames(), config.GatewayName))
	must(t, err)

	s := &System{t: t, Config: cfg, running: map[string]*platform.Running{}, dbs: map[string]*store.DB{}}
	// Every service exports its spans to a hub of the test's own, as under up.
	s.hub = observe.NewHub(observe.HubConfig{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	hubSrv := &http.Server{Handler: s.hub, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hubSrv.Serve(ln) }()
	hubURL := "http://" + ln.Addr().String()
	getenv := func(key string) string {
		if key == platform.EnvTraceHub {
			return hubURL
		}
		return ""
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		for _, r := range s.running {
			_ = r.Wait()
		}
		for _, db := range s.dbs {
			db.Close()
		}
		_ = hubSrv.Close()
	})
	names := cfg.ServiceNames() // dependencies first
	if opt.Gateway && cfg.Gateway != nil {
		names = append(names, config.GatewayName)
	}
	for _, name := range names {
		b, ok := simulate.Builder(cfg, name, opt.Services)
		if !ok {
			continue
		}
		r, err := platform.Start(ctx, b, platform.Options{Config: cfg, Service: name, Events: opt.Events, Getenv: getenv})
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		s.running[name] = r
	}
	return s
}

// File is a system's switchyard.yaml made fit for a test: every service on a free
// port, its files under dir, discovery on NATS beating every 200ms, and settings
// replaced.
func File(t testing.TB, src []byte, dir string, settings map[string]map[string]any) []byte {
	t.Helper()
	src = listen.ReplaceAll(src, []byte("${1}listen: 127.0.0.1:0"))
	var doc yaml.MapSlice
	must(t, yaml.UnmarshalWithOptions(src, &doc, yaml.UseOrderedMap()))
	doc = set(doc, "data_dir", dir)
	doc = set(doc, "discovery", yaml.MapSlice{{Key: "kind", Value: "nats"}, {Key: "heartbeat", Value: "200ms"}})
	services := get(doc, "services")
	for name, values := range settings {
		svc := get(services, name)
		if svc == nil {
			t.Fatalf("platformtest: settings for %s, which the system does not declare", name)
		}
		services = set(services, name, set(svc, "settings", values))
	}
	doc = set(doc, "services", services)
	out, err := yaml.Marshal(doc)
	must(t, err)
	return out
}

func set(m yaml.MapSlice, key string, v any) yaml.MapSlice {
	for i := range m {
		if m[i].Key == key {
			m[i].Value = v
			return m
		}
	}
	return append(m, yaml.MapItem{Key: key, Value: v})
}

func get(m yaml.MapSlice, key string) yaml.MapSlice {
	for _, it := range m {
		if it.Key == key {
			v, _ := it.Value.(yaml.MapSlice)
			return v
		}
	}
	return nil
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// URL returns a running service's base URL (http://127.0.0.1:port).
func (s *System) URL(service string) string {
	r, ok := s.running[service]
	if !ok {
		s.t.Fatalf("platformtest: %s is not running", service)
	}
	return "http://" + r.Addr
}

// DB returns a service's database, opened by the test beside the service's own
// connections.
func (s *System) DB(service string) *store.DB {
	s.mu.Lock()
	defer s.mu.Unlock()
	if db, ok := s.dbs[service]; ok {
		return db
	}
	db, err := store.Open(context.Background(), store.Config{URL: s.Config.DatabaseURL(service), MaxOpenConns: 4})
	must(s.t, err)
	s.dbs[service] = db
	return db
}

// Deliver hands an event to a service's consumer as the bus would (a redelivery,
// say), bypassing the broker.
func (s *System) Deliver(service string, m *bus.Message) error {
	r, ok := s.running[service]
	if !ok {
		return fmt.Errorf("platformtest: %s is not running", service)
	}
	return r.Process.Deliver(context.Background(), m)
}

// Traced returns the header of a request that starts a new trace, and the trace's
// id: send a flow's first request with it, then read the flow back with Trace.
func Traced() (traceID string, h http.Header) {
	var tid [16]byte
	var sid [8]byte
	_, _ = rand.Read(tid[:])
	_, _ = rand.Read(sid[:])
	traceID = hex.EncodeToString(tid[:])
	return traceID, http.Header{"Traceparent": {"00-" + traceID + "-" + hex.EncodeToString(sid[:]) + "-01"}}
}

// Spans returns every span the system's services have exported so far.
func (s *System) Spans() []observe.Span { return s.hub.Traces.Spans(observe.TraceQuery{}) }

// Trace returns the spans of a trace the system's services have exported so far
// (they export in batches: a flow's last spans arrive within a second or two).
func (s *System) Trace(traceID string) observe.Trace {
	t, err := s.hub.Trace(traceID)
	if err != nil {
		return observe.Trace{ID: traceID}
	}
	return t
}
