package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
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
	env := append(r.Env, "SWITCHYARD_DATA_DIR="+data, "SWITCHYARD_HUB=127.0.0.1:0")
	res := &Result{Scenario: s.Name, Source: s.Source, Seed: seed, Load: s.Load}

	var broker *process
	if s.Broker == "private" {
		b, url, err := r.startBroker(filepath.Join(r.Out, "broker"))
		if err != nil {
			return nil, err
		}
		broker = b
		defer broker.kill()
		env = append(env, "NATS_URL="+url)
		r.Log("private broker at %s", url)
	}

	args := []string{"up"}
	if s.Platform != "" {
		args = append(args, "--config", s.platformPath())
	}
	up, err := r.start("up", env, args...)
	if err != nil {
		return nil, err
	}
	defer up.stop()
	if err := up.waitFor(ctx, r.App+" is up", 60*time.Second); err != nil {
		return nil, fmt.Errorf("the platform did not come up: %w\n%s", err, up.tail(20))
	}
	r.Log("platform up; load %g/s for %s", s.Load.Rate, s.Load.Duration)

	timeline := filepath.Join(r.Out, "timeline.jsonl")
	loadArgs := []string{"load", "--rate", fmt.Sprint(s.Load.Rate), "--duration", s.Load.Duration.String(), "--timeline", timeline}
	if s.Platform != "" {
		loadArgs = append(loadArgs, "--config", s.platformPath())
	}
	load, err := r.start("load", env, append(loadArgs, s.Load.Args...)...)
	if err != nil {
		return nil, err
	}
	res.Started = time.Now()
	res.Faults = r.bring(ctx, schedule, res.Started, data, broker)
	loadErr := load.wait()
	if loadErr != nil {
		res.verdict("the load ran to its end", false, "%v\n%s", loadErr, load.tail(10))
	}

	if s.Assert.Checks() || len(s.Assert.Command) > 0 {
		cmd := []string{"check", "--wait", s.Assert.Settle.Or(30 * time.Second).String()}
		if s.Platform != "" {
			cmd = append(cmd, "--config", s.platformPath())
		}
		bin, name := r.Binary, "check: every invariant holds"
		if len(s.Assert.Command) > 0 {
			user := s.command(r.Binary, data)
			bin, cmd, name = user[0], user[1:], "command: "+strings.Join(s.Assert.Command, " ")
		}
		out, err := r.output(ctx, env, bin, cmd...)
		res.verdict(name, err == nil, "%s", strings.TrimSpace(out))
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
func (r *Runner) bring(ctx context.Context, schedule []Fault, start time.Time, data string, broker *process) []Applied {
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
			a := Applied{Fault: f, Start: time.Since(start)}
			if err := r.apply(ctx, f, data, broker); err != nil {
				a.Error = err.Error()
			}
			a.End = time.Since(start)
			r.Log("fault %d: %s (%s)", i+1, f, map[bool]string{true: "brought", false: a.Error}[a.Error == ""])
			out[i] = a
		})
	}
	wg.Wait()
	return out
}

// apply brings one fault and, for those that last, ends it.
func (r *Runner) apply(ctx context.Context, f Fault, data string, broker *process) error {
	switch {
	case f.Kill != "":
		pids, err := pidsOf(data, f.Kill)
		if err != nil {
			return err
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				return fmt.Errorf("kill -9 %s (pid %d): %w", f.Kill, pid, err)
			}
		}
		return nil
	case f.Stop != "":
		pids, err := pidsOf(data, f.Stop)
		if err != nil {
			return err
		}
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				return fmt.Errorf("kill -STOP %s (pid %d): %w", f.Stop, pid, err)
			}
		}
		sleep(ctx, f.Lasts())
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
		return nil
	case f.Broker == "stop":
		if err := broker.signal(syscall.SIGSTOP); err != nil {
			return err
		}
		sleep(ctx, f.Lasts())
		return broker.signal(syscall.SIGCONT)
	case f.Broker == "kill":
		if err := broker.signal(syscall.SIGKILL); err != nil {
			return err
		}
		_ = broker.wait()
		sleep(ctx, f.Lasts())
		return broker.restart()
	}
	return errors.New("an empty fault")
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// pidsOf reads the processes of a service (every replica) from the stack's
// stack.json.
func pidsOf(data, service string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(data, "stack.json"))
	if err != nil {
		return nil, err
	}
	var st struct {
		Services []struct {
			Name string `json:"name"`
			PID  int    `json:"pid"`
		} `json:"services"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	var pids []int
	for _, s := range st.Services {
		if name, _, _ := strings.Cut(s.Name, "#"); name == service && s.PID > 0 {
			pids = append(pids, s.PID)
		}
	}
	if len(pids) == 0 {
		return nil, fmt.Errorf("no running process of %s in the stack", service)
	}
	return pids, nil
}

// startBroker starts a nats-server with JetStream on a free loopback port,
// storing in dir.
func (r *Runner) startBroker(dir string) (*process, string, error) {
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		return nil, "", errors.New("broker: private needs the nats-server binary on PATH (Debian: apt-get install nats-server)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	p := &process{r: r, name: "broker", bin: bin, args: []string{"-a", "127.0.0.1", "-p", fmt.Sprint(port), "-js", "-sd", dir}}
	if err := p.begin(); err != nil {
		return nil, "", err
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			_ = c.Close()
			return p, url, nil
		}
		if time.Now().After(deadline) {
			p.kill()
			return nil, "", fmt.Errorf("the private broker did not listen within 10s: %s", p.tail(10))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// process is a child the runner owns, its output kept in a log file and a buffer.
type process struct {
	r         *Runner
	name, bin string
	args, env []string
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
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = p.r.Out, p.env, p, p
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
		return errors.New("the broker is not the runner's: set broker: private")
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
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	_ = p.cmd.Process.Kill()
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
