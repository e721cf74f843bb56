// Package loadgen drives the shop the way its customers do — register, log in,
// browse the catalog, place orders, some with cards that decline — at a fixed
// rate for a fixed time, and summarises what happened.
//
// The rate is open-loop: an order starts every 1/rate seconds whether or not the
// earlier ones have answered, so a slow platform shows up as latency and errors,
// not as a politely lower rate (coordinated omission). In-flight work is capped;
// what the cap refuses is counted as "not sent", never silently skipped.
package loadgen

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

	"github.com/switchyard/switchyard/internal/shop/commerce"
	"github.com/switchyard/switchyard/internal/traffic"
)

// Config shapes a run. Zero fields take the default in brackets.
type Config struct {
	// UsersURL, CatalogURL and OrdersURL are the services' base URLs. Required.
	UsersURL, CatalogURL, OrdersURL string
	// Rate is orders started per second [100].
	Rate float64
	// Duration is how long orders are started [60s].
	Duration time.Duration
	// Customers is how many customers place the orders [20].
	Customers int
	// Declines is the share of orders paid with a card that declines [0.1].
	Declines float64
	// MaxInFlight caps orders in flight [1000].
	MaxInFlight int
	// Settle is how long, after the last order, to wait for orders to finish [30s].
	Settle time.Duration
	// Progress, when set, receives a progress line every ProgressEvery: rewritten
	// in place (a carriage return before it) when InPlace, else a line of its own.
	Progress io.Writer
	// InPlace rewrites the progress line in place: Progress is a terminal.
	InPlace bool
	// ProgressEvery is how often the progress line is written [1s when InPlace,
	// else 10s].
	ProgressEvery time.Duration
	// Accepted, when set, receives the id of every accepted order, one per line.
	Accepted io.Writer
	// Client sends the requests [a client pooling MaxInFlight connections].
	Client *http.Client
	// Seed makes the choices repeatable [random].
	Seed uint64
	// RetryWindow, when positive, is how long a customer's app keeps trying a
	// request that failed for want of the platform — 5xx, 429, or a transport error
	// — honouring Retry-After, before it gives up. Zero follows only Retry-After on
	// 429 and 503, five tries at most. Every request here is safe to repeat.
	RetryWindow time.Duration
	// Timeline, when set, receives one JSON line per scheduled order: when it was
	// scheduled (at, Unix milliseconds), its outcome (accepted, refused, failed, not
	// sent), how long placing it took and in how many tries.
	Timeline io.Writer
}

// TimelineEntry is one line of Config.Timeline.
type TimelineEntry struct {
	At        int64   `json:"at"`
	Outcome   string  `json:"outcome"`
	LatencyMS float64 `json:"latency_ms,omitempty"`
	Tries     int     `json:"tries,omitempty"`
}

// Summary is what a run did.
type Summary struct {
	// Scheduled orders: accepted, refused, failed or not sent.
	Scheduled, Accepted, Refused, Failed, NotSent int
	Elapsed                                       time.Duration
	// Latency of placing an order (the POST), by percentile.
	P50, P90, P99, Max time.Duration
	// Outcomes counts accepted orders by final status; Reasons the cancellations by
	// their reason's kind.
	Outcomes map[string]int
	Reasons  map[string]int
	// Errors counts failed requests by what failed.
	Errors map[string]int
	// Waited counts answers that asked to come back later (429 or 503 with
	// Retry-After) and were tried again, by status.
	Waited map[string]int
	// Confirmed per second of the run, and the time the last order took to finish.
	ConfirmedPerSecond float64
	Unfinished         int
}

type customer struct {
	id, email, token string
}

type runner struct {
	cfg      Config
	client   *http.Client
	products []string

	started, accepted, refused, failed, notSent atomic.Int64

	mu        sync.Mutex
	latencies []time.Duration
	errors    map[string]int
	waited    map[string]int
	orders    []acceptedOrder
}

