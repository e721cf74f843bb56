// Package supervisor runs a set of service processes on one machine, the way `switchyard
// up` does: each service its own child process, so one can crash alone.
//
// For every child it:
//   - starts the executable with the child's arguments and environment, in its own
//     process group (a terminal's Ctrl-C reaches the supervisor, which then stops the
//     children in order) and, on Linux, with a parent-death signal so that no child
//     outlives a supervisor that was killed outright;
//   - learns the address the child bound from a line the child writes to file
//     descriptor 3 (see [Announce]), then polls its /readyz until it answers 200;
//   - prefixes each line the child writes to stdout or stderr with its name;
//   - restarts it when it exits unexpectedly, on the same address, after an
//     exponential backoff (100 ms doubling to 10 s, reset once the child has run
//     for 30 s). A child that exits before it was ever ready fails the whole start:
//     that is a configuration problem, not a crash.
//
// When the context ends, every child gets SIGTERM, then SIGKILL if it has not exited
// within StopTimeout; Run returns when all are gone.
package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// NotifyFDEnv names the variable telling a child which descriptor to announce on.
const NotifyFDEnv = "SWITCHYARD_NOTIFY_FD"

// Announce writes the address a child bound to the supervisor's notification
// descriptor, when there is one (getenv(NotifyFDEnv) names it). Children call it
// once, after binding and before serving.
func Announce(getenv func(string) string, addr string) error {
	if getenv(NotifyFDEnv) != "3" {
		return nil
	}
	f := os.NewFile(3, "supervisor-notify")
	if f == nil {
		return errors.New("announce: descriptor 3 is not open")
	}
	defer f.Close()
	return json.NewEncoder(f).Encode(announcement{Addr: addr})
}

type announcement struct {
	Addr string `json:"addr"`
}

// Spec describes one child.
type Spec struct {
	// Name identifies the child in logs and status.
	Name string
	// Args are the arguments after the executable.
	Args []string
	// ListenFlag, when set, is the flag through which a restarted child is told to
	// bind the address its predecessor announced (e.g. "--listen"), so a restart
	// keeps the port.
	ListenFlag string
	// Env is added to the supervisor's own environment.
	Env []string
}

// Config configures a Supervisor. Zero fields take the default in brackets.
type Config struct {
	// Executable to run [this process's own executable].
	Executable string
	// Children, started in this order.
	Children []Spec
	// Output receives the children's output, each line prefixed with the child's name.
	Output io.Writer
	// Format, when set, rewrites each child line before it is prefixed (e.g. to
	// render JSON logs for a human); a nil result drops the line from Output (Tap
	// still has it). It must not retain the slice.
	Format func(line []byte) []byte
	// Tap, when set, receives each child line as the child wrote it, before Format
	// (e.g. to collect every service's log centrally). It must not retain the slice.
	Tap func(name string, line []byte)
	// Logger receives the supervisor's own messages.
	Logger *slog.Logger
	// ReadyTimeout bounds a child's start until /readyz answers 200 [60s].
	ReadyTimeout time.Duration
	// StopTimeout is the grace between SIGTERM and SIGKILL [8s].
	StopTimeout time.Duration
	// OnChange is called (serially) whenever a child's state, pid or address changes.
	OnChange func([]Status)
}

// State of a child.
type State string

// The states a child goes through.
const (
	Starting   State = "starting"
	Ready      State = "ready"
	Restarting State = "restarting"
	Stopping   State = "stopping"
	Stopped    State = "stopped"
)

// Status is a snapshot of one child.
type Status struct {
	Name     string    `json:"name"`
	State    State     `json:"state"`
	PID      int       `json:"pid,omitempty"`
	Addr     string    `json:"addr,omitempty"`
	Restarts int       `json:"restarts"`
	Since    time.Time `json:"since"`
}

// Supervisor runs and restarts children.
type Supervisor struct {
	cfg     Config
	ready   chan struct{}
	outMu   sync.Mutex
	stateMu sync.Mutex
	status  map[string]*Status
	notify  chan struct{}
}

// New returns a supervisor for cfg.
func New(cfg Config) (*Supervisor, error) {
	if cfg.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("supervisor: find own executable: %w", err)
		}
		cfg.Executable = exe
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 60 * time.Second
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 8 * time.Second
	}
	if cfg.Output == nil {
		cfg.Output = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Supervisor{cfg: cfg, ready: make(chan struct{}), status: map[string]*Status{}, notify: make(chan struct{}, 1)}
	for _, c := range cfg.Children {
		if _, dup := s.status[c.Name]; dup {
			return nil, fmt.Errorf("supervisor: two children named %q", c.Name)
		}
		s.status[c.Name] = &Status{Name: c.Name, State: Starting, Since: time.Now()}
	}
	return s, nil
}

// Ready is closed once every child has been ready at least once.
func (s *Supervisor) Ready() <-chan struct{} { return s.ready }

// Status returns a snapshot of every child, in start order.
func (s *Supervisor) Status() []Status {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	out := make([]Status, 0, len(s.cfg.Children))
	for _, c := range s.cfg.Children {
		out = append(out, *s.status[c.Name])
	}
	return out
}

