package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/shop/loadgen"
	"github.com/switchyard/switchyard/store"
	"github.com/switchyard/switchyard/telemetry"
)

// brokerProcess is a private NATS JetStream server in a process of its own
// (`switchyard broker`), so that a test can kill it with SIGKILL and start it again
// on the same store. It never takes port 4222.
type brokerProcess struct {
	t          *testing.T
	addr, dir  string
	token, url string
	extra      []string
	cmd        *exec.Cmd
	out        *lockedBuffer
	exited     chan struct{}
}

func startBroker(t *testing.T, addr, dir string, extra ...string) *brokerProcess {
	t.Helper()
	b := &brokerProcess{t: t, addr: addr, dir: dir, token: "outage-" + fmt.Sprint(time.Now().UnixNano()), extra: extra}
	b.url = "nats://" + b.token + "@" + addr
	b.start()
	t.Cleanup(func() {
		if b.cmd != nil {
			_ = b.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-b.exited:
			case <-time.After(10 * time.Second):
				_ = b.cmd.Process.Kill()
			}
		}
	})
	return b
}

func (b *brokerProcess) start() {
	b.t.Helper()
	b.out = &lockedBuffer{}
	args := append([]string{"broker", "--listen", b.addr, "--store", b.dir, "--token", b.token}, b.extra...)
	b.cmd = exec.Command(binary, args...)
	b.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + b.dir}
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(b.cmd, b.exited)
	waitUntil(b.t, "the broker at "+b.addr+" to be ready", 30*time.Second, func() bool {
		return strings.Contains(b.out.String(), "broker ready")
	})
}

// kill ends the broker with SIGKILL: no flush, no goodbye to its clients.
func (b *brokerProcess) kill() {
	b.t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		b.t.Fatal(err)
	}
	<-b.exited
	b.cmd = nil
}

// outageCase is one broker outage under load.
type outageCase struct {
	name string
	// down is how long the broker stays dead.
	down time.Duration
	// declines is the share of orders paid with a declining card.
	declines float64
	// paymentLatency, when set, slows every payments call so that many sagas sit in
	// authorization and capture at the moment the broker dies.
	paymentLatency string
}

// A broker outage under customers' traffic through the gateway: `switchyard up`
// on a private broker (its own process, store and port), customers ordering at
// 30/s with a client that tries again for up to 10 s, the broker killed with
// SIGKILL and started again on the same store. The outage lands at three moments
// — while orders are being placed, while many sagas are capturing payments (a slow
// payment provider), while most sagas compensate (declining cards) — for 5 s each,
// and once for 30 s. After each:
//
//   - at least 99 % of the customers' orders were accepted, during the outage and
//     after it (placement needs no broker: discovery keeps its views, the outbox
//     keeps the events);
//   - every order accepted before the restart is final within 30 s of it;
//   - no service logs a failing heartbeat once the restart has settled;
//   - `switchyard check` holds: no lost order, no double charge, stock conserved,
//     every outbox drained.
//
// This is a race, so each run prints what it measured. README "Running in
// production" and bench/RESULTS.md "Broker outage" show the figures.
func TestABrokerOutageStallsNothing(t *testing.T) {
	cases := []outageCase{
		{name: "restart while orders are placed", down: 5 * time.Second, declines: 0.1},
		{name: "restart while payments are captured", down: 5 * time.Second, declines: 0.1, paymentLatency: "100ms"},
		{name: "restart while sagas compensate", down: 5 * time.Second, declines: 0.9},
		{name: "thirty seconds down", down: 30 * time.Second, declines: 0.1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { brokerOutage(t, c) })
	}
}