type acceptedOrder struct {
	customer int
	id       string
}

// Run drives the shop and returns the summary.
func Run(ctx context.Context, cfg Config) (*Summary, error) {
	if cfg.UsersURL == "" || cfg.CatalogURL == "" || cfg.OrdersURL == "" {
		return nil, errors.New("loadgen: the users, catalog and orders URLs are required")
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 100
	}
	if cfg.Duration <= 0 {
		cfg.Duration = time.Minute
	}
	if cfg.Customers <= 0 {
		cfg.Customers = 20
	}
	if cfg.Declines < 0 || cfg.Declines > 1 {
		return nil, fmt.Errorf("loadgen: declines %v is not a share from 0 to 1", cfg.Declines)
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 1000
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 30 * time.Second
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	if cfg.Client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns, t.MaxIdleConnsPerHost = cfg.MaxInFlight, cfg.MaxInFlight
		cfg.Client = &http.Client{Transport: t, Timeout: 30 * time.Second}
	}
	r := &runner{cfg: cfg, client: cfg.Client, errors: map[string]int{}, waited: map[string]int{}}
	customers, err := r.signUp(ctx)
	if err != nil {
		return nil, err
	}
	if r.products, err = r.browse(ctx, customers[0]); err != nil {
		return nil, err
	}
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "%d customers signed up, %d products seen; placing orders\n", len(customers), len(r.products))
	}
	elapsed := r.drive(ctx, customers)
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "every order placed; waiting for them to finish\n")
	}
	sum := r.summary(elapsed)
	if err := r.settle(ctx, customers, sum); err != nil {
		return sum, err
	}
	return sum, nil
}

// call sends a JSON request and decodes a JSON answer into out (when not nil).
func (r *runner) call(ctx context.Context, method, url, token string, body any, header http.Header, out any) (int, error) {
	code, _, err := r.do(ctx, method, url, token, body, header, out)
	return code, err
}

// do is call, reporting how many tries it took.
func (r *runner) do(ctx context.Context, method, url, token string, body any, header http.Header, out any) (int, int, error) {
	var payload []byte
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, 0, err
		}
		payload = b
	}
	// "Come back later" — a rate limit (429) or a dependency briefly unavailable
	// (503), with Retry-After — is honoured as a customer's app would: wait as told,
	// a few times, then give up; with a RetryWindow, any failure of the platform is
	// tried again until the window closes. Writes are safe to repeat: orders carry
	// an Idempotency-Key, and a repeated registration answers 409 (see signUp).
	var resp *http.Response
	begun := time.Now()
	tries := 0
	for try := 1; ; try++ {
		tries = try
		var rd io.Reader
		if payload != nil {
			rd = bytes.NewReader(payload)
		}
		req, err := http.NewRequestWithContext(ctx, method, url, rd)
		if err != nil {
			return 0, try, err
		}
		for k, v := range header {
			req.Header[k] = v
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err = r.client.Do(req)
		wait, again := r.again(resp, err, try, time.Since(begun))
		if !again {
			if err != nil {
				return 0, try, err
			}
			break
		}
		if resp != nil {
			r.mu.Lock()
			r.waited[strconv.Itoa(resp.StatusCode)]++
			r.mu.Unlock()
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		select {
		case <-ctx.Done():
			return 0, try, ctx.Err()
		case <-time.After(wait):
		}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, tries, err
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, tries, fmt.Errorf("%s %s: %w", method, url, err)
		}
	}
	if resp.StatusCode >= 300 && out != nil {
		return resp.StatusCode, tries, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(raw)))
	}
	return resp.StatusCode, tries, nil
}

