package natskv_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/broker"
	"github.com/switchyard/switchyard/broker/brokertest"
	"github.com/switchyard/switchyard/discovery"
	"github.com/switchyard/switchyard/discovery/natskv"
)

const heartbeat = 200 * time.Millisecond

// restartable is a private broker that can be stopped and started again on the
// same address and store.
type restartable struct {
	t          *testing.T
	addr, dir  string
	token, url string
	b          *broker.Broker
}

func newRestartable(t *testing.T) *restartable {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := &restartable{t: t, addr: addr, dir: t.TempDir(), token: "outage-test"}
	r.start()
	r.url = r.b.URL()
	t.Cleanup(func() {
		if r.b != nil {
			r.b.Shutdown()
		}
	})
	return r
}

func (r *restartable) start() {
	r.t.Helper()
	b, err := broker.Start(broker.Config{Listen: r.addr, StoreDir: r.dir, Token: r.token})
	if err != nil {
		r.t.Fatal(err)
	}
	r.b = b
}

func (r *restartable) stop() { r.b.Shutdown(); r.b = nil }

// connect opens a connection that reconnects quickly and for ever, as a service's.
func (r *restartable) connect(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(r.url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	return nc, js
}

// syncBuffer is a log destination safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(substr string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), substr)
}

// process is one service process's discovery: its own connection, registry and
// metrics.
type process struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	kv      *natskv.KV
	metrics *prometheus.Registry
	logs    *syncBuffer
}

