package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/store/storetest"
)

// binary is the switchyard executable the end-to-end tests run, built once.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchyard-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "switchyard")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build switchyard:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// platformFile is a platform like the built-in one, on free ports.
const platformFile = `version: 1
services:
  users:
    listen: 127.0.0.1:0
  catalog:
    listen: 127.0.0.1:0
`

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

type stack struct {
	t       *testing.T
	cmd     *exec.Cmd
	dir     string
	out     *lockedBuffer
	exited  chan struct{} // closed when the process has exited
	waitErr error         // its exit, valid once exited is closed
}

// startUp runs `switchyard up` in a fresh directory holding platform and waits for
// the ready table, which must come within 10 seconds.
func startUp(t *testing.T, platform string, extraEnv ...string) *stack {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "switchyard.yaml"), []byte(platform), 0o600); err != nil {
		t.Fatal(err)
	}
	return upIn(t, binary, "switchyard", dir, extraEnv...)
}

// upIn runs `<bin> up` in dir (an application named app) until t ends, and
// returns once it is ready.
func upIn(t *testing.T, bin, app, dir string, extraEnv ...string) *stack {
	t.Helper()
	out := &lockedBuffer{}
	cmd := exec.Command(bin, "up")
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "SWITCHYARD_HUB=127.0.0.1:0"}, extraEnv...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, cmd: cmd, dir: dir, out: out, exited: make(chan struct{})}
	go func() { s.waitErr = cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("switchyard up output:\n%s", out.String())
		}
	})
	deadline := time.After(30 * time.Second)
	for !strings.Contains(out.String(), app+" is up") {
		select {
		case <-s.exited:
			t.Fatalf("up exited before it was ready (%v):\n%s", s.waitErr, out.String())
		case <-deadline:
			t.Fatalf("no ready table within 30s:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return s
}

type stackJSON struct {
	PID      int `json:"pid"`
	Services []struct {
		Name  string `json:"name"`
		URL   string `json:"url"`
		PID   int    `json:"pid"`
		State string `json:"state"`
	} `json:"services"`
	Broker struct {
		URL string `json:"url"`
	} `json:"broker"`
	Hub string `json:"hub"`
}

func (s *stack) read() stackJSON {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, ".switchyard", "stack.json"))
	if err != nil {
		s.t.Fatal(err)
	}
	var st stackJSON
	if err := json.Unmarshal(b, &st); err != nil {
		s.t.Fatal(err)
	}
	return st
}

func (s *stack) service(name string) (url string, pid int) {
	s.t.Helper()
	for _, svc := range s.read().Services {
		if svc.Name == name {
			return svc.URL, svc.PID
		}
	}
	s.t.Fatalf("no %s in stack.json", name)
	return "", 0
}

func call(t *testing.T, method, url, token, body string) (int, map[string]any) {
	t.Helper()
	return callHeaders(t, method, url, token, body, nil)
}

