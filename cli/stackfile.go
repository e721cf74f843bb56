package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/supervisor"
)

// stackFile is <data dir>/stack.json: how the operator commands find a running local
// stack. It holds the broker's credentials, so it is written owner-only.
type stackFile struct {
	Path      string      `json:"-"`
	PID       int         `json:"pid"`
	StartedAt time.Time   `json:"started_at"`
	Config    string      `json:"config,omitempty"`
	DataDir   string      `json:"data_dir"`
	Broker    stackBroker `json:"broker"`
	// Hub is the URL of the trace and log hub.
	Hub      string         `json:"hub,omitempty"`
	Services []stackService `json:"services"`
}

type stackBroker struct {
	Kind     string `json:"kind"`
	URL      string `json:"url,omitempty"`
	Embedded bool   `json:"embedded"`
}

type stackService struct {
	Name     string           `json:"name"`
	URL      string           `json:"url,omitempty"`
	PID      int              `json:"pid,omitempty"`
	State    supervisor.State `json:"state"`
	Restarts int              `json:"restarts"`
}

// write replaces the file atomically with the current statuses.
func (s *stackFile) write(status []supervisor.Status) error {
	s.Services = s.Services[:0]
	for _, st := range status {
		svc := stackService{Name: st.Name, PID: st.PID, State: st.State, Restarts: st.Restarts}
		if st.Addr != "" {
			svc.URL = "http://" + st.Addr
		}
		s.Services = append(s.Services, svc)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.Path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.Path)
}

// lockStack makes sure one `up` at a time uses dataDir.
func lockStack(dataDir string) (func(), error) {
	path := filepath.Join(dataDir, "up.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		holder := strings.TrimSpace(string(b))
		if holder == "" {
			holder = "another process"
		} else {
			holder = "pid " + holder
		}
		return nil, fmt.Errorf("another switchyard up (%s) is using %s; stop it or set SWITCHYARD_DATA_DIR", holder, dataDir)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// ServiceURLs finds services' base URLs: from the running local stack
// (stack.json), else from the platform's listen addresses.
func (e *Env) ServiceURLs(cfg *config.Config, names ...string) (map[string]string, error) {
	out := map[string]string{}
	if st, err := readStack(cfg.DataDir); err == nil {
		for _, s := range st.Services {
			if s.URL != "" {
				out[s.Name] = s.URL
			}
		}
	}
	for _, n := range names {
		if out[n] != "" {
			continue
		}
		svc := cfg.Process(n)
		if svc == nil {
			return nil, fmt.Errorf("the platform has no %s service", n)
		}
		out[n] = "http://" + svc.Listen
	}
	return out, nil
}
