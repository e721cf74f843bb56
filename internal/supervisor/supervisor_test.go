package supervisor_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/supervisor"
)

// The test binary doubles as the child process: with CHILD_MODE set it behaves as a
// small service instead of running tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("CHILD_MODE"); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(m.Run())
}

func child(mode string) int {
	if mode == "exit-at-once" {
		fmt.Fprintln(os.Stderr, "config error: no such service")
		return 2
	}
	listen := "127.0.0.1:0"
	for i, a := range os.Args {
		if a == "--listen" && i+1 < len(os.Args) {
			listen = os.Args[i+1]
		}
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	term := make(chan os.Signal, 1)
	if mode == "ignore-term" {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(term, syscall.SIGTERM)
	}
	if err := supervisor.Announce(os.Getenv, ln.Addr().String()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("{\"msg\":\"serving\",\"addr\":%q}\n", ln.Addr().String())
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	<-term
	fmt.Println("stopping")
	return 0
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newSupervisor(t *testing.T, out *syncBuffer, stop time.Duration, children ...supervisor.Spec) *supervisor.Supervisor {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s, err := supervisor.New(supervisor.Config{Executable: exe, Children: children, Output: out, StopTimeout: stop, ReadyTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func spec(name, mode string) supervisor.Spec {
	return supervisor.Spec{Name: name, Args: []string{"serve", name}, ListenFlag: "--listen", Env: []string{"CHILD_MODE=" + mode}}
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestChildrenStartBecomeReadyAndStopOnCancel(t *testing.T) {
	t.Parallel()
	out := &syncBuffer{}
	s := newSupervisor(t, out, 5*time.Second, spec("users", "serve"), spec("catalog", "serve"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("children never became ready")
	}
	var pids []int
	for _, st := range s.Status() {
		if st.State != supervisor.Ready || st.PID == 0 || st.Addr == "" {
			t.Errorf("status %+v", st)
		}
		pids = append(pids, st.PID)
	}
	waitFor(t, "prefixed output", 5*time.Second, func() bool {
		return strings.Contains(out.String(), "users        | {\"msg\":\"serving\"") && strings.Contains(out.String(), "catalog      | ")
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("child %d still running after Run returned", pid)
		}
	}
	if !strings.Contains(out.String(), "users        | stopping") {
		t.Errorf("children were not stopped gracefully:\n%s", out.String())
	}
}

func TestAKilledChildComesBackOnItsAddress(t *testing.T) {
	t.Parallel()
	out := &syncBuffer{}
	s := newSupervisor(t, out, 5*time.Second, spec("users", "serve"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	<-s.Ready()
	before := s.Status()[0]

	if err := syscall.Kill(before.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	waitFor(t, "restart", 5*time.Second, func() bool {
		st := s.Status()[0]
		return st.State == supervisor.Ready && st.PID != before.PID
	})
	after := s.Status()[0]
	if after.Addr != before.Addr || after.Restarts != 1 {
		t.Errorf("after restart %+v, before %+v", after, before)
	}
	t.Logf("back and ready %s after kill -9", time.Since(began).Round(time.Millisecond))
	resp, err := http.Get("http://" + after.Addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func TestAChildThatCannotStartFailsTheRun(t *testing.T) {
	t.Parallel()
	out := &syncBuffer{}
	s := newSupervisor(t, out, 5*time.Second, spec("users", "serve"), spec("broken", "exit-at-once"))
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "broken exited before it was ready") {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run kept going with a child that cannot start")
	}
	if !strings.Contains(out.String(), "broken       | config error: no such service") {
		t.Errorf("the child's reason was not shown:\n%s", out.String())
	}
	for _, st := range s.Status() {
		if st.PID != 0 && alive(st.PID) {
			t.Errorf("%s left running", st.Name)
		}
	}
}

func TestAChildIgnoringSIGTERMIsKilledAfterTheGrace(t *testing.T) {
	t.Parallel()
	out := &syncBuffer{}
	s := newSupervisor(t, out, 500*time.Millisecond, spec("stubborn", "ignore-term"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	pid := s.Status()[0].PID
	began := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run hung on a child ignoring SIGTERM")
	}
	if took := time.Since(began); took < 400*time.Millisecond || took > 3*time.Second {
		t.Errorf("stop took %s, want about the 500ms grace", took)
	}
	if alive(pid) {
		t.Error("stubborn child survived")
	}
}