func newProcess(t *testing.T, r *restartable, bucket string) *process {
	t.Helper()
	nc, js := r.connect(t)
	p := &process{nc: nc, js: js, metrics: prometheus.NewRegistry(), logs: &syncBuffer{}}
	m, err := discovery.NewMetrics(p.metrics)
	if err != nil {
		t.Fatal(err)
	}
	p.kv, err = natskv.New(context.Background(), js, natskv.Config{Bucket: bucket, Heartbeat: heartbeat,
		Logger: slog.New(slog.NewTextHandler(p.logs, nil)), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// register announces inst until the test ends or the returned function is called.
func (p *process) register(t *testing.T, inst discovery.Instance) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.kv.Register(ctx, inst) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

// recorder keeps every set a watch sends.
type recorder struct {
	mu   sync.Mutex
	sets [][]discovery.Instance
}

func watch(t *testing.T, p *process, service string) *recorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := p.kv.Watch(ctx, service)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{}
	go func() {
		for set := range ch {
			r.mu.Lock()
			r.sets = append(r.sets, set)
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *recorder) latest() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.sets) == 0 {
		return nil
	}
	return ids(r.sets[len(r.sets)-1])
}

// emptiedAfter reports whether a set without any instance followed one with some.
func (r *recorder) emptied() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := false
	for _, s := range r.sets {
		if len(s) > 0 {
			seen = true
		} else if seen {
			return true
		}
	}
	return false
}

func ids(set []discovery.Instance) []string {
	out := make([]string, len(set))
	for i, inst := range set {
		out[i] = inst.ID
	}
	return out
}

func until(t *testing.T, what string, d time.Duration, cond func() bool) time.Duration {
	t.Helper()
	begun := time.Now()
	for !cond() {
		if time.Since(begun) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(begun)
}

func same(got []string, want ...string) bool {
	return strings.Join(got, ",") == strings.Join(want, ",")
}

// The registry's broker stops for longer than five expiries. The callers keep the
// instances they knew (marked stale), not an empty view; an instance that died
// meanwhile is taken away only once the registry is back and confirms it; the
// survivor is announced again as soon as its connection returns; its heartbeat
// failures are counted and logged once, with one line when they are restored.
func TestARegistryOutageEmptiesNoView(t *testing.T) {
	t.Parallel()
	r := newRestartable(t)
	const bucket = "outage"
	survivor, doomed, caller := newProcess(t, r, bucket), newProcess(t, r, bucket), newProcess(t, r, bucket)
	survivor.register(t, discovery.Instance{Service: "orders", ID: "survivor", Addr: "127.0.0.1:1001"})
	doomed.register(t, discovery.Instance{Service: "orders", ID: "doomed", Addr: "127.0.0.1:1002"})
	view := watch(t, caller, "orders")
	until(t, "both instances in the caller's view", 5*time.Second, func() bool { return same(view.latest(), "doomed", "survivor") })

	r.stop()
	doomed.nc.Close() // it dies while the registry is away: no goodbye
	time.Sleep(5 * caller.kv.Expiry())
	if got := view.latest(); !same(got, "doomed", "survivor") {
		t.Fatalf("after %v without a registry the view is %v; want both instances kept", 5*caller.kv.Expiry(), got)
	}
	if _, stale := caller.kv.Stale(); !stale {
		t.Error("the caller does not report its view stale while the registry is gone")
	}
	if got := value(t, caller.metrics, "discovery_view_stale", "dependency", "orders"); got != 1 {
		t.Errorf("discovery_view_stale = %v during the outage, want 1", got)
	}

	r.start()
	restarted := time.Now()
	until(t, "the survivor announced again after the restart", 3*time.Second, func() bool {
		nc, js := r.connect(t)
		defer nc.Close()
		kv, err := js.KeyValue(context.Background(), bucket)
		if err != nil {
			return false
		}
		e, err := kv.Get(context.Background(), "orders.survivor")
		return err == nil && e.Created().After(restarted)
	})
	took := until(t, "the dead instance leaving the view once the registry confirms it", 10*time.Second, func() bool {
		return same(view.latest(), "survivor")
	})
	t.Logf("the dead instance left the view %v after the registry came back", took)
	if view.emptied() {
		t.Errorf("a view was emptied: %v", view.sets)
	}
	until(t, "the view no longer stale", 3*time.Second, func() bool { _, stale := caller.kv.Stale(); return !stale })
	if n := survivor.logs.count("heartbeat failing"); n != 1 {
		t.Errorf("the survivor logged %d heartbeat failures, want one line for the whole outage:\n%s", n, survivor.logs.b.String())
	}
	if n := survivor.logs.count("heartbeat restored"); n != 1 {
		t.Errorf("the survivor logged %d restorations, want 1", n)
	}
	if got := value(t, survivor.metrics, "discovery_registry_errors_total", "op", "heartbeat"); got < 3 {
		t.Errorf("discovery_registry_errors_total{op=heartbeat} = %v after the outage, want the retries counted", got)
	}
}

// Someone deletes the bucket under running instances. The first heartbeat that
// fails creates it again and every instance is back in it within a heartbeat or
// two; callers' views never go empty and keep following the new bucket.
func TestADeletedBucketIsCreatedAgain(t *testing.T) {
	t.Parallel()
	r := newRestartable(t)
	const bucket = "deleted"
	a, b, caller := newProcess(t, r, bucket), newProcess(t, r, bucket), newProcess(t, r, bucket)
	a.register(t, discovery.Instance{Service: "payments", ID: "a", Addr: "127.0.0.1:1001"})
	b.register(t, discovery.Instance{Service: "payments", ID: "b", Addr: "127.0.0.1:1002"})
	view := watch(t, caller, "payments")
	until(t, "both instances in the view", 5*time.Second, func() bool { return same(view.latest(), "a", "b") })

	_, js := r.connect(t)
	if err := js.DeleteKeyValue(context.Background(), bucket); err != nil {
		t.Fatal(err)
	}
	took := until(t, "the bucket back, holding both instances", 5*time.Second, func() bool {
		kv, err := js.KeyValue(context.Background(), bucket)
		if err != nil {
			return false
		}
		keys, err := kv.Keys(context.Background())
		return err == nil && same(keys, "payments.a", "payments.b")
	})
	t.Logf("bucket created again and both instances in it %v after it was deleted", took)

	c := newProcess(t, r, bucket)
	c.register(t, discovery.Instance{Service: "payments", ID: "c", Addr: "127.0.0.1:1003"})
	until(t, "an instance announced in the new bucket reaching the view", 5*time.Second, func() bool { return same(view.latest(), "a", "b", "c") })
	if view.emptied() {
		t.Errorf("a view was emptied: %v", view.sets)
	}
}

// value reads the first series of a metric whose labels include the given pairs
// (name, value, ...); 0 when there is none.
func value(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// In a three-node cluster the node leading the bucket's stream goes away. The
// instances keep beating through the other nodes, the caller's view never empties,
// and its watch keeps following: an instance announced after the leader changed
// reaches it, and one withdrawn leaves it.
func TestTheViewFollowsALeaderChange(t *testing.T) {
	t.Parallel()
	nodes, url := brokertest.Cluster(t, 3)
	const bucket = "leader"
	connect := func() jetstream.JetStream {
		nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, _ := jetstream.New(nc)
		return js
	}
	open := func() *natskv.KV {
		kv, err := natskv.New(context.Background(), connect(), natskv.Config{Bucket: bucket, Heartbeat: heartbeat, Replicas: 3})
		if err != nil {
			t.Fatal(err)
		}
		return kv
	}
	announce := func(id string) func() {
		kv := open()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = kv.Register(ctx, discovery.Instance{Service: "inventory", ID: id, Addr: "127.0.0.1:1001"})
		}()
		stop := func() { cancel(); <-done }
		t.Cleanup(stop)
		return stop
	}
	announce("a")
	withdrawB := announce("b")
	view := watch(t, &process{kv: open()}, "inventory")
	until(t, "both instances in the view", 10*time.Second, func() bool { return same(view.latest(), "a", "b") })

	leader := brokertest.Leader(t, url, "KV_"+bucket)
	for _, n := range nodes {
		if n.Name() == leader {
			t.Logf("shutting down %s, the leader of the bucket's stream", leader)
			n.Shutdown()
		}
	}
	time.Sleep(3 * heartbeat)
	announce("c")
	took := until(t, "an instance announced after the leader change reaching the view", 20*time.Second, func() bool {
		return same(view.latest(), "a", "b", "c")
	})
	t.Logf("new instance seen %v after it was announced", took)
	withdrawB()
	until(t, "a withdrawn instance leaving the view", 10*time.Second, func() bool { return same(view.latest(), "a", "c") })
	if view.emptied() {
		t.Errorf("a view was emptied: %v", view.sets)
	}
}
