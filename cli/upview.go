package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/switchyard/switchyard/internal/supervisor"
	"github.com/switchyard/switchyard/telemetry"
)

// ANSI colours, written only where Env.Colour allows.
const (
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiReset  = "\x1b[0m"
)

func paint(colour bool, code, s string) string {
	if !colour {
		return s
	}
	return code + s + ansiReset
}

// terminalLine is how up shows a person one line a service wrote: its warnings
// and errors rendered (coloured when colour is set), anything that is not a JSON
// log record (a crash's trace) as it is, and nothing else — a nil result. Every
// line stays in the hub, for switchyard logs.
func terminalLine(colour bool) func([]byte) []byte {
	return func(line []byte) []byte {
		trimmed := bytes.TrimSpace(line)
		if len(trimmed) == 0 {
			return nil
		}
		if trimmed[0] != '{' {
			return line
		}
		var rec struct {
			Level string `json:"level"`
		}
		if json.Unmarshal(trimmed, &rec) != nil {
			return line
		}
		var code string
		switch {
		case strings.HasPrefix(rec.Level, "ERROR"):
			code = ansiRed
		case strings.HasPrefix(rec.Level, "WARN"):
			code = ansiYellow
		default:
			return nil
		}
		return []byte(paint(colour, code, string(telemetry.Render(trimmed))))
	}
}

// stateLines tells a person on a terminal how up's children change state:
// starting, ready, stopped (up's own log says when one exited and is restarted). It remembers what it last said of each.
// It is called from the supervisor's OnChange and before the ready table.
type stateLines struct {
	w      io.Writer
	colour bool
	mu     sync.Mutex
	last   map[string]supervisor.Status
}

func (s *stateLines) changed(status []supervisor.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		s.last = map[string]supervisor.Status{}
	}
	for _, st := range status {
		before, seen := s.last[st.Name]
		if seen && st.Since.Before(before.Since) {
			continue // an older snapshot, delivered late
		}
		s.last[st.Name] = st
		if seen && before.State == st.State && before.PID == st.PID {
			continue
		}
		var say string
		switch st.State {
		case supervisor.Starting:
			if st.PID == 0 {
				continue
			}
			say = fmt.Sprintf("starting (pid %d)", st.PID)
		case supervisor.Ready:
			say = paint(s.colour, ansiGreen, "ready") + " at http://" + st.Addr
		case supervisor.Stopped:
			say = "stopped"
		default:
			continue
		}
		fmt.Fprintf(s.w, "%-13s| %s\n", st.Name, say)
	}
}
