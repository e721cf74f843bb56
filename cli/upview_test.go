package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/supervisor"
)

func TestUpOnATerminalShowsWarningsAndErrorsOnly(t *testing.T) {
	info := []byte(`{"time":"2026-12-03T20:00:00Z","level":"INFO","msg":"request","service":"orders","route":"/v1/orders","status":200}`)
	warn := []byte(`{"time":"2026-12-03T20:00:00Z","level":"WARN","msg":"breaker open","service":"orders","dependency":"payments"}`)
	failed := []byte(`{"time":"2026-12-03T20:00:00Z","level":"ERROR","msg":"publish","service":"orders","error":"no broker"}`)
	crash := []byte("panic: runtime error: index out of range")
	plain, coloured := terminalLine(false), terminalLine(true)
	if got := plain(info); got != nil {
		t.Errorf("an info line is shown: %q", got)
	}
	if got := plain([]byte("  ")); got != nil {
		t.Errorf("a blank line is shown: %q", got)
	}
	if got := string(plain(crash)); got != string(crash) {
		t.Errorf("a line that is not JSON becomes %q", got)
	}
	for _, line := range [][]byte{warn, failed} {
		got := string(plain(line))
		if strings.Contains(got, "{") || strings.Contains(got, "\x1b") || strings.Contains(got, "service=") {
			t.Errorf("without colour, %s renders as %q", line, got)
		}
	}
	if got := string(plain(warn)); !strings.Contains(got, "WARN  breaker open dependency=payments") {
		t.Errorf("warning rendered %q", got)
	}
	if got := string(coloured(warn)); !strings.HasPrefix(got, ansiYellow) || !strings.HasSuffix(got, ansiReset) {
		t.Errorf("in colour, a warning is %q", got)
	}
	if got := string(coloured(failed)); !strings.HasPrefix(got, ansiRed) || !strings.Contains(got, "error=\"no broker\"") {
		t.Errorf("in colour, an error is %q", got)
	}
}

func TestUpOnATerminalSaysEachStateChangeOnce(t *testing.T) {
	var out bytes.Buffer
	s := &stateLines{w: &out}
	t0 := time.Now()
	at := func(d int) time.Time { return t0.Add(time.Duration(d) * time.Millisecond) }
	s.changed([]supervisor.Status{{Name: "orders", State: supervisor.Starting, Since: at(0)}}) // no pid yet
	s.changed([]supervisor.Status{{Name: "orders", State: supervisor.Starting, PID: 41, Since: at(1)}})
	s.changed([]supervisor.Status{{Name: "orders", State: supervisor.Starting, PID: 41, Since: at(1)}}) // again
	s.changed([]supervisor.Status{{Name: "orders", State: supervisor.Ready, PID: 41, Addr: "127.0.0.1:9", Since: at(2)}})
	s.changed([]supervisor.Status{{Name: "orders", State: supervisor.Starting, PID: 41, Since: at(1)}}) // late
	s.changed([]supervisor.Status{{Name: "orders", State: supervisor.Restarting, Restarts: 1, Since: at(3)}})
	s.changed([]supervisor.Status{{Name: "orders", State: supervisor.Starting, PID: 42, Since: at(4)}})
	s.changed([]supervisor.Status{{Name: "orders", State: supervisor.Stopped, Since: at(5)}})
	want := "orders       | starting (pid 41)\n" +
		"orders       | ready at http://127.0.0.1:9\n" +
		"orders       | starting (pid 42)\n" +
		"orders       | stopped\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestColourNeedsATerminalAndNoNOCOLOR(t *testing.T) {
	var buf bytes.Buffer
	for _, v := range []string{"", "1"} {
		e := &Env{Getenv: func(k string) string {
			if k == "NO_COLOR" {
				return v
			}
			return ""
		}}
		if e.Colour(&buf) {
			t.Errorf("NO_COLOR=%q: colour into a buffer", v)
		}
	}
}
