package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/diagram"
	"github.com/switchyard/switchyard/telemetry"
)

// These tests run the system as its users do: the binary `go build` makes, under
// up, driven by load, read back with diagram, verify and design.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rides-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "rides")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build rides:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// project is a copy of the system's directory: its switchyard.yaml, rewritten by
// edit and put on free ports, since other tests run beside this one.
type project struct {
	t   *testing.T
	dir string
}

func newProject(t *testing.T, edit func(string) string) *project {
	t.Helper()
	yml, err := os.ReadFile("switchyard.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := regexp.MustCompile(`listen: 127\.0\.0\.1:\d+`).ReplaceAllString(edit(string(yml)), "listen: 127.0.0.1:0")
	p := &project{t: t, dir: t.TempDir()}
	p.write("switchyard.yaml", text)
	return p
}

func (p *project) write(name, text string) string {
	p.t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// run runs one command of the binary in the project and returns its output and
// exit status.
func (p *project) run(args ...string) (string, int) {
	p.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir, cmd.Env = p.dir, []string{"PATH=" + os.Getenv("PATH"), "HOME=" + p.dir}
	out, err := cmd.CombinedOutput()
	var exited *exec.ExitError
	if err != nil && !errors.As(err, &exited) {
		p.t.Fatalf("%v: %v", args, err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// must runs a command that has to succeed.
func (p *project) must(args ...string) string {
	p.t.Helper()
	out, code := p.run(args...)
	if code != 0 {
		p.t.Fatalf("rides %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// up starts `rides up` in the project and waits for its ready table; the test's
// end stops it with SIGTERM, as Ctrl-C would.
func (p *project) up() {
	p.t.Helper()
	out := &lockedBuffer{}
	cmd := exec.Command(binary, "up")
	cmd.Dir = p.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + p.dir, "SWITCHYARD_HUB=127.0.0.1:0"}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	p.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
		}
		if p.t.Failed() {
			p.t.Logf("rides up:\n%s", out)
		}
	})
	deadline := time.After(60 * time.Second)
	for !strings.Contains(out.String(), "rides is up") {
		select {
		case <-exited:
			p.t.Fatalf("up exited before it was ready (%v):\n%s", waitErr, out)
		case <-deadline:
			p.t.Fatalf("no ready table within 60s:\n%s", out)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// processes are the stack's processes, replicas apart ("dispatch#2"), with their
// addresses, from the stack file up keeps.
func (p *project) processes() map[string]string {
	p.t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, ".switchyard", "stack.json"))
	if err != nil {
		p.t.Fatal(err)
	}
	var st struct {
		Services []struct{ Name, URL string }
	}
	if err := json.Unmarshal(b, &st); err != nil {
		p.t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range st.Services {
		out[s.Name] = s.URL
	}
	return out
}

// counter is one sample of a process's counter, with its labels.
type counter struct {
	process string
	labels  map[string]string
	value   float64
}

// metrics reads every process's /metrics: name → samples.
func (p *project) metrics() map[string][]counter {
	p.t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	out := map[string][]counter{}
	for name, url := range p.processes() {
		families, err := telemetry.Scrape(context.Background(), client, url+"/metrics")
		if err != nil {
			p.t.Fatalf("%s /metrics: %v", name, err)
		}
		for family, f := range families {
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				v := m.GetCounter().GetValue()
				if m.GetGauge() != nil {
					v = m.GetGauge().GetValue()
				}
				out[family] = append(out[family], counter{process: name, labels: labels, value: v})
			}
		}
	}
	return out
}

// service is the service a process runs: "dispatch#2" runs dispatch.
func service(process string) string {
	name, _, _ := strings.Cut(process, "#")
	return name
}

// counted is the edges the processes' own counters say were used, replicas
// summed: the calls each client made, the events each outbox published and each
// consumer group handled. The first label names the edge as the diagram does.
func counted(m map[string][]counter, protocol func(from, to string) diagram.Protocol) map[string]int {
	out := map[string]int{}
	for _, c := range m["rpc_client_calls_total"] {
		from, to := service(c.process), c.labels["dependency"]
		out[fmt.Sprintf("%s --%s--> %s", from, protocol(from, to), to)] += int(c.value)
	}
	for _, c := range m["bus_published_total"] {
		out[fmt.Sprintf("%s --event--> bus %s", service(c.process), c.labels["type"])] += int(c.value)
	}
	for _, c := range m["bus_consumed_total"] {
		out[fmt.Sprintf("bus --event--> %s %s", c.labels["group"], c.labels["type"])] += int(c.value)
	}
	for k, v := range out {
		if v == 0 {
			delete(out, k)
		}
	}
	return out
}

// drawn is the same edges as the diagram draws them.
func drawn(g diagram.Graph) map[string]int {
	out := map[string]int{}
	for _, e := range g.Edges {
		switch {
		case e.Protocol == diagram.SQL || e.From == diagram.Client:
		case e.Protocol == diagram.Event && e.To == diagram.Bus:
			out[fmt.Sprintf("%s --event--> bus %s", e.From, e.Label)] += e.Calls
		case e.Protocol == diagram.Event:
			out[fmt.Sprintf("bus --event--> %s %s", e.To, e.Label)] += e.Calls - e.Retries
		default:
			out[fmt.Sprintf("%s --%s--> %s", e.From, e.Protocol, e.To)] += e.Calls
		}
	}
	return out
}

func list(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		keys = append(keys, fmt.Sprintf("%s ×%d", k, v))
	}
	slices.Sort(keys)
	return strings.Join(keys, "\n")
}

func (p *project) graph() diagram.Graph {
	p.t.Helper()
	var g diagram.Graph
	if out := p.must("diagram", "--format", "json"); json.Unmarshal([]byte(out), &g) != nil {
		p.t.Fatalf("diagram --format json:\n%s", out)
	}
	return g
}

func (p *project) protocols() func(from, to string) diagram.Protocol {
	p.t.Helper()
	cfg, err := config.LoadFile(filepath.Join(p.dir, "switchyard.yaml"), func(string) string { return "" })
	if err != nil {
		p.t.Fatal(err)
	}
	declared := map[string]diagram.Protocol{}
	for _, e := range diagram.Declared(cfg) {
		declared[e.From+">"+e.To] = e.Protocol
	}
	return func(from, to string) diagram.Protocol { return declared[from+">"+to] }
}

// settle polls until what the diagram draws equals what the counters count, twice
// in a row a little apart (spans are exported in batches), and returns both.
func (p *project) settle(within time.Duration) (diagram.Graph, map[string]int) {
	p.t.Helper()
	protocol := p.protocols()
	var g diagram.Graph
	var truth map[string]int
	agreed := 0
	for deadline := time.Now().Add(within); agreed < 2; {
		if time.Now().After(deadline) {
			p.t.Fatalf("the diagram never matched the counters within %s\ncounters:\n%s\ndiagram:\n%s", within, list(truth), list(drawn(g)))
		}
		time.Sleep(1500 * time.Millisecond)
		g, truth = p.graph(), counted(p.metrics(), protocol)
		if list(drawn(g)) == list(truth) {
			agreed++
		} else {
			agreed = 0
		}
	}
	return g, truth
}

// The whole system under up, driven by the load its file declares: the diagram
// draws exactly the edges the processes counted, with their counts; both dispatch
// replicas share the work; verify passes and design renders. Then two copies of
// the file disagree with the same traffic, and verify names each disagreement.
func TestRidesRunsAsDeclared(t *testing.T) {
	p := newProject(t, func(s string) string { return s })
	p.up()
	load := p.must("load", "--duration", "5s")
	if !regexp.MustCompile(`(?m)^\s+failed\s+0$`).MatchString(load) {
		t.Fatalf("load failed requests:\n%s", load)
	}
	g, truth := p.settle(40 * time.Second)
	for _, edge := range []string{
		"gateway --HTTP--> trips", "gateway --HTTP--> riders",
		"trips --HTTP--> riders", "trips --HTTP--> pricing", "trips --gRPC--> drivers", "dispatch --gRPC--> drivers",
		"trips --event--> bus trips.trip.requested.v1", "bus --event--> dispatch trips.trip.requested.v1",
		"dispatch --event--> bus dispatch.driver.assigned.v1", "bus --event--> trips dispatch.driver.assigned.v1",
		"bus --event--> payments dispatch.driver.assigned.v1", "bus --event--> notifications dispatch.driver.assigned.v1",
		"payments --event--> bus payments.hold.placed.v1", "bus --event--> notifications payments.hold.placed.v1",
	} {
		if truth[edge] == 0 {
			t.Errorf("the load never used %s:\n%s", edge, list(truth))
		}
	}
	// Dispatch trips nearby drivers, then reserves one: two calls a trip.
	if d, e := truth["dispatch --gRPC--> drivers"], truth["bus --event--> dispatch trips.trip.requested.v1"]; d != 2*e {
		t.Errorf("dispatch made %d calls to drivers for %d trips, want two a trip", d, e)
	}
	// One consumer group, two replicas: each handled part of the trips, together all.
	m := p.metrics()
	handled := map[string]float64{}
	for _, c := range m["simulate_events_total"] {
		if service(c.process) == "dispatch" && c.labels["direction"] == "handled" {
			handled[c.process] += c.value
		}
	}
	if handled["dispatch"] == 0 || handled["dispatch#2"] == 0 {
		t.Errorf("the two dispatch replicas did not share the trips: %v", handled)
	}
	if sum := handled["dispatch"] + handled["dispatch#2"]; int(sum) != truth["bus --event--> dispatch trips.trip.requested.v1"] {
		t.Errorf("dispatch handled %v trips, the bus delivered %d", sum, truth["bus --event--> dispatch trips.trip.requested.v1"])
	}
	// The simulations' own counters agree with the call stack's.
	calls := map[string]int{}
	for _, c := range m["simulate_calls_total"] {
		calls[service(c.process)+" -> "+c.labels["dependency"]] += int(c.value)
	}
	for _, edge := range g.Edges {
		if edge.From != "trips" && edge.From != "dispatch" || edge.Protocol == diagram.Event || edge.Protocol == diagram.SQL {
			continue
		}
		if n := calls[edge.From+" -> "+edge.To]; n != edge.Calls {
			t.Errorf("%s's simulation counted %d calls to %s; the diagram draws %d", edge.From, n, edge.To, edge.Calls)
		}
	}
	// The stream: the gateway upgraded riders' live views to trips.
	if !strings.Contains(load, "WS /api/streams/v1/trips/{id}/updates") {
		t.Errorf("the load opened no stream:\n%s", load)
	}

	if out, code := p.run("verify"); code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("verify exits %d:\n%s", code, out)
	}
	design := p.must("design")
	for _, want := range []string{"## Simulated services", "## Service interaction diagram", "trips    --event--> bus --> dispatch   trips.trip.requested.v1",
		"| trips | pricing | REST | 1s | 300ms | 3 attempts", "`events/dispatch.driver.assigned.v1.json`",
		"trips `/v1/trips/{id}/updates` (simulated: a 200-byte message every 250ms)", "No route needs an end user yet"} {
		if !strings.Contains(design, want) {
			t.Errorf("design lacks %q", want)
		}
	}
	// It is this system's document: nothing of the shop's leaks into it.
	for _, shop := range []string{"orders", "customer", "users service", "catalog"} {
		if strings.Contains(strings.ToLower(design), shop) {
			t.Errorf("design speaks of %q, which rides does not have", shop)
		}
	}

	// The same traffic, saved, against two files that disagree with it.
	saved := filepath.Join(p.dir, "spans.json")
	p.must("diagram", "--since", "1h", "--save", saved)
	yml, _ := os.ReadFile(filepath.Join(p.dir, "switchyard.yaml"))

	// trips no longer declares pricing (nor the simulation's call to it): the
	// traffic shows a call nothing declares.
	noPricing := string(yml)
	for _, cut := range []string{
		"      pricing:\n        protocol: rest\n        policy:\n          timeout: 1s\n          try_timeout: 300ms\n          retry: {max_attempts: 3, backoff: 20ms, max_backoff: 200ms}\n          breaker: {failure_ratio: 0.5, min_calls: 20, window: 10s, open_for: 5s}\n",
		"            - {to: pricing, endpoint: \"GET /v1/quotes/{zone}\"}\n",
	} {
		if !strings.Contains(noPricing, cut) {
			t.Fatalf("switchyard.yaml no longer has %q", cut)
		}
		noPricing = strings.Replace(noPricing, cut, "", 1)
	}
	out, code := p.run("verify", "--config", p.write("no-pricing.yaml", noPricing), "--file", saved)
	if code != 1 || !regexp.MustCompile(`FAIL\s+trips\s+--HTTP-->\s+pricing\s+seen \d+ times, declared nowhere`).MatchString(out) {
		t.Errorf("verify without trips → pricing exits %d, want 1 naming it:\n%s", code, out)
	}
	// dispatch declares a call to riders that its simulation never makes.
	extra := strings.Replace(string(yml), "    dependencies:\n      drivers:\n        protocol: grpc\n        policy:\n          timeout: 2s",
		"    dependencies:\n      riders:\n        protocol: rest\n      drivers:\n        protocol: grpc\n        policy:\n          timeout: 2s", 1)
	if extra == string(yml) {
		t.Fatal("switchyard.yaml no longer declares dispatch's dependencies as the test expects")
	}
	out, code = p.run("verify", "--config", p.write("extra-call.yaml", extra), "--file", saved)
	if code != 1 || !regexp.MustCompile(`FAIL\s+dispatch\s+--HTTP-->\s+riders\s+declared, never exercised`).MatchString(out) {
		t.Errorf("verify with an unused dispatch → riders exits %d, want 1 naming it:\n%s", code, out)
	}
	if strings.Contains(out, "declared nowhere") {
		t.Errorf("verify finds an undeclared edge in traffic the file declares:\n%s", out)
	}
}

// One dependency failing 60 % of the time: trips retries it, then its breaker
// opens and refuses calls before they leave — in the diagram and in rpc_client_*.
func TestAFailingDependencyRetriesThenOpensTheBreaker(t *testing.T) {
	p := newProject(t, func(s string) string {
		return strings.Replace(s, "          error_rate: 0\n", "          error_rate: 0.6\n", 1)
	})
	p.up()
	// While the load runs, watch the breaker's state gauge (0 closed, 1 half-open,
	// 2 open): it must reach open.
	loading := exec.Command(binary, "load", "--duration", "8s")
	var loadOut lockedBuffer
	loading.Dir, loading.Env, loading.Stdout, loading.Stderr = p.dir, []string{"PATH=" + os.Getenv("PATH"), "HOME=" + p.dir}, &loadOut, &loadOut
	if err := loading.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = loading.Wait(); close(done) }()
	trips := p.processes()["trips"]
	client := &http.Client{Timeout: 2 * time.Second}
	opened := false
	for watching := true; watching; {
		select {
		case <-done:
			watching = false
		case <-time.After(200 * time.Millisecond):
		}
		families, err := telemetry.Scrape(context.Background(), client, trips+"/metrics")
		if err != nil {
			continue
		}
		for _, s := range families["rpc_client_breaker_state"].GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "dependency" && l.GetValue() == "pricing" && s.GetGauge().GetValue() == 2 {
					opened = true
				}
			}
		}
	}
	if !opened {
		t.Error("rpc_client_breaker_state{dependency=pricing} never read 2 (open) during the load")
	}
	if load := loadOut.String(); !strings.Contains(load, "POST /api/v1/trips") {
		t.Fatalf("load:\n%s", load)
	}
	var pricing diagram.Edge
	var text string
	deadline := time.Now().Add(30 * time.Second)
	for pricing.Retries == 0 || pricing.BreakerOpen == 0 || !strings.Contains(text, "refused by the open breaker") {
		if time.Now().After(deadline) {
			t.Fatalf("no retries and open breaker on trips → pricing within 30s: %+v\n%s", pricing, text)
		}
		time.Sleep(time.Second)
		for _, e := range p.graph().Edges {
			if e.From == "trips" && e.To == "pricing" {
				pricing = e
			}
		}
		text = p.must("diagram")
	}
	if pricing.Errors == 0 {
		t.Errorf("trips → pricing drawn with no errors: %+v", pricing)
	}
	m := p.metrics()
	sum := func(name string, match func(map[string]string) bool) (n float64) {
		for _, c := range m[name] {
			if service(c.process) == "trips" && c.labels["dependency"] == "pricing" && match(c.labels) {
				n += c.value
			}
		}
		return n
	}
	all := func(map[string]string) bool { return true }
	if n := sum("rpc_client_retries_total", all); n == 0 {
		t.Error("rpc_client_retries_total{dependency=pricing} is 0")
	}
	if n := sum("rpc_client_calls_total", func(l map[string]string) bool { return l["outcome"] == "rejected" }); n == 0 {
		t.Error("rpc_client_calls_total{dependency=pricing,outcome=rejected} is 0: the breaker refused nothing")
	}
	for _, c := range m["rpc_client_breaker_state"] {
		if service(c.process) == "trips" && c.labels["dependency"] == "riders" && c.value != 0 {
			t.Errorf("riders' breaker is %v; riders never failed", c.value)
		}
	}
}

// lockedBuffer collects a process's output while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
