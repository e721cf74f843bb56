package faults

import (
	"bufio"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/traffic"
)

// Entry is one scheduled request of the load's timeline (`switchyard load
// --timeline`): when (Unix milliseconds), its outcome (accepted, refused,
// failed, not sent) and latency.
type Entry struct {
	At        int64   `json:"at"`
	Outcome   string  `json:"outcome"`
	LatencyMS float64 `json:"latency_ms,omitempty"`
}

// ReadTimeline reads a timeline file's lines.
func ReadTimeline(r io.Reader) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("timeline line %d: %w", line, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// Applied is a fault as the run brought it.
type Applied struct {
	Fault Fault `json:"fault"`
	// Start and End are offsets from the load's start.
	Start time.Duration `json:"start"`
	End   time.Duration `json:"end"`
	// Error says why the fault could not be brought, if it could not.
	Error string `json:"error,omitempty"`
	// Detail is what the fault did, where there is more to say (deliveries).
	Detail string `json:"detail,omitempty"`
	// Ready is how long after the fault ended every process answered /readyz
	// with 200 again.
	Ready time.Duration `json:"ready"`
	// Poison is how many poison events a poison fault published.
	Poison int `json:"poison,omitempty"`
}

// Window is a stretch of the run and how the requests in it fared.
type Window struct {
	Name      string        `json:"name"`
	From      time.Duration `json:"from"`
	To        time.Duration `json:"to"`
	Requests  int           `json:"requests"`
	Failed    int           `json:"failed"`
	ErrorRate float64       `json:"error_rate"`
	P99       time.Duration `json:"p99"`
	// Recovered, for a fault's window, is how long after the fault ended its last
	// failed request was scheduled (0: none failed after it ended).
	Recovered time.Duration `json:"recovered,omitempty"`
}

// Second is one second of the run.
type Second struct {
	At                               int `json:"at"`
	Offered, Accepted, Refused, Fail int
	P99MS                            float64 `json:"p99_ms"`
}

// Verdict is one assertion's outcome.
type Verdict struct {
	Name   string `json:"name"`
	Held   bool   `json:"held"`
	Detail string `json:"detail"`
}

// Result is a run's outcome, as result.json holds it.
type Result struct {
	Scenario string    `json:"scenario"`
	Source   string    `json:"source"`
	Seed     uint64    `json:"seed,omitempty"`
	Started  time.Time `json:"started"`
	Load     Load      `json:"load"`
	Faults   []Applied `json:"faults"`
	Windows  []Window  `json:"windows"`
	Seconds  []Second  `json:"seconds"`
	Verdicts []Verdict `json:"verdicts"`
	Held     bool      `json:"held"`
	// Usage is each compared process's usage before the load and after the run.
	Usage map[string][2]usage `json:"usage,omitempty"`
}

// failed says whether an outcome counts against the error rate: a failure, or a
// request the load could not even send. A refusal (4xx: a rate limit, a
// business no) is an answer.
func failed(outcome string) bool { return outcome == "failed" || outcome == "not sent" }

// window summarises the entries scheduled in [from, to) after start.
func window(name string, entries []Entry, start time.Time, from, to time.Duration) Window {
	w := Window{Name: name, From: from, To: to}
	var lat []time.Duration
	for _, e := range entries {
		at := time.UnixMilli(e.At).Sub(start)
		if at < from || at >= to {
			continue
		}
		w.Requests++
		if failed(e.Outcome) {
			w.Failed++
		}
		if e.Outcome == "accepted" {
			lat = append(lat, time.Duration(e.LatencyMS*float64(time.Millisecond)))
		}
	}
	if w.Requests > 0 {
		w.ErrorRate = float64(w.Failed) / float64(w.Requests)
	}
	w.P99 = traffic.Percentile(lat, 0.99)
	return w
}

// Judge fills the result's windows, seconds and the timeline's verdicts: one
// window per fault (from its start to its end plus recovery) and one after the
// last, each held to the scenario's bounds.
func (r *Result) Judge(s *Scenario, entries []Entry) {
	recovery := s.Assert.Recovery.Or(5 * time.Second)
	var last time.Duration
	for i, a := range r.Faults {
		w := window(fmt.Sprintf("fault %d: %s", i+1, a.Fault), entries, r.Started, a.Start, a.End+recovery)
		w.Recovered = lastFailure(entries, r.Started, a.End, a.End+recovery) - a.End
		r.Windows = append(r.Windows, w)
		last = max(last, a.End+recovery)
		if b := s.Assert.ErrorRate.During; b != nil {
			r.verdict(fmt.Sprintf("error rate during fault %d ≤ %.2g%%", i+1, 100**b), w.ErrorRate <= *b,
				"%.2f%% of %d requests failed", 100*w.ErrorRate, w.Requests)
		}
	}
	end := time.Duration(0)
	if len(entries) > 0 {
		end = time.UnixMilli(entries[len(entries)-1].At).Sub(r.Started) + time.Millisecond
	}
	after := window("after the faults", entries, r.Started, last, max(end, last))
	r.Windows = append(r.Windows, after)
	if after.Requests == 0 && (s.Assert.ErrorRate.After != nil || s.Assert.P99 > 0) {
		// A bound on nothing would hold vacuously.
		r.verdict("requests after the faults", false,
			"the load ended %s into the run, before the last fault's window did (%s): lengthen it, or shorten the recovery", end.Round(time.Second), last)
	}
	if b := s.Assert.ErrorRate.After; b != nil {
		r.verdict(fmt.Sprintf("error rate after the faults ≤ %.2g%%", 100**b), after.ErrorRate <= *b,
			"%.2f%% of %d requests failed", 100*after.ErrorRate, after.Requests)
	}
	if p := s.Assert.P99.Std(); p > 0 {
		r.verdict(fmt.Sprintf("p99 after the faults ≤ %s", p), after.P99 <= p, "p99 %s over %d requests", after.P99.Round(time.Millisecond), after.Requests)
	}
	for i, a := range r.Faults {
		if a.Error != "" {
			r.verdict(fmt.Sprintf("fault %d brought", i+1), false, "%s", a.Error)
		}
		if d := s.Assert.Ready.Std(); d > 0 && a.Error == "" {
			r.verdict(fmt.Sprintf("every process ready ≤ %s after fault %d", d, i+1), a.Ready <= d, "ready %s after it ended", a.Ready.Round(10*time.Millisecond))
		}
	}
	r.Seconds = seconds(entries, r.Started)
}

// lastFailure is the latest failed request scheduled in [from, to), or from
// when none failed.
func lastFailure(entries []Entry, start time.Time, from, to time.Duration) time.Duration {
	last := from
	for _, e := range entries {
		if at := time.UnixMilli(e.At).Sub(start); at >= from && at < to && failed(e.Outcome) {
			last = max(last, at)
		}
	}
	return last
}

func (r *Result) verdict(name string, held bool, format string, args ...any) {
	r.Verdicts = append(r.Verdicts, Verdict{Name: name, Held: held, Detail: fmt.Sprintf(format, args...)})
}

// Settle records whether every verdict held.
func (r *Result) Settle() {
	r.Held = true
	for _, v := range r.Verdicts {
		r.Held = r.Held && v.Held
	}
}

func seconds(entries []Entry, start time.Time) []Second {
	var out []Second
	lat := map[int][]time.Duration{}
	for _, e := range entries {
		at := int(time.UnixMilli(e.At).Sub(start) / time.Second)
		if at < 0 {
			continue
		}
		for len(out) <= at {
			out = append(out, Second{At: len(out)})
		}
		s := &out[at]
		s.Offered++
		switch e.Outcome {
		case "accepted":
			s.Accepted++
			lat[at] = append(lat[at], time.Duration(e.LatencyMS*float64(time.Millisecond)))
		case "refused":
			s.Refused++
		default:
			s.Fail++
		}
	}
	for i := range out {
		out[i].P99MS = float64(traffic.Percentile(lat[i], 0.99).Microseconds()) / 1000
	}
	return out
}

// Text writes the report for a terminal.
func (r *Result) Text(w io.Writer) error {
	var b strings.Builder
	verdict := "HELD"
	if !r.Held {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "faults: %s — %s\n", r.Scenario, verdict)
	if r.Seed != 0 {
		fmt.Fprintf(&b, "  seed %d (--seed %d replays this schedule)\n", r.Seed, r.Seed)
	}
	fmt.Fprintf(&b, "  load %g/s for %s\n", r.Load.Rate, r.Load.Duration)
	for i, a := range r.Faults {
		fmt.Fprintf(&b, "  fault %d: %s (brought at %s, over at %s, every process ready %s later)", i+1, a.Fault,
			a.Start.Round(time.Millisecond), a.End.Round(time.Millisecond), a.Ready.Round(10*time.Millisecond))
		if a.Detail != "" {
			fmt.Fprintf(&b, ": %s", a.Detail)
		}
		b.WriteString("\n")
	}
	for _, win := range r.Windows {
		fmt.Fprintf(&b, "  %-40s %5d requests  %6.2f%% failed  p99 %s", win.Name, win.Requests, 100*win.ErrorRate, win.P99.Round(time.Millisecond))
		if win.Recovered > 0 {
			fmt.Fprintf(&b, "  last failure %s after the fault ended", win.Recovered.Round(100*time.Millisecond))
		}
		b.WriteString("\n")
	}
	for _, v := range r.Verdicts {
		mark := "ok  "
		if !v.Held {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "  %s %s: %s\n", mark, v.Name, firstLines(v.Detail, 12))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], fmt.Sprintf("… %d more lines", len(lines)-n))
	}
	return strings.Join(lines, "\n       ")
}

