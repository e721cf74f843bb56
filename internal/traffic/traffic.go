// Package traffic sends a declared mix of requests to a platform at a rate —
// what `switchyard load` sends any system whose binary brings no load of its own.
// Requests start on an open-loop schedule (a slow platform does not slow the
// schedule: what cannot be sent within the in-flight cap is counted as not sent),
// each drawn from the mix by weight; a stream is opened and read for its
// messages. A progress line a second, then a summary per request.
package traffic

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/switchyard/switchyard/event"
	"github.com/switchyard/switchyard/internal/tmpl"
)

// Request is one kind of request of the mix.
type Request struct {
	// Name is how the summary calls it ("POST /api/v1/rides").
	Name string
	// Method and Path (a pattern: {names} are filled with new ids).
	Method, Path string
	// Stream opens a WebSocket and reads Messages messages.
	Stream   bool
	Messages int
	// Body is a JSON template ({{id}}, {{uuid}}, {{now}}); nil sends none.
	Body any
	// Weight relative to the others.
	Weight float64
}

// Config is one run.
type Config struct {
	// Target is the base URL the paths are under. Required.
	Target string
	// Rate of requests per second, over Duration. Required.
	Rate     float64
	Duration time.Duration
	// Mix is drawn from by weight. Required.
	Mix []Request
	// Header is sent with every request (an Authorization, say).
	Header http.Header
	// MaxInFlight caps requests in flight [1000].
	MaxInFlight int
	// Seed makes the draws repeatable [random].
	Seed uint64
	// Progress, when set, receives a progress line every ProgressEvery: rewritten
	// in place (a carriage return before it) when InPlace, else a line of its own.
	Progress io.Writer
	// InPlace rewrites the progress line in place: Progress is a terminal.
	InPlace bool
	// ProgressEvery is how often the progress line is written [1s when InPlace,
	// else 10s].
	ProgressEvery time.Duration
	// Client sends the requests [one pooling MaxInFlight connections].
	Client *http.Client
	// Timeline, when set, receives one JSON line per scheduled request — when it
	// was scheduled (at, Unix milliseconds), its outcome (accepted, refused,
	// failed, not sent) and latency — the shop's load writes the same lines, and
	// `switchyard faults` reads them.
	Timeline io.Writer
}

// TimelineEntry is one line of Config.Timeline.
type TimelineEntry struct {
	At        int64   `json:"at"`
	Outcome   string  `json:"outcome"`
	LatencyMS float64 `json:"latency_ms,omitempty"`
}

// Stats are one request's figures.
type Stats struct {
	Sent, OK, Refused, Failed int
	Statuses                  map[string]int // "200", "503", "transport error"
	P50, P90, P99, Max        time.Duration
	latencies                 []time.Duration
}

// Summary is a run's outcome.
type Summary struct {
	Scheduled, Sent, OK, Refused, Failed, NotSent int
	Elapsed                                       time.Duration
	// ByRequest holds each request's figures, by name.
	ByRequest map[string]*Stats
	// Errors counts what failed requests failed with.
	Errors map[string]int
	order  []string
}

type runner struct {
	cfg     Config
	mu      sync.Mutex
	stats   map[string]*Stats
	errors  map[string]int
	ok      atomic.Int64
	refused atomic.Int64
	failed  atomic.Int64
	notSent atomic.Int64
	recent  []time.Duration // latencies of the last two seconds' worth, for progress

	timeline sync.Mutex // serialises Config.Timeline's lines
}

// Run sends the traffic until Duration is over (or ctx ends), waits for the
// requests in flight, and summarises.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if cfg.Target == "" || cfg.Rate <= 0 || cfg.Duration <= 0 || len(cfg.Mix) == 0 {
		return nil, errors.New("traffic: Target, Rate, Duration and Mix are required")
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 1000
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: time.Minute, Transport: &http.Transport{
			MaxIdleConns: cfg.MaxInFlight, MaxIdleConnsPerHost: cfg.MaxInFlight, IdleConnTimeout: 30 * time.Second}}
	}
	total := 0.0
	for _, r := range cfg.Mix {
		total += r.Weight
	}
	if total <= 0 {
		return nil, errors.New("traffic: the mix's weights add up to nothing")
	}
	r := &runner{cfg: cfg, stats: map[string]*Stats{}, errors: map[string]int{}}
	for _, req := range cfg.Mix {
		r.stats[req.Name] = &Stats{Statuses: map[string]int{}}
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed>>1|1))
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	slots := make(chan struct{}, cfg.MaxInFlight)
	var wg sync.WaitGroup
	begun := time.Now()
	stop := r.progress(begun)
	scheduled := 0
