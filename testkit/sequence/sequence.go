// Package sequence holds a flow to the conversation it is meant to have: a test
// drives the flow, and Golden compares the flow's sequence diagram — drawn from
// its trace without timings, in causal order (diagram.NormalSequence), so that
// parallel branches and asynchronous deliveries may come in any order — with a
// Mermaid file committed beside the test. A change to the conversation (a call
// added, an event no longer sent, a step reordered) fails the test with the lines
// that differ; run the test with -sequence.update to accept it and rewrite the
// file, then review the file's diff as part of the change.
//
//	id, h := platformtest.Traced()
//	// ... send the flow's first request with header h ...
//	sequence.Golden(t, "testdata/checkout.mmd", func() observe.Trace { return sys.Trace(id) })
package sequence

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/diagram"
	"github.com/switchyard/switchyard/observe"
)

var update = flag.Bool("sequence.update", false, "rewrite golden sequence diagrams with what the flows draw now")

// Options shape a comparison.
type Options struct {
	// Statements keeps the calls to databases in the diagram.
	Statements bool
	// Within is how long the flow's spans have to arrive and draw the golden [20s].
	Within time.Duration
}

// Golden waits for the trace that trace returns to draw the sequence in the file
// at path, and fails t with the difference if it does not within the time. With
// updating on, it waits for the trace to stop growing and writes what it draws.
func Golden(t testing.TB, path string, trace func() observe.Trace, opts ...Options) {
	t.Helper()
	var opt Options
	if len(opts) > 0 {
		opt = opts[0]
	}
	if opt.Within <= 0 {
		opt.Within = 20 * time.Second
	}
	draw := func() string {
		var b bytes.Buffer
		_ = diagram.NormalSequence(trace(), diagram.NormalOptions{Statements: opt.Statements}).Mermaid(&b)
		return b.String()
	}
	if *update {
		got := settled(trace, draw, opt.Within)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil { //nolint:gosec // a golden file is committed, read by all
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
		return
	}
	wantBytes, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -sequence.update to write it)", err)
	}
	want := string(wantBytes)
	deadline := time.Now().Add(opt.Within)
	got := draw()
	for got != want && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		got = draw()
	}
	if got != want {
		t.Errorf("the flow's sequence differs from %s (- golden, + now; -sequence.update rewrites it):\n%s", path, Diff(want, got))
	}
}

// settled draws the trace once it has stopped growing: no new span for two
// seconds (exporters send in batches of one second), or the time is up.
func settled(trace func() observe.Trace, draw func() string, within time.Duration) string {
	deadline := time.Now().Add(within)
	last, since := -1, time.Now()
	for time.Now().Before(deadline) {
		n := len(trace().Spans)
		if n != last {
			last, since = n, time.Now()
		} else if n > 0 && time.Since(since) >= 2*time.Second {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return draw()
}

// Diff shows how b differs from a, line by line: lines only in a with "- ", only
// in b with "+ ", and the lines around each change with "  ".
func Diff(a, b string) string {
	x, y := strings.Split(strings.TrimSuffix(a, "\n"), "\n"), strings.Split(strings.TrimSuffix(b, "\n"), "\n")
	// The longest common subsequence, by dynamic programming: golden files are
	// tens of lines.
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		op   byte
		text string
	}
	var lines []line
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			lines = append(lines, line{' ', x[i]})
			i, j = i+1, j+1
		case i < len(x) && (j == len(y) || lcs[i+1][j] >= lcs[i][j+1]):
			lines = append(lines, line{'-', x[i]})
			i++
		default:
			lines = append(lines, line{'+', y[j]})
			j++
		}
	}
	const context = 2
	show := make([]bool, len(lines))
	for k, l := range lines {
		if l.op != ' ' {
			for c := max(k-context, 0); c <= min(k+context, len(lines)-1); c++ {
				show[c] = true
			}
		}
	}
	var out strings.Builder
	for k, l := range lines {
		if !show[k] {
			continue
		}
		if k > 0 && !show[k-1] && out.Len() > 0 {
			out.WriteString("  ...\n")
		}
		fmt.Fprintf(&out, "%c %s\n", l.op, l.text)
	}
	return out.String()
}