func brokerOutage(t *testing.T, c outageCase) {
	const rate, before, after = 30, 6 * time.Second, 20 * time.Second
	b := startBroker(t, freePort(t), t.TempDir())
	file := fullPlatform
	if c.paymentLatency != "" {
		file = strings.Replace(file, "latency: 5ms", "latency: "+c.paymentLatency, 1)
	}
	s := startUp(t, file, "NATS_URL="+b.url)
	gw, _ := s.service("gateway")

	timeline, accepted := filepath.Join(s.dir, "timeline.jsonl"), filepath.Join(s.dir, "accepted.txt")
	duration := before + c.down + after
	loadOut, loadErr := &lockedBuffer{}, &lockedBuffer{}
	load := execIn(s.dir, "load", "--target", gw, "--rate", fmt.Sprint(rate), "--duration", duration.String(), "--customers", "10",
		"--declines", fmt.Sprint(c.declines), "--retry-window", "10s", "--settle", "60s", "--timeline", timeline, "--record", accepted)
	load.Stdout, load.Stderr = loadOut, loadErr
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	loaded := make(chan error, 1)
	go func() { loaded <- load.Wait() }()
	waitUntil(t, "the load placing orders", 60*time.Second, func() bool { return strings.Contains(loadErr.String(), "placing orders") })

	time.Sleep(before)
	killed := time.Now()
	b.kill()
	t.Logf("broker killed (SIGKILL); down for %v", c.down)
	operatorSeesStaleViews(t, s, c)
	time.Sleep(time.Until(killed.Add(c.down)))
	b.start()
	restarted := time.Now()
	settled := restarted.Add(10 * time.Second)
	ordersURL, _ := s.service("orders")
	fresh := waitUntil(t, "orders' views fresh again", 10*time.Second, func() bool {
		_, body := call(t, "GET", ordersURL+"/readyz", "", "")
		return body["status"] == "ok"
	})
	drained := waitUntil(t, "every outbox drained", 30*time.Second, func() bool { return outboxesEmpty(t, s) })
	t.Logf("after the restart: views fresh in %v, every outbox drained in %v", fresh.Round(time.Millisecond), drained.Round(time.Millisecond))

	final := allFinalBy(t, "sqlite:"+filepath.Join(s.dir, ".switchyard", "orders.db"), restarted, 30*time.Second)
	t.Logf("every order accepted before the restart final %v after it", final.Round(time.Millisecond))

	select {
	case err := <-loaded:
		if err != nil {
			t.Fatalf("load: %v\n%s\n%s", err, loadOut.String(), loadErr.String())
		}
	case <-time.After(duration + 2*time.Minute):
		t.Fatal("the load did not finish")
	}
	t.Logf("load:\n%s", loadOut.String())

	during, afterwards := acceptance(t, timeline, killed, settled)
	t.Logf("orders accepted within the 10 s retry window: %s during the outage and its settling, %s after", during, afterwards)
	for _, w := range []windowRate{during, afterwards} {
		if w.scheduled == 0 || w.rate() < 0.99 {
			t.Errorf("acceptance %s; want at least 99%%", w)
		}
	}
	if failing := lateHeartbeatFailures(s.out.String(), settled); len(failing) > 0 {
		t.Errorf("services logged failing heartbeats after the restart settled:\n%s", strings.Join(failing, "\n"))
	}
	out, err := execIn(s.dir, "check", "--wait", "30s", "--accepted", accepted).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "all invariants hold") {
		t.Fatalf("switchyard check: %v\n%s", err, out)
	}
	t.Logf("switchyard check: %s", lastLine(string(out)))
}

// operatorSeesStaleViews checks, while the broker is down, what an operator sees:
// orders reports its views stale on /readyz (and stays ready), the hub lists them
// for the dashboard, and — with the browser tests on, in the long outage — the
// dashboard's topology marks orders.
func operatorSeesStaleViews(t *testing.T, s *stack, c outageCase) {
	t.Helper()
	ordersURL, _ := s.service("orders")
	var body map[string]any
	waitUntil(t, "orders to report its views stale on /readyz", 5*time.Second, func() bool {
		code, b := call(t, "GET", ordersURL+"/readyz", "", "")
		body = b
		return code == 200 && b["status"] == "degraded"
	})
	t.Logf("orders /readyz during the outage: %v", body["degraded"])
	hub := s.read().Hub
	waitUntil(t, "the hub to list the stale views of orders and the gateway", 10*time.Second, func() bool {
		var deps struct {
			Stale []struct{ Service, Dependency string } `json:"stale"`
		}
		getJSON(t, hub+"/api/dependencies", &deps)
		stale := map[string]bool{}
		for _, d := range deps.Stale {
			stale[d.Service+">"+d.Dependency] = true
		}
		return stale["orders>inventory"] && stale["orders>payments"] && stale["gateway>orders"]
	})
	if c.down < 20*time.Second {
		return
	}
	dir, on := webTests(t)
	if !on {
		return
	}
	gw, _ := s.service("gateway")
	const admin = "operator@example.com"
	if code, b := call(t, "POST", gw+"/api/v1/auth/register", "", `{"email":"`+admin+`","password":"correct-horse-battery","name":"Op"}`); code != 201 {
		t.Fatalf("register the operator: %d %v", code, b)
	}
	if out, err := execIn(s.dir, "grant", admin, "admin").CombinedOutput(); err != nil {
		t.Fatalf("grant: %v\n%s", err, out)
	}
	out := node(t, dir, "stale-view.mjs", []string{"GATEWAY=" + gw, "ARTIFACTS=" + artifacts(t),
		"ADMIN_EMAIL=" + admin, "ADMIN_PASSWORD=correct-horse-battery"})
	t.Logf("dashboard during the outage: %s", lastLine(out))
}