// SVG draws the run: per second, accepted (green), refused (amber) and failed
// (red) requests stacked, the p99 of accepted ones as a line, and each fault's
// window shaded and named.
func (r *Result) SVG(w io.Writer) error {
	const width, height, left, right, top, bottom = 960.0, 360.0, 50.0, 60.0, 30.0, 40.0
	plotW, plotH := width-left-right, height-top-bottom
	n := max(len(r.Seconds), 1)
	most, slowest := 1, 1.0
	for _, s := range r.Seconds {
		most = max(most, s.Offered)
		slowest = math.Max(slowest, s.P99MS)
	}
	x := func(sec float64) float64 { return left + plotW*sec/float64(n) }
	y := func(v float64) float64 { return top + plotH - plotH*v/float64(most) }
	yp := func(ms float64) float64 { return top + plotH - plotH*ms/slowest }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="%.0f" y="18" font-size="13">%s — %s</text>`+"\n", left, html.EscapeString(r.Scenario), map[bool]string{true: "held", false: "FAILED"}[r.Held])
	for i, a := range r.Faults {
		x0, x1 := x(a.Start.Seconds()), x(math.Max(a.End.Seconds(), a.Start.Seconds()+0.3))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="#8888ff" fill-opacity="0.25"/>`, x0, top, x1-x0, plotH)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" fill="#3333aa">%d: %s %s</text>`+"\n", x0+2, top+12+float64(i%4)*12, i+1, a.Fault.Kind(), html.EscapeString(a.Fault.Target()))
	}
	bar := plotW / float64(n)
	for _, s := range r.Seconds {
		base := 0
		for _, part := range []struct {
			v     int
			color string
		}{{s.Accepted, "#3a9d5d"}, {s.Refused, "#e0a030"}, {s.Fail, "#d04040"}} {
			if part.v == 0 {
				continue
			}
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, x(float64(s.At)), y(float64(base+part.v)), math.Max(bar-1, 0.5), y(float64(base))-y(float64(base+part.v)), part.color)
			base += part.v
		}
	}
	b.WriteString("\n<polyline fill=\"none\" stroke=\"black\" stroke-width=\"1.5\" points=\"")
	for _, s := range r.Seconds {
		fmt.Fprintf(&b, "%.1f,%.1f ", x(float64(s.At)+0.5), yp(s.P99MS))
	}
	b.WriteString("\"/>\n")
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#444"/>`, left, top+plotH, left+plotW, top+plotH)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">0 s</text><text x="%.0f" y="%.0f" text-anchor="end">%d s</text>`, left, height-bottom+14, left+plotW, height-bottom+14, n)
	fmt.Fprintf(&b, `<text x="4" y="%.0f">%d/s</text><text x="%.0f" y="%.0f">p99 %.0f ms</text>`, top+10, most, left+plotW+4, top+10, slowest)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f"><tspan fill="#3a9d5d">■ accepted</tspan>  <tspan fill="#e0a030">■ refused</tspan>  <tspan fill="#d04040">■ failed</tspan>  — p99 of accepted  <tspan fill="#3333aa">▮ faults</tspan></text>`, left, height-8)
	b.WriteString("\n</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