// again decides whether a customer's app tries a request again after try number
// try, elapsed since the first, and after how long.
func (r *runner) again(resp *http.Response, err error, try int, elapsed time.Duration) (time.Duration, bool) {
	var told time.Duration
	later := false
	if err == nil {
		wait, werr := strconv.Atoi(resp.Header.Get("Retry-After"))
		later = (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) &&
			werr == nil && wait >= 0 && wait <= 10
		told = time.Duration(max(wait, 1)) * time.Second
	}
	window := r.cfg.RetryWindow
	if window <= 0 {
		return told, later && try < 5
	}
	failed := err != nil || resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
	if !failed {
		return 0, false
	}
	wait := told
	if !later {
		wait = min(200*time.Millisecond<<min(try-1, 4), 2*time.Second)
	}
	left := window - elapsed
	if left <= 0 {
		return 0, false
	}
	return min(wait, left), true
}

// signUp registers and logs in the customers, a few at a time (hashing passwords
// is deliberately slow).
func (r *runner) signUp(ctx context.Context) ([]customer, error) {
	run := rand.Uint32()
	customers := make([]customer, r.cfg.Customers)
	errs := make([]error, len(customers))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range customers {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c := customer{email: fmt.Sprintf("load-%08x-%d@example.com", run, i)}
			const password = "load generator password"
			var reg struct {
				ID string `json:"id"`
			}
			// 409: a first try registered the customer but its answer was lost.
			if code, err := r.call(ctx, "POST", r.cfg.UsersURL+"/v1/auth/register", "",
				map[string]string{"email": c.email, "password": password, "name": fmt.Sprintf("Load %d", i)}, nil, &reg); err != nil && code != http.StatusConflict {
				errs[i] = fmt.Errorf("register: %w", err)
				return
			}
			var login struct {
				AccessToken string `json:"access_token"`
			}
			if _, err := r.call(ctx, "POST", r.cfg.UsersURL+"/v1/auth/login", "",
				map[string]string{"email": c.email, "password": password}, nil, &login); err != nil {
				errs[i] = fmt.Errorf("log in: %w", err)
				return
			}
			c.id, c.token = reg.ID, login.AccessToken
			customers[i] = c
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("loadgen: sign up customers: %w", err)
	}
	return customers, nil
}