// outboxesEmpty reports whether no service of the stack has an event waiting to be
// published, by their own outbox_backlog.
func outboxesEmpty(t *testing.T, s *stack) bool {
	t.Helper()
	for _, svc := range s.read().Services {
		families, err := telemetry.Scrape(context.Background(), http.DefaultClient, svc.URL+"/metrics")
		if err != nil {
			return false
		}
		for _, m := range families["outbox_backlog"].GetMetric() {
			if m.GetGauge().GetValue() > 0 {
				return false
			}
		}
	}
	return true
}

// allFinalBy waits until every order placed before restarted is final (CONFIRMED,
// CANCELLED or ON_HOLD), at most within after restarted, reading the orders
// database at ordersDB, and returns how long after restarted the last of them
// became final.
func allFinalBy(t *testing.T, ordersDB string, restarted time.Time, within time.Duration) time.Duration {
	t.Helper()
	db, err := store.Open(context.Background(), store.Config{URL: ordersDB, MaxOpenConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for {
		var open int
		var last int64
		err := db.QueryRow(`SELECT
			COALESCE(SUM(CASE WHEN status NOT IN ('CONFIRMED', 'CANCELLED', 'ON_HOLD') THEN 1 ELSE 0 END), 0),
			COALESCE(MAX(updated_at), 0)
			FROM orders WHERE created_at < $1`, store.Millis(restarted)).Scan(&open, &last)
		if err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			return max(store.Time(last).Sub(restarted), 0)
		}
		if time.Since(restarted) > within {
			rows, _ := db.Query(`SELECT status, reason FROM orders WHERE created_at < $1 AND status NOT IN ('CONFIRMED', 'CANCELLED', 'ON_HOLD') LIMIT 5`, store.Millis(restarted))
			var sample []string
			for rows != nil && rows.Next() {
				var status, reason string
				_ = rows.Scan(&status, &reason)
				sample = append(sample, status+" "+reason)
			}
			t.Fatalf("%d orders placed before the restart are still not final %v after it; e.g. %v", open, within, sample)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// windowRate counts the orders scheduled in a window and those accepted.
type windowRate struct{ scheduled, accepted int }

func (w windowRate) rate() float64 { return float64(w.accepted) / float64(max(w.scheduled, 1)) }
func (w windowRate) String() string {
	return fmt.Sprintf("%d/%d (%.2f%%)", w.accepted, w.scheduled, 100*w.rate())
}

// acceptance reads the load's timeline: orders scheduled from the kill until the
// restart settled, and those scheduled after.
func acceptance(t *testing.T, path string, killed, settled time.Time) (during, after windowRate) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e loadgen.TimelineEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("timeline line %q: %v", sc.Text(), err)
		}
		at := time.UnixMilli(e.At)
		w := &after
		switch {
		case at.Before(killed):
			continue
		case at.Before(settled):
			w = &during
		}
		w.scheduled++
		if e.Outcome == "accepted" {
			w.accepted++
		}
	}
	return during, after
}

// lateHeartbeatFailures lists the log lines, written after settled, saying a
// heartbeat started failing.
func lateHeartbeatFailures(out string, settled time.Time) []string {
	var late []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "heartbeat failing") {
			continue
		}
		var rec struct {
			Time time.Time `json:"time"`
		}
		record := line[max(strings.Index(line, "{"), 0):] // up prefixes each line with its service
		if json.Unmarshal([]byte(record), &rec) != nil || rec.Time.After(settled) {
			late = append(late, line)
		}
	}
	return late
}