func (s *Supervisor) update(name string, fn func(*Status)) {
	s.stateMu.Lock()
	st := s.status[name]
	fn(st)
	st.Since = time.Now()
	s.stateMu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Run starts every child and keeps them running until ctx ends, then stops them all.
// It returns an error when a child cannot be started or exits before it was ever
// ready; the other children are stopped first.
func (s *Supervisor) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	notifierDone := make(chan struct{})
	go func() {
		defer close(notifierDone)
		for {
			select {
			case <-s.notify:
				if s.cfg.OnChange != nil {
					s.cfg.OnChange(s.Status())
				}
			case <-ctx.Done():
				if s.cfg.OnChange != nil {
					s.cfg.OnChange(s.Status())
				}
				return
			}
		}
	}()

	var wg sync.WaitGroup
	readyCh := make(chan string, len(s.cfg.Children))
	for _, spec := range s.cfg.Children {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.keep(ctx, spec, readyCh); err != nil {
				cancel(err)
			}
		}()
	}
	go func() {
		for range s.cfg.Children {
			select {
			case <-readyCh:
			case <-ctx.Done():
				return
			}
		}
		close(s.ready)
	}()
	wg.Wait()
	cancel(nil)
	<-notifierDone
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// keep runs one child until ctx ends, restarting it after unexpected exits.
func (s *Supervisor) keep(ctx context.Context, spec Spec, readyCh chan<- string) error {
	const (
		minBackoff = 100 * time.Millisecond
		maxBackoff = 10 * time.Second
		stableRun  = 30 * time.Second
	)
	backoff := minBackoff
	everReady := false
	addr := ""
	for attempt := 0; ; attempt++ {
		started := time.Now()
		args := spec.Args
		if addr != "" && spec.ListenFlag != "" {
			args = append(slices.Clone(args), spec.ListenFlag, addr)
		}
		exitErr, boundAddr, err := s.runOnce(ctx, spec, args, attempt, func() {
			if !everReady {
				everReady = true
				readyCh <- spec.Name
			}
		})
		if boundAddr != "" {
			addr = boundAddr
		}
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done(): // stopped on purpose
			s.update(spec.Name, func(st *Status) { st.State, st.PID = Stopped, 0 })
			return nil
		default:
		}
		if !everReady {
			return fmt.Errorf("%s exited before it was ready: %v", spec.Name, describeExit(exitErr))
		}
		if time.Since(started) > stableRun {
			backoff = minBackoff
		}
		s.cfg.Logger.Warn("child exited; restarting", "child", spec.Name, "exit", describeExit(exitErr), "in", backoff)
		s.update(spec.Name, func(st *Status) { st.State, st.PID = Restarting, 0; st.Restarts++ })
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			s.update(spec.Name, func(st *Status) { st.State = Stopped })
			return nil
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// runOnce starts the child, waits for it to become ready (calling onReady), and
// returns when it exits or, after ctx ends, once it has been stopped.
func (s *Supervisor) runOnce(ctx context.Context, spec Spec, args []string, attempt int, onReady func()) (exitErr error, addr string, err error) {
	cmd := exec.Command(s.cfg.Executable, args...)
	cmd.Env = append(append(os.Environ(), spec.Env...), NotifyFDEnv+"=3")
	cmd.SysProcAttr = sysProcAttr()
	notifyR, notifyW, err := os.Pipe()
	if err != nil {
		return nil, "", fmt.Errorf("start %s: %w", spec.Name, err)
	}
	cmd.ExtraFiles = []*os.File{notifyW}
	stdout, _ := cmd.StdoutPipe()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		notifyR.Close()
		notifyW.Close()
		return nil, "", fmt.Errorf("start %s: %w", spec.Name, err)
	}
	notifyW.Close()
	pid := cmd.Process.Pid
	s.update(spec.Name, func(st *Status) { st.State, st.PID = Starting, pid })
	s.cfg.Logger.Debug("child started", "child", spec.Name, "pid", pid, "attempt", attempt)

	var copying sync.WaitGroup
	copying.Add(2)
	go func() { defer copying.Done(); s.copyLines(spec.Name, stdout) }()
	go func() { defer copying.Done(); s.copyLines(spec.Name, stderr) }()

	exited := make(chan error, 1)
	go func() {
		copying.Wait() // Wait closes the pipes: read them to the end first
		exited <- cmd.Wait()
	}()

	announced := make(chan string, 1)
	go func() {
		defer notifyR.Close()
		var a announcement
		if json.NewDecoder(notifyR).Decode(&a) == nil && a.Addr != "" {
			announced <- a.Addr
		}
	}()

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	readyC := make(chan struct{})
	go func() {
		select {
		case a := <-announced:
			addr = a
			s.update(spec.Name, func(st *Status) { st.Addr = a })
			if waitReady(watchCtx, "http://"+a+"/readyz", s.cfg.ReadyTimeout) {
				close(readyC)
			}
		case <-watchCtx.Done():
		}
	}()

	for {
		select {
		case <-readyC:
			readyC = nil
			s.update(spec.Name, func(st *Status) { st.State = Ready })
			onReady()
		case e := <-exited:
			return e, addr, nil
		case <-ctx.Done():
			s.update(spec.Name, func(st *Status) { st.State = Stopping })
			return stop(cmd.Process, s.cfg.StopTimeout, exited), addr, nil
		}
	}
}

// stop sends SIGTERM, waits for the exit up to timeout, then kills; it returns the
// child's exit.
func stop(p *os.Process, timeout time.Duration, exited <-chan error) error {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		return err
	case <-time.After(timeout):
		_ = p.Kill()
		return <-exited
	}
}

func waitReady(ctx context.Context, url string, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

func (s *Supervisor) copyLines(name string, r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	prefix := []byte(fmt.Sprintf("%-13s| ", name))
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			line = []byte(strings.TrimRight(string(line), "\r\n"))
			if s.cfg.Tap != nil {
				s.cfg.Tap(name, line)
			}
			if s.cfg.Format != nil {
				line = s.cfg.Format(line)
			}
			if line != nil {
				s.outMu.Lock()
				_, _ = s.cfg.Output.Write(append(append(append([]byte{}, prefix...), line...), '\n'))
				s.outMu.Unlock()
			}
		}
		if err != nil {
			return
		}
	}
}

func describeExit(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
