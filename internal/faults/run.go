package faults

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/config"
)

// Runner runs scenarios with one switchyard binary.
type Runner struct {
	// Binary is the switchyard executable (the running one).
	Binary string
	// App is the binary's name, as `up` prints it ("switchyard").
	App string
	// Out is the directory a run writes into: the stack's data, its logs, the
	// timeline, result.json, report.txt and report.svg.
	Out string
	// Env is the environment handed to every process (PATH, HOME...).
	Env []string
	// Log receives a line per step.
	Log func(format string, args ...any)
	// Platform, when set, is the platform's text to run instead of the scenario's
	// own (the scenario's set: applied to it).
	Platform []byte
}

// Run runs s with schedule (Draw's) and returns the judged result.
func (r *Runner) Run(ctx context.Context, s *Scenario, schedule []Fault, seed uint64) (*Result, error) {
	out, err := filepath.Abs(r.Out) // the children run in it
	if err != nil {
		return nil, err
	}
	r.Out = out
	if err := os.MkdirAll(r.Out, 0o755); err != nil {
		return nil, err
	}
	data := filepath.Join(r.Out, "data")
	_ = os.RemoveAll(data)
	env := append(slices.Clone(r.Env), "SWITCHYARD_DATA_DIR="+data, "SWITCHYARD_HUB=127.0.0.1:0")
	res := &Result{Scenario: s.Name, Source: s.Source, Seed: seed, Load: s.Load}
	for name, n := range s.Replicas {
		env = append(env, fmt.Sprintf("%s_REPLICAS=%d", config.EnvName(name), n))
	}

	e, err := r.startEngines(s, &env)
	defer e.close()
	if err != nil {
		return nil, err
	}
	// Every edge a fault breaks gets its proxy, and the caller its address: the
	// broker's and database's now (the caller connects as it starts), a service's
	// once the stack runs (its address is the stack's to give).
	later, err := e.interpose(schedule, &env)
	if err != nil {
		return nil, err
	}

	platform, err := r.platform(s)
	if err != nil {
		return nil, err
	}
	defer platform.remove()
	up, err := r.start("up", env, append([]string{"up"}, platform.args...)...)
	if err != nil {
		return nil, err
	}
	defer up.stop()
	if err := up.waitFor(ctx, r.App+" is up", 90*time.Second); err != nil {
		return nil, fmt.Errorf("the platform did not come up: %w\n%s", err, up.tail(20))
	}
	for _, edge := range later {
		if err := e.proxyService(data, edge); err != nil {
			return nil, err
		}
	}
	for edge, p := range e.proxies {
		r.Log("proxy on %s at %s", edge, p.Addr())
	}
	leaks := !s.Assert.Leaks.off()
	var before map[string]usage
	if leaks {
		if before, err = readUsage(ctx, data); err != nil {
			return nil, fmt.Errorf("reading the processes' /metrics before the load: %w", err)
		}
	}
	counters := readBounds(ctx, data, s.Assert.Metrics)
	r.Log("platform up; load %g/s for %s", s.Load.Rate, s.Load.Duration)

	timeline := filepath.Join(r.Out, "timeline.jsonl")
	loadArgs := []string{"load", "--rate", fmt.Sprint(s.Load.Rate), "--duration", s.Load.Duration.String(), "--timeline", timeline}
	loadArgs = append(loadArgs, platform.args...)
	load, err := r.start("load", env, append(loadArgs, s.Load.Args...)...)
	if err != nil {
		return nil, err
	}
	res.Started = time.Now()
	res.Faults = r.bring(ctx, schedule, res.Started, s.Load.Duration.Std(), data, e)
	loadErr := load.wait()
	if loadErr != nil {
		res.verdict("the load ran to its end", false, "%v\n%s", loadErr, load.tail(10))
	}

	if s.Assert.Checks() || len(s.Assert.Command) > 0 {
		cmd := append([]string{"check", "--wait", s.Assert.Settle.Or(30 * time.Second).String()}, platform.args...)
		bin, name := r.Binary, "check: every invariant holds"
		if len(s.Assert.Command) > 0 {
			user := s.command(r.Binary, data)
			bin, cmd, name = user[0], user[1:], "command: "+strings.Join(s.Assert.Command, " ")
		}
		out, err := r.output(ctx, env, bin, cmd...)
		res.verdict(name, err == nil, "%s", strings.TrimSpace(out))
	}
	if most := s.Assert.DeadLetters; most == nil || *most >= 0 {
		// An event still being retried may yet become a dead letter: first every
		// consumer must have caught up.
		if url := e.natsURL(data); url != "" {
			left, err := consumed(ctx, url, s.Assert.Settle.Or(30*time.Second))
			if err != nil {
				res.verdict("every event consumed", false, "%v", err)
			} else {
				res.verdict("every event consumed", left == "", "%s", cmp.Or(left, "no consumer has an event pending or unacknowledged"))
			}
		}
		r.judgeDeadLetters(ctx, res, env, platform.args, s, most)
	}
	if len(s.Assert.Metrics) > 0 {
		res.judgeMetrics(s.Assert.Metrics, counters, readBounds(ctx, data, s.Assert.Metrics))
	}
	if leaks {
		after, waited, err := settledUsage(ctx, data, s.Assert.Leaks, before, 30*time.Second)
		if err != nil {
			res.verdict("no leaks", false, "reading the processes' /metrics after the run: %v", err)
		} else {
			res.judgeLeaks(s.Assert.Leaks, before, after, waited)
		}
	}
	f, err := os.Open(timeline)
	if err != nil {
		return nil, fmt.Errorf("the load wrote no timeline: %w", err)
	}
	entries, err := ReadTimeline(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	res.Judge(s, entries)
	res.Settle()
	return res, nil
}

// judgeDeadLetters counts the dead letters the broker holds after the run
// (`events dlq list`), against the scenario's bound [none].
func (r *Runner) judgeDeadLetters(ctx context.Context, res *Result, env, platform []string, s *Scenario, most *int) {
	bound := 0
	if most != nil {
		bound = *most
	}
	cmd := append([]string{"events", "dlq", "list", "--json", "--limit", "100000"}, platform...)
	name := fmt.Sprintf("dead letters ≤ %d", bound)
	out, err := r.output(ctx, env, r.Binary, cmd...)
	if err != nil {
		res.verdict(name, false, "events dlq list: %v\n%s", err, strings.TrimSpace(out))
		return
	}
	var list []struct {
		Group string `json:"group"`
		Event struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		} `json:"event"`
		LastError string `json:"last_error"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		res.verdict(name, false, "events dlq list printed no list: %v", err)
		return
	}
	by := map[string]int{}
	example := map[string]string{}
	poisoned, others := map[string]int{}, 0
	for _, dl := range list {
		// A poison event: one the runner published with a poison- id, or one that
		// was not an event at all (only the runner's are not).
		if strings.HasPrefix(dl.Event.ID, poisonPrefix) || dl.Event.ID == "" {
			poisoned[dl.Group]++
			continue
		}
		others++
		k := dl.Group + " " + dl.Event.Type
		by[k]++
		example[k] = dl.LastError
	}
	if want, sent := s.poisonedBy(res.Faults); sent > 0 {
		var found []string
		held := len(want) > 0
		for _, g := range slices.Sorted(maps.Keys(want)) {
			found = append(found, fmt.Sprintf("%s holds %d of %d", g, poisoned[g], want[g]))
			held = held && poisoned[g] == want[g]
		}
		res.verdict(fmt.Sprintf("all %d poison events dead-lettered by every group that consumes them", sent), held,
			"%s", cmp.Or(strings.Join(found, "; "), "no group consumes the poisoned types"))
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(by)) {
		parts = append(parts, fmt.Sprintf("%d of %s (e.g. %s)", by[k], k, oneLine(example[k], 120)))
	}
	detail := fmt.Sprintf("%d dead letters", others)
	if len(parts) > 0 {
		detail += ": " + strings.Join(parts, "; ")
	}
	if n := len(list) - others; n > 0 {
		detail += fmt.Sprintf(" (and %d poison ones, judged above)", n)
	}
	res.verdict(name, others <= bound, "%s", detail)
}

// poisonedBy is how many poison events each consumer group should have
// dead-lettered — those of the types it consumes — and how many were published.
func (s *Scenario) poisonedBy(applied []Applied) (map[string]int, int) {
	want, sent := map[string]int{}, 0
	for _, a := range applied {
		if a.Poison == 0 {
			continue
		}
		sent += a.Poison
		for _, g := range s.consumers[a.Fault.Event] {
			want[g] += a.Poison
		}
	}
	return want, sent
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// startEngines starts the engines the scenario wants the runner to own — a
// broker, a PostgreSQL server, Redis — and points the stack at them through env.
// On an error, what was started is in the engines returned, for close.
func (r *Runner) startEngines(s *Scenario, env *[]string) (*engines, error) {
	e := &engines{}
	if s.Broker == "private" {
		b, url, err := r.startBroker(filepath.Join(r.Out, "broker"))
		if err != nil {
			return e, err
		}
		e.broker, e.brokerURL = b, url
		*env = append(*env, "NATS_URL="+url)
		r.Log("private broker at %s", hostOf(url))
	}
	if s.Database == "private" {
		// Its own directory under the system's temporary one: the server may run as
		// another user (postgres, when the runner is root), who must reach it.
		dir, err := os.MkdirTemp("", "switchyard-postgres-")
		if err != nil {
			return e, err
		}
		e.databaseDir = dir
		pg, url, err := r.startPostgres(dir)
		if err != nil {
			return e, err
		}
		e.database, e.databaseURL = pg, url
		if len(s.DatabaseServices) == 0 {
			*env = append(*env, "DATABASE_URL="+url)
		}
		for _, name := range s.DatabaseServices {
			*env = append(*env, config.EnvName(name)+"_DATABASE_URL="+config.PerServiceDatabase(url, name))
		}
		r.Log("private PostgreSQL at %s", hostOf(url))
	}
	if s.Redis == "private" {
		rd, url, err := r.startRedis(r.Out)
		if err != nil {
			return e, err
		}
		e.redis, e.redisURL = rd, url
		*env = append(*env, "REDIS_URL="+url)
		r.Log("private Redis at %s", hostOf(url))
	}
	return e, nil
}

// platformFile is the platform a run's commands are given.
type platformFile struct {
	args   []string // --config <path>, or none for the binary's built-in platform
	remove func()
}

// platform is the scenario's platform: its file, the binary's built-in one, or —
// when the runner was handed a changed text (the scenario's set:) — that text,
// written beside the file it changes (so that its relative paths hold) for the
// run and kept as platform.yaml in the run's directory.
func (r *Runner) platform(s *Scenario) (platformFile, error) {
	if r.Platform == nil {
		if s.Platform == "" {
			return platformFile{remove: func() {}}, nil
		}
		return platformFile{args: []string{"--config", s.platformPath()}, remove: func() {}}, nil
	}
	if err := os.WriteFile(filepath.Join(r.Out, "platform.yaml"), r.Platform, 0o644); err != nil {
		return platformFile{}, err
	}
	dir := r.Out
	if s.Platform != "" {
		dir = filepath.Dir(s.platformPath())
	}
	f, err := os.CreateTemp(dir, ".switchyard-faults-*.yaml")
	if err != nil {
		return platformFile{}, err
	}
	_, werr := f.Write(r.Platform)
	if err := errors.Join(werr, f.Close()); err != nil {
		_ = os.Remove(f.Name())
		return platformFile{}, err
	}
	return platformFile{args: []string{"--config", f.Name()}, remove: func() { _ = os.Remove(f.Name()) }}, nil
}

func (s *Scenario) platformPath() string {
	if filepath.IsAbs(s.Platform) {
		return s.Platform
	}
	p, err := filepath.Abs(filepath.Join(filepath.Dir(s.Source), s.Platform))
	if err != nil {
		return s.Platform
	}
	return p
}

// command is Assert.Command with its placeholders filled.
func (s *Scenario) command(bin, data string) []string {
	out := make([]string, len(s.Assert.Command))
	for i, a := range s.Assert.Command {
		out[i] = strings.NewReplacer("{bin}", bin, "{data}", data).Replace(a)
	}
	return out
}

// bring applies every fault of the schedule at its time and returns when the
// last has ended.
func (r *Runner) bring(ctx context.Context, schedule []Fault, start time.Time, end time.Duration, data string, e *engines) []Applied {
	out := make([]Applied, len(schedule))
	var wg sync.WaitGroup
	for i, f := range schedule {
		wg.Go(func() {
			select {
			case <-time.After(time.Until(start.Add(f.At.Std()))):
			case <-ctx.Done():
				out[i] = Applied{Fault: f, Error: ctx.Err().Error()}
				return
			}
			if f.When != nil {
				if _, err := f.When.wait(ctx, data, start.Add(end)); err != nil {
					out[i] = Applied{Fault: f, Start: time.Since(start), End: time.Since(start), Error: err.Error()}
					r.Log("fault %d: %s (%v)", i+1, f, err)
					return
				}
			}
			a := Applied{Fault: f, Start: time.Since(start)}
			if err := r.apply(ctx, f, data, e, &a); err != nil {
				a.Error = err.Error()
			}
			a.End = time.Since(start)
			r.Log("fault %d: %s (%s)", i+1, f, map[bool]string{true: "brought", false: a.Error}[a.Error == ""])
			if a.Error == "" {
				if ready, err := allReady(ctx, data, time.Minute); err == nil {
					a.Ready = ready
				} else {
					a.Error = err.Error()
				}
			}
			out[i] = a
		})
	}
	wg.Wait()
	return out
}

// apply brings one fault and, for those that last, ends it; what a delivery
// fault did goes into a.
func (r *Runner) apply(ctx context.Context, f Fault, data string, e *engines, a *Applied) error {
	switch {
	case f.Kill != "":
		return signalService(data, f.Kill, syscall.SIGKILL)
	case f.Stop != "":
		if err := signalService(data, f.Stop, syscall.SIGSTOP); err != nil {
			return err
		}
		sleep(ctx, f.Lasts())
		return signalService(data, f.Stop, syscall.SIGCONT)
	case f.Broker != "":
		return freezeOrKill(ctx, e.broker, f.Broker, f.Lasts(), e.broker.restart)
	case f.Database != "":
		return freezeOrKill(ctx, e.database, f.Database, f.Lasts(), func() error {
			return e.database.restartPostgres(hostOf(e.databaseURL))
		})
	case f.Redis != "":
		return freezeOrKill(ctx, e.redis, f.Redis, f.Lasts(), e.redis.restart)
	case f.Edge != "":
		return e.breakEdge(ctx, f)
	case f.Deliveries != "":
		url := e.natsURL(data)
		if url == "" {
			return errors.New("deliveries break a NATS broker's; this stack has none")
		}
		if f.Deliveries == "poison" {
			var err error
			a.Poison, err = poison(ctx, url, f)
			a.Detail = fmt.Sprintf("%d poison %s events published", a.Poison, f.Event)
			return err
		}
		var err error
		a.Detail, err = deliver(ctx, url, f)
		return err
	}
	return errors.New("an empty fault")
}

// allReady waits until every process of the stack answers /readyz with 200, and
// returns how long that took.
func allReady(ctx context.Context, data string, within time.Duration) (time.Duration, error) {
	began := time.Now()
	client := &http.Client{Timeout: time.Second}
	for {
		procs, err := stackOf(data)
		if err != nil {
			return 0, err
		}
		var waiting []string
		for _, p := range procs {
			if p.URL == "" {
				waiting = append(waiting, p.Name)
				continue
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/readyz", nil)
			resp, err := client.Do(req)
			if err != nil {
				waiting = append(waiting, p.Name)
				continue
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				waiting = append(waiting, p.Name)
			}
		}
		if len(waiting) == 0 {
			return time.Since(began), nil
		}
		if time.Since(began) > within {
			return 0, fmt.Errorf("%s not ready %s after the fault ended", strings.Join(waiting, ", "), within)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freezeOrKill stops (SIGSTOP, then SIGCONT) or kills (SIGKILL, then back) an
// engine for d.
func freezeOrKill(ctx context.Context, p *process, how string, d time.Duration, back func() error) error {
	if how == "stop" {
		if err := p.signal(syscall.SIGSTOP); err != nil {
			return err
		}
		sleep(ctx, d)
		return p.signal(syscall.SIGCONT)
	}
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	_ = p.wait()
	sleep(ctx, d)
	return back()
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// stackProcess is one process of the stack, as stack.json lists it.
type stackProcess struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	PID  int    `json:"pid"`
}

type stackFile struct {
	Broker struct {
		URL string `json:"url"`
	} `json:"broker"`
	Services []stackProcess `json:"services"`
}

func readStackFile(data string) (*stackFile, error) {
	b, err := os.ReadFile(filepath.Join(data, "stack.json"))
	if err != nil {
		return nil, err
	}
	var st stackFile
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("stack.json: %w", err)
	}
	return &st, nil
}

// stackOf reads the stack's processes (replicas named service#N).
func stackOf(data string) ([]stackProcess, error) {
	st, err := readStackFile(data)
	if err != nil {
		return nil, err
	}
	return st.Services, nil
}

// signalService sends sig to every running process (every replica) of a
// service, or to one replica, service#N (#1 the first).
func signalService(data, service string, sig syscall.Signal) error {
	procs, err := stackOf(data)
	if err != nil {
		return err
	}
	n := 0
	for _, p := range procs {
		name, _, _ := strings.Cut(p.Name, "#")
		if strings.Contains(service, "#") {
			name = p.Name // one replica: service#2; the first is named service
			if !strings.Contains(name, "#") {
				name += "#1"
			}
		}
		if name == service && p.PID > 0 {
			if err := syscall.Kill(p.PID, sig); err != nil {
				return fmt.Errorf("signal %s (pid %d): %w", service, p.PID, err)
			}
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("no running process of %s in the stack", service)
	}
	return nil
}

// process is a child the runner owns, its output kept in a log file and a buffer.
type process struct {
	r         *Runner
	name, bin string
	args, env []string
	dir       string              // where it runs [the run's directory]
	cred      *syscall.Credential // whom it runs as [the runner's user]
	group     bool                // in a process group of its own, signalled whole
	mu        sync.Mutex
	cmd       *exec.Cmd
	out       bytes.Buffer
	exited    chan struct{} // closed once cmd has exited, err set
	err       error
	logFile   *os.File
}

func (r *Runner) start(name string, env []string, args ...string) (*process, error) {
	p := &process{r: r, name: name, bin: r.Binary, args: args, env: env}
	return p, p.begin()
}

func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.logFile != nil {
		_, _ = p.logFile.Write(b)
	}
	if p.out.Len() > 1<<20 {
		p.out.Reset()
	}
	return p.out.Write(b)
}

func (p *process) begin() error {
	f, err := os.OpenFile(filepath.Join(p.r.Out, p.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = cmp.Or(p.dir, p.r.Out), p.env, p, p
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Setpgid: p.group}
	p.mu.Lock()
	if p.logFile != nil {
		_ = p.logFile.Close() // a restart's
	}
	exited := make(chan struct{})
	p.logFile, p.cmd, p.exited = f, cmd, exited
	p.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(exited)
	}()
	return nil
}

func (p *process) signal(sig syscall.Signal) error {
	if p == nil {
		return errors.New("the engine is not the runner's: set broker: private or database: private")
	}
	if p.group {
		return syscall.Kill(-p.cmd.Process.Pid, sig)
	}
	return p.cmd.Process.Signal(sig)
}

func (p *process) restart() error { return p.begin() }

func (p *process) wait() error {
	<-p.exited
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// stop ends the process with SIGINT (up stops its services in order), then kills it.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	_ = p.logFile.Close()
}

func (p *process) kill() {
	_ = p.signal(syscall.SIGCONT)
	_ = p.signal(syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
	}
	_ = p.logFile.Close()
}

// waitFor waits until the process has written text.
func (p *process) waitFor(ctx context.Context, text string, within time.Duration) error {
	deadline := time.After(within)
	for {
		p.mu.Lock()
		found := strings.Contains(p.out.String(), text)
		p.mu.Unlock()
		if found {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited: %w", p.name, p.wait())
		case <-deadline:
			return fmt.Errorf("no %q from %s within %s", text, p.name, within)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (p *process) tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(p.out.String()), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// output runs a command to its end and returns what it wrote.
func (r *Runner) output(ctx context.Context, env []string, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Env = r.Out, env
	out, err := cmd.CombinedOutput()
	return string(out), err
}