schedule:
	for n := 0; ; n++ {
		at := begun.Add(time.Duration(n) * interval)
		if at.Sub(begun) >= cfg.Duration {
			break
		}
		select {
		case <-ctx.Done():
			break schedule // stopped: what was sent is summarised
		case <-time.After(time.Until(at)):
		}
		scheduled++
		req := pick(cfg.Mix, total, rng)
		select {
		case slots <- struct{}{}:
		default:
			r.notSent.Add(1)
			r.record(at, "not sent", 0)
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			r.send(ctx, req, at)
		})
	}
	wg.Wait()
	stop()
	return r.summary(scheduled, time.Since(begun)), nil
}

func pick(mix []Request, total float64, rng *rand.Rand) Request {
	n := rng.Float64() * total
	for _, r := range mix {
		if n < r.Weight {
			return r
		}
		n -= r.Weight
	}
	return mix[len(mix)-1]
}

// record writes a request's line of the timeline; the caller may hold r.mu.
func (r *runner) record(at time.Time, outcome string, took time.Duration) {
	if r.cfg.Timeline == nil {
		return
	}
	line, _ := json.Marshal(TimelineEntry{At: at.UnixMilli(), Outcome: outcome, LatencyMS: float64(took.Microseconds()) / 1000})
	r.timeline.Lock()
	defer r.timeline.Unlock()
	_, _ = r.cfg.Timeline.Write(append(line, '\n'))
}

// send makes one request and records how it went.
func (r *runner) send(ctx context.Context, req Request, at time.Time) {
	v := &tmpl.Vars{ID: event.NewID(), Path: map[string]string{}}
	url := strings.TrimSuffix(r.cfg.Target, "/") + tmpl.FillPath(req.Path, v)
	begun := time.Now()
	var status string
	var err error
	if req.Stream {
		status, err = r.stream(ctx, url, req.Messages)
	} else {
		status, err = r.call(ctx, req.Method, url, tmpl.Render(req.Body, v))
	}
	took := time.Since(begun)
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats[req.Name]
	s.Sent++
	s.Statuses[status]++
	s.latencies = append(s.latencies, took)
	r.recent = append(r.recent, took)
	if over := len(r.recent) - max(int(2*r.cfg.Rate), 100); over > 0 {
		r.recent = r.recent[over:]
	}
	code, _ := strconv.Atoi(status)
	switch {
	case err == nil && code < 400:
		s.OK++
		r.ok.Add(1)
		r.record(at, "accepted", took)
	case err == nil && code < 500:
		s.Refused++
		r.refused.Add(1)
		r.record(at, "refused", took)
	default:
		s.Failed++
		r.failed.Add(1)
		r.record(at, "failed", took)
		what := status
		if err != nil {
			what = err.Error()
		}
		r.errors[req.Name+": "+what]++
	}
}

func (r *runner) call(ctx context.Context, method, url string, body any) (string, error) {
	var payload io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return "", err
		}
		payload = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, payload)
	if err != nil {
		return "", err
	}
	maps.Copy(req.Header, r.cfg.Header)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.cfg.Client.Do(req)
	if err != nil {
		return "transport error", errors.New("transport error")
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<20))
	resp.Body.Close()
	return strconv.Itoa(resp.StatusCode), nil
}

// stream opens a WebSocket and reads n messages; "101" when all arrived.
func (r *runner) stream(ctx context.Context, url string, n int) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http"), &websocket.DialOptions{HTTPHeader: r.cfg.Header, HTTPClient: r.cfg.Client})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			return strconv.Itoa(resp.StatusCode), nil
		}
		return "transport error", errors.New("could not open the stream")
	}
	defer func() { _ = conn.CloseNow() }()
	for i := range n {
		if _, _, err := conn.Read(ctx); err != nil {
			return "stream broken", fmt.Errorf("the stream ended after %d of %d messages", i, n)
		}
	}
	_ = conn.Close(websocket.StatusNormalClosure, "read enough")
	return strconv.Itoa(http.StatusSwitchingProtocols), nil
}