// browse lists the catalog, as a shopper does first, and returns the product ids.
func (r *runner) browse(ctx context.Context, c customer) ([]string, error) {
	var ids []string
	cursor := ""
	for {
		var page struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		url := r.cfg.CatalogURL + "/v1/products?limit=100"
		if cursor != "" {
			url += "&cursor=" + cursor
		}
		if _, err := r.call(ctx, "GET", url, c.token, nil, nil, &page); err != nil {
			return nil, fmt.Errorf("loadgen: browse the catalog: %w", err)
		}
		for _, p := range page.Items {
			ids = append(ids, p.ID)
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if len(ids) == 0 {
		return nil, errors.New("loadgen: the catalog is empty")
	}
	return ids, nil
}

// drive starts orders at the rate for the duration and waits for their answers.
func (r *runner) drive(ctx context.Context, customers []customer) time.Duration {
	rng := rand.New(rand.NewPCG(r.cfg.Seed, r.cfg.Seed>>1|1))
	interval := time.Duration(float64(time.Second) / r.cfg.Rate)
	slots := make(chan struct{}, r.cfg.MaxInFlight)
	var wg sync.WaitGroup
	begun := time.Now()
	stopProgress := r.progress(begun)
	defer stopProgress()
	for n := 0; ; n++ {
		at := begun.Add(time.Duration(n) * interval)
		if at.Sub(begun) >= r.cfg.Duration {
			break
		}
		if d := time.Until(at); d > 0 {
			select {
			case <-ctx.Done():
				wg.Wait()
				return time.Since(begun)
			case <-time.After(d):
			}
		}
		r.started.Add(1)
		select {
		case slots <- struct{}{}:
		default:
			r.notSent.Add(1)
			r.record(at, "not sent", 0, 0)
			continue
		}
		ci := rng.IntN(len(customers))
		o := r.orderFor(rng)
		wg.Go(func() {
			defer func() { <-slots }()
			r.place(ctx, at, n, ci, customers[ci], o)
		})
	}
	wg.Wait()
	return time.Since(begun)
}

type plannedOrder struct {
	items []map[string]any
	card  string
	look  string // a product the customer looks at first
}

func (r *runner) orderFor(rng *rand.Rand) plannedOrder {
	lines := 1 + rng.IntN(3)
	picked := map[string]bool{}
	var o plannedOrder
	for len(o.items) < lines {
		p := r.products[rng.IntN(len(r.products))]
		if picked[p] {
			continue
		}
		picked[p] = true
		o.items = append(o.items, map[string]any{"product_id": p, "quantity": 1 + rng.IntN(2)})
	}
	o.look = r.products[rng.IntN(len(r.products))]
	o.card = commerce.CardApproved
	if rng.Float64() < r.cfg.Declines {
		o.card = []string{commerce.CardDeclined, commerce.CardInsufficientFunds}[rng.IntN(2)]
	}
	return o
}

// place browses a product and places one order.
func (r *runner) place(ctx context.Context, at time.Time, n, ci int, c customer, o plannedOrder) {
	if _, err := r.call(ctx, "GET", r.cfg.CatalogURL+"/v1/products/"+o.look, c.token, nil, nil, nil); err != nil {
		r.fail("browse: " + kind(err))
	}
	var placed struct {
		ID string `json:"id"`
	}
	begun := time.Now()
	code, tries, err := r.do(ctx, "POST", r.cfg.OrdersURL+"/v2/orders", c.token,
		map[string]any{"items": o.items, "payment": map[string]string{"card_number": o.card}},
		http.Header{"Idempotency-Key": {fmt.Sprintf("load-%x-%d", r.cfg.Seed, n)}}, &placed)
	took := time.Since(begun)
	outcome := "failed"
	defer func() { r.record(at, outcome, took, tries) }()
	switch {
	case err == nil && code == http.StatusCreated:
		outcome = "accepted"
		r.accepted.Add(1)
		r.mu.Lock()
		r.latencies = append(r.latencies, took)
		r.orders = append(r.orders, acceptedOrder{ci, placed.ID})
		if r.cfg.Accepted != nil {
			fmt.Fprintln(r.cfg.Accepted, placed.ID)
		}
		r.mu.Unlock()
	case code >= 400 && code < 500:
		outcome = "refused"
		r.refused.Add(1)
		r.fail(fmt.Sprintf("place order: HTTP %d", code))
	default:
		r.failed.Add(1)
		if code != 0 {
			r.fail(fmt.Sprintf("place order: HTTP %d", code))
		} else {
			r.fail("place order: " + kind(err))
		}
	}
}

// kind names a transport error without its addresses.
func kind(err error) string {
	s := err.Error()
	switch {
	case strings.Contains(s, "connection refused"):
		return "connection refused"
	case strings.Contains(s, "connection reset"):
		return "connection reset"
	case strings.Contains(s, "timeout"), strings.Contains(s, "deadline"):
		return "timeout"
	case strings.Contains(s, "EOF"):
		return "connection closed"
	default:
		if i := strings.LastIndex(s, ": "); i >= 0 {
			return s[i+2:]
		}
		return s
	}
}

// record writes one order's line of the timeline.
func (r *runner) record(at time.Time, outcome string, took time.Duration, tries int) {
	if r.cfg.Timeline == nil {
		return
	}
	line, _ := json.Marshal(TimelineEntry{At: at.UnixMilli(), Outcome: outcome, LatencyMS: float64(took.Microseconds()) / 1000, Tries: tries})
	r.mu.Lock()
	defer r.mu.Unlock()
	_, _ = r.cfg.Timeline.Write(append(line, '\n'))
}

func (r *runner) fail(what string) {
	r.mu.Lock()
	r.errors[what]++
	r.mu.Unlock()
}

// progress prints a line a second until stopped.
func (r *runner) progress(begun time.Time) func() {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
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
				acc := r.accepted.Load()
				rate := float64(acc-last) / now.Sub(lastAt).Seconds()
				last, lastAt = acc, now
				r.mu.Lock()
				p99 := traffic.Percentile(r.latencies[max(0, len(r.latencies)-int(r.cfg.Rate*2)):], 0.99)
				r.mu.Unlock()
				fmt.Fprintf(r.cfg.Progress, "%s%5.0fs  %6d accepted  %7.1f/s  p99 %-8v  %d refused  %d failed  %d not sent%s",
					lead, now.Sub(begun).Seconds(), acc, rate, p99.Round(100*time.Microsecond), r.refused.Load(), r.failed.Load(), r.notSent.Load(), end)
			}
		}
	}()
	return func() { close(done); <-stopped }
}