func callHeaders(t *testing.T, method, url, token, body string, headers map[string]string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	// A zombie still answers signal 0; it is dead for our purpose.
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err != nil || !strings.Contains(string(b), ") Z ")
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) time.Duration {
	t.Helper()
	began := time.Now()
	for !cond() {
		if time.Since(began) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return time.Since(began)
}

func ready(url string) bool {
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// The newcomer's path, then the two failures the foundation must survive: a service
// killed outright, and Ctrl-C.
func TestUpRunsThePlatformAndSurvivesAKilledService(t *testing.T) {
	targets := map[string][]string{"sqlite": nil}
	if server := os.Getenv(storetest.PostgresEnv); server != "" {
		targets["postgres"] = []string{"DATABASE_URL=" + storetest.PostgresDatabase(t, server)}
	}
	for name, extraEnv := range targets {
		t.Run(name, func(t *testing.T) {
			s := startUp(t, platformFile, extraEnv...)
			if name == "postgres" {
				dropServiceDatabases(t, extraEnv[0])
			}
			usersURL, usersPID := s.service("users")
			catalogURL, _ := s.service("catalog")

			code, _ := call(t, "POST", usersURL+"/v1/auth/register", "", `{"email":"ann@example.com","password":"correct-horse-battery","name":"Ann"}`)
			if code != 201 {
				t.Fatalf("register: %d", code)
			}
			code, login := call(t, "POST", usersURL+"/v1/auth/login", "", `{"email":"ann@example.com","password":"correct-horse-battery"}`)
			if code != 200 {
				t.Fatalf("login: %d", code)
			}
			token := login["access_token"].(string)
			if code, me := call(t, "GET", usersURL+"/v1/users/me", token, ""); code != 200 || me["email"] != "ann@example.com" {
				t.Fatalf("me: %d %v", code, me)
			}
			if code, products := call(t, "GET", catalogURL+"/v1/products", "", ""); code != 200 || len(products["items"].([]any)) == 0 {
				t.Fatalf("products: %d %v", code, products)
			}

			// kill -9 users: back and ready within 5 s, on the same URL, data intact.
			if err := syscall.Kill(usersPID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			took := waitUntil(t, "users restarted and ready", 5*time.Second, func() bool {
				url, pid := s.service("users")
				return pid != 0 && pid != usersPID && url == usersURL && ready(url)
			})
			t.Logf("users back and ready %s after kill -9", took.Round(time.Millisecond))
			if code, me := call(t, "GET", usersURL+"/v1/users/me", token, ""); code != 200 || me["email"] != "ann@example.com" {
				t.Errorf("token issued before the crash: %d %v", code, me)
			}
			if code, _ := call(t, "POST", usersURL+"/v1/auth/login", "", `{"email":"ann@example.com","password":"correct-horse-battery"}`); code != 200 {
				t.Errorf("login after the crash: %d", code)
			}

			// Ctrl-C: every child gone within 10 s, exit status 0.
			var pids []int
			for _, svc := range s.read().Services {
				pids = append(pids, svc.PID)
			}
			began := time.Now()
			if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			select {
			case <-s.exited:
				if s.waitErr != nil {
					t.Errorf("up exited with %v after Ctrl-C", s.waitErr)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("up still running 10s after Ctrl-C")
			}
			for _, pid := range pids {
				if alive(pid) {
					t.Errorf("child %d outlived up", pid)
				}
			}
			t.Logf("stopped in %s", time.Since(began).Round(time.Millisecond))
			if _, err := os.Stat(filepath.Join(s.dir, ".switchyard", "stack.json")); !os.IsNotExist(err) {
				t.Error("stack.json left behind by a stopped stack")
			}
		})
	}
}

// dropServiceDatabases removes the per-service databases derived from a test
// DATABASE_URL when the test ends.
func dropServiceDatabases(t *testing.T, databaseURLEnv string) {
	t.Helper()
	server := os.Getenv(storetest.PostgresEnv)
	base := strings.TrimPrefix(databaseURLEnv, "DATABASE_URL=")
	for _, svc := range []string{"users", "catalog"} {
		storetest.DropOnCleanup(t, server, config.PerServiceDatabase(base, svc))
	}
}

// A supervisor killed outright (no chance to stop its children) still leaves no
// orphans: the kernel signals them.
func TestChildrenDieWithAKilledUp(t *testing.T) {
	s := startUp(t, platformFile)
	var pids []int
	for _, svc := range s.read().Services {
		pids = append(pids, svc.PID)
	}
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.exited
	waitUntil(t, "children gone after up was killed", 10*time.Second, func() bool {
		for _, pid := range pids {
			if alive(pid) {
				return false
			}
		}
		return true
	})
}

func TestASecondUpOnTheSameDataDirIsRefused(t *testing.T) {
	s := startUp(t, platformFile)
	cmd := execIn(s.dir, "up")
	out, err := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 {
		t.Fatalf("second up: exit %d, %v", code, err)
	}
	if !strings.Contains(string(out), "another switchyard up") {
		t.Errorf("message: %s", out)
	}
}

func execIn(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	return cmd
}