func (r *runner) progress(begun time.Time) func() {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		every, lead, end := 10*time.Second, "", "\n"
		if r.cfg.InPlace {
			every, lead, end = time.Second, "\r", "   " // over what the last line left
		}
		tick := time.NewTicker(cmp.Or(r.cfg.ProgressEvery, every))
		defer tick.Stop()
		last, lastAt, ticks := int64(0), begun, 0
		for {
			select {
			case <-done:
				if r.cfg.InPlace && ticks > 0 {
					fmt.Fprintln(r.cfg.Progress) // end the line rewritten in place
				}
				return
			case now := <-tick.C:
				ticks++
				ok := r.ok.Load()
				rate := float64(ok-last) / now.Sub(lastAt).Seconds()
				last, lastAt = ok, now
				r.mu.Lock()
				p99 := Percentile(r.recent, 0.99)
				r.mu.Unlock()
				fmt.Fprintf(r.cfg.Progress, "%s%5.0fs  %6d ok  %7.1f/s  p99 %-8v  %d refused  %d failed  %d not sent%s",
					lead, now.Sub(begun).Seconds(), ok, rate, p99.Round(100*time.Microsecond), r.refused.Load(), r.failed.Load(), r.notSent.Load(), end)
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// Percentile is the p-quantile (0 to 1) of ds, which it leaves as they are; 0
// when there are none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func (r *runner) summary(scheduled int, elapsed time.Duration) *Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &Summary{Scheduled: scheduled, OK: int(r.ok.Load()), Refused: int(r.refused.Load()), Failed: int(r.failed.Load()),
		NotSent: int(r.notSent.Load()), Elapsed: elapsed, ByRequest: r.stats, Errors: r.errors}
	for _, req := range r.cfg.Mix {
		st := r.stats[req.Name]
		s.Sent += st.Sent
		lat := st.latencies
		if len(lat) > 0 {
			st.P50, st.P90, st.P99, st.Max = Percentile(lat, .5), Percentile(lat, .9), Percentile(lat, .99), slices.Max(lat)
		}
		s.order = append(s.order, req.Name)
	}
	return s
}

// Write prints the summary for people.
func (s *Summary) Write(w io.Writer) {
	per := func(n int) float64 { return float64(n) / s.Elapsed.Seconds() }
	fmt.Fprintf(w, "requests scheduled %d in %v (%.1f/s)\n", s.Scheduled, s.Elapsed.Round(time.Millisecond), per(s.Scheduled))
	fmt.Fprintf(w, "  ok             %d (%.1f/s)\n", s.OK, per(s.OK))
	fmt.Fprintf(w, "  refused (4xx)  %d\n", s.Refused)
	fmt.Fprintf(w, "  failed         %d\n", s.Failed)
	fmt.Fprintf(w, "  not sent       %d (in-flight cap reached)\n", s.NotSent)
	width := len("request")
	for _, name := range s.order {
		width = max(width, len(name))
	}
	fmt.Fprintf(w, "%-*s  %6s  %6s  %9s  %9s  %9s  %9s  statuses\n", width+2, "by request", "sent", "ok", "p50", "p90", "p99", "max")
	for _, name := range s.order {
		st := s.ByRequest[name]
		round := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
		fmt.Fprintf(w, "  %-*s  %6d  %6d  %9v  %9v  %9v  %9v  %s\n", width, name, st.Sent, st.OK,
			round(st.P50), round(st.P90), round(st.P99), round(st.Max), Tally(st.Statuses))
	}
	if len(s.Errors) > 0 {
		fmt.Fprintf(w, "errors           %s\n", Tally(s.Errors))
	}
}

// Tally writes counts by name, the largest first: "200 97, 503 3"; "none" when
// there are none.
func Tally(m map[string]int) string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int { return m[b] - m[a] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Millis is a duration in milliseconds, for JSON documents.
func Millis(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// WriteJSON writes the summary as one JSON document: the counts, the elapsed
// time and latencies in milliseconds, and each request's figures in the mix's
// order.
func (s *Summary) WriteJSON(w io.Writer) error {
	type request struct {
		Request  string         `json:"request"`
		Sent     int            `json:"sent"`
		OK       int            `json:"ok"`
		Refused  int            `json:"refused"`
		Failed   int            `json:"failed"`
		Statuses map[string]int `json:"statuses"`
		P50      float64        `json:"p50_ms"`
		P90      float64        `json:"p90_ms"`
		P99      float64        `json:"p99_ms"`
		Max      float64        `json:"max_ms"`
	}
	doc := struct {
		Scheduled int            `json:"scheduled"`
		Sent      int            `json:"sent"`
		OK        int            `json:"ok"`
		Refused   int            `json:"refused"`
		Failed    int            `json:"failed"`
		NotSent   int            `json:"not_sent"`
		Elapsed   float64        `json:"elapsed_ms"`
		Requests  []request      `json:"requests"`
		Errors    map[string]int `json:"errors"`
	}{s.Scheduled, s.Sent, s.OK, s.Refused, s.Failed, s.NotSent, Millis(s.Elapsed), []request{}, orEmpty(s.Errors)}
	names := s.order
	if len(names) == 0 {
		names = slices.Sorted(maps.Keys(s.ByRequest))
	}
	for _, name := range names {
		st := s.ByRequest[name]
		if st == nil {
			continue
		}
		doc.Requests = append(doc.Requests, request{name, st.Sent, st.OK, st.Refused, st.Failed, orEmpty(st.Statuses),
			Millis(st.P50), Millis(st.P90), Millis(st.P99), Millis(st.Max)})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// orEmpty is m, or an empty map for a nil one (an object, not null, in JSON).
func orEmpty(m map[string]int) map[string]int {
	if m == nil {
		return map[string]int{}
	}
	return m
}