func (r *runner) summary(elapsed time.Duration) *Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &Summary{
		Scheduled: int(r.started.Load()), Accepted: int(r.accepted.Load()), Refused: int(r.refused.Load()),
		Failed: int(r.failed.Load()), NotSent: int(r.notSent.Load()), Elapsed: elapsed,
		Errors: r.errors, Waited: maps.Clone(r.waited), Outcomes: map[string]int{}, Reasons: map[string]int{},
	}
	lat := slices.Clone(r.latencies)
	slices.Sort(lat)
	if len(lat) > 0 {
		s.P50, s.P90, s.P99, s.Max = traffic.Percentile(lat, .5), traffic.Percentile(lat, .9), traffic.Percentile(lat, .99), lat[len(lat)-1]
	}
	return s
}

// settle waits for the accepted orders to finish and tallies how they ended,
// reading each customer's order list.
func (r *runner) settle(ctx context.Context, customers []customer, s *Summary) error {
	type final struct{ status, reason string }
	ended := map[string]final{}
	mine := map[int]map[string]bool{} // customer → accepted orders not yet seen ended
	for _, a := range r.orders {
		if mine[a.customer] == nil {
			mine[a.customer] = map[string]bool{}
		}
		mine[a.customer][a.id] = true
	}
	deadline := time.Now().Add(r.cfg.Settle)
	for {
		for ci, open := range mine {
			if err := r.collect(ctx, customers[ci], open, func(id, status, reason string) {
				ended[id] = final{status, reason}
			}); err != nil {
				return err
			}
			if len(open) == 0 {
				delete(mine, ci)
			}
		}
		unfinished := 0
		for _, open := range mine {
			unfinished += len(open)
		}
		if unfinished == 0 || time.Now().After(deadline) {
			s.Unfinished = unfinished
			for _, f := range ended {
				s.Outcomes[f.status]++
				if f.reason != "" {
					reason, _, _ := strings.Cut(f.reason, ":")
					s.Reasons[reason]++
				}
			}
			if unfinished > 0 {
				s.Outcomes["in flight"] += unfinished
			}
			s.ConfirmedPerSecond = float64(s.Outcomes["CONFIRMED"]) / s.Elapsed.Seconds()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// collect pages through a customer's orders (newest first), reporting each of the
// open ones that has ended and removing it from open; it stops at the oldest open
// one.
func (r *runner) collect(ctx context.Context, c customer, open map[string]bool, ended func(id, status, reason string)) error {
	cursor := ""
	for len(open) > 0 {
		var page struct {
			Items []struct {
				ID     string `json:"id"`
				Status string `json:"status"`
				Reason string `json:"reason"`
			} `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		url := r.cfg.OrdersURL + "/v2/orders?limit=100"
		if cursor != "" {
			url += "&cursor=" + cursor
		}
		if _, err := r.call(ctx, "GET", url, c.token, nil, nil, &page); err != nil {
			return fmt.Errorf("loadgen: read %s's orders: %w", c.email, err)
		}
		for _, o := range page.Items {
			if !open[o.ID] {
				continue
			}
			switch o.Status {
			case "CONFIRMED", "CANCELLED", "ON_HOLD":
				ended(o.ID, o.Status, o.Reason)
				delete(open, o.ID)
			}
		}
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	return nil
}

// Write prints the summary for people.
func (s *Summary) Write(w io.Writer) {
	fmt.Fprintf(w, "orders scheduled %d in %v (%.1f/s)\n", s.Scheduled, s.Elapsed.Round(time.Millisecond), float64(s.Scheduled)/s.Elapsed.Seconds())
	fmt.Fprintf(w, "  accepted       %d (%.1f/s)\n", s.Accepted, float64(s.Accepted)/s.Elapsed.Seconds())
	fmt.Fprintf(w, "  refused (4xx)  %d\n", s.Refused)
	fmt.Fprintf(w, "  failed         %d\n", s.Failed)
	fmt.Fprintf(w, "  not sent       %d (in-flight cap reached)\n", s.NotSent)
	fmt.Fprintf(w, "place order      p50 %v  p90 %v  p99 %v  max %v\n", s.P50.Round(10*time.Microsecond),
		s.P90.Round(10*time.Microsecond), s.P99.Round(10*time.Microsecond), s.Max.Round(10*time.Microsecond))
	fmt.Fprintf(w, "outcomes         %s\n", traffic.Tally(s.Outcomes))
	if len(s.Reasons) > 0 {
		fmt.Fprintf(w, "  cancelled for  %s\n", traffic.Tally(s.Reasons))
	}
	if s.Unfinished > 0 {
		fmt.Fprintf(w, "  unfinished     %d still in flight when the settle time ran out\n", s.Unfinished)
	}
	fmt.Fprintf(w, "confirmed        %.1f orders/s over the run\n", s.ConfirmedPerSecond)
	if len(s.Errors) > 0 {
		fmt.Fprintf(w, "errors           %s\n", traffic.Tally(s.Errors))
	}
	if len(s.Waited) > 0 {
		fmt.Fprintf(w, "told to wait     %s (tried again after Retry-After)\n", traffic.Tally(s.Waited))
	}
}

// WriteJSON writes the summary as one JSON document, times in milliseconds;
// acceptedFile, when not empty, names where the accepted ids were recorded.
func (s *Summary) WriteJSON(w io.Writer, acceptedFile string) error {
	orEmpty := func(m map[string]int) map[string]int {
		if m == nil {
			return map[string]int{}
		}
		return m
	}
	doc := struct {
		Scheduled          int            `json:"scheduled"`
		Accepted           int            `json:"accepted"`
		Refused            int            `json:"refused"`
		Failed             int            `json:"failed"`
		NotSent            int            `json:"not_sent"`
		Elapsed            float64        `json:"elapsed_ms"`
		P50                float64        `json:"place_p50_ms"`
		P90                float64        `json:"place_p90_ms"`
		P99                float64        `json:"place_p99_ms"`
		Max                float64        `json:"place_max_ms"`
		Outcomes           map[string]int `json:"outcomes"`
		Reasons            map[string]int `json:"reasons"`
		Errors             map[string]int `json:"errors"`
		Waited             map[string]int `json:"waited"`
		ConfirmedPerSecond float64        `json:"confirmed_per_second"`
		Unfinished         int            `json:"unfinished"`
		AcceptedFile       string         `json:"accepted_file,omitempty"`
	}{s.Scheduled, s.Accepted, s.Refused, s.Failed, s.NotSent, traffic.Millis(s.Elapsed),
		traffic.Millis(s.P50), traffic.Millis(s.P90), traffic.Millis(s.P99), traffic.Millis(s.Max),
		orEmpty(s.Outcomes), orEmpty(s.Reasons), orEmpty(s.Errors), orEmpty(s.Waited), s.ConfirmedPerSecond, s.Unfinished, acceptedFile}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
