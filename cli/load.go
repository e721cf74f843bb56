package cli

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/traffic"
)

// requestFlags collects --request values: "METHOD /path[=weight]".
type requestFlags []string

func (r *requestFlags) String() string     { return strings.Join(*r, "; ") }
func (r *requestFlags) Set(v string) error { *r = append(*r, v); return nil }

// headerFlags collects --header values: "Name: value".
type headerFlags http.Header

func (h headerFlags) String() string { return "" }
func (h headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("want \"Name: value\", got %q", v)
	}
	http.Header(h).Add(strings.TrimSpace(name), strings.TrimSpace(value))
	return nil
}

const loadUsage = "load [--request \"METHOD /path[=weight]\" ...] [--rate 10] [--duration 30s] [--target URL] [--header \"Name: value\"] [--timeline file] [--json] [--config path]"

// Load is the toolkit's `load`: it sends the platform the traffic its file
// declares (load: in switchyard.yaml) or the flags give, through its gateway or
// to the service named as the target, with a progress line a second and a summary
// per request. An application whose own `load` knows its domain (the shop's
// customers) hands a platform that declares its traffic, or flags naming
// requests, to this one (see DeclaresLoad).
func Load(ctx context.Context, e *Env, args []string) error {
	fs := e.Flags("load")
	configPath := ConfigFlag(fs)
	var requests requestFlags
	header := headerFlags(http.Header{})
	fs.Var(&requests, "request", "a `request` to send, \"METHOD /path\" or \"WS /path\", optionally =weight (repeat for a mix; replaces the file's)")
	fs.Var(header, "header", "a `header` sent with every request, \"Name: value\" (repeat for more)")
	rate := fs.Float64("rate", 0, "`N` requests per second (default: the file's load.rate, else 10)")
	duration := fs.Duration("duration", 0, "how long to send, e.g. `30s` (default: the file's load.duration, else 30s)")
	target := fs.String("target", "", "base `URL` to send to (default: the local stack's address of load.target, the gateway if declared)")
	maxInFlight := fs.Int("max-in-flight", 1000, "`N` requests in flight at most; beyond, a request is counted as not sent")
	seed := fs.Uint64("seed", 0, "seed the draws with `N`, to repeat a run (default random)")
	timeline := fs.String("timeline", "", "`file` to write one JSON line per scheduled request to: when, outcome, latency")
	asJSON := fs.Bool("json", false, "print the summary as one JSON document")
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usagef("load takes no arguments (requests are --request \"METHOD /path\")")
	}
	cfg, _, err := e.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	plan := config.Traffic{Rate: 10, Duration: config.Duration(30 * time.Second)}
	if cfg.Load != nil {
		plan = *cfg.Load
	}
	if plan.Target == "" {
		plan.Target = config.GatewayName
	}
	if len(requests) > 0 {
		plan.Mix = nil
		for _, r := range requests {
			req, err := parseRequestFlag(r)
			if err != nil {
				return Usagef("--request: %v", err)
			}
			plan.Mix = append(plan.Mix, req)
		}
	}
	if len(plan.Mix) == 0 {
		return Usagef("nothing to send: declare load: in %s, or give --request \"METHOD /path\"", cfg.Source)
	}
	if *rate != 0 {
		plan.Rate = *rate
	}
	if *duration != 0 {
		plan.Duration = config.Duration(*duration)
	}
	switch {
	case plan.Rate <= 0 || plan.Rate > 100_000:
		return Usagef("--rate: want more than 0 and at most 100000 requests a second, got %v", plan.Rate)
	case plan.Duration <= 0:
		return Usagef("--duration: want a positive duration such as 30s")
	case *maxInFlight < 1:
		return Usagef("--max-in-flight: want at least 1")
	}
	base := strings.TrimSuffix(*target, "/")
	if base == "" {
		if cfg.Process(plan.Target) == nil {
			return Usagef("load.target: the platform has no %s", plan.Target)
		}
		if callers := cfg.Callers(plan.Target); plan.Target != config.GatewayName && len(callers) > 0 {
			return Usagef("%s admits only its callers (%s); send the load through the gateway, or to a service nothing calls", plan.Target, strings.Join(callers, ", "))
		}
		urls, err := e.ServiceURLs(cfg, plan.Target)
		if err != nil {
			return err
		}
		base = urls[plan.Target]
	} else if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Usagef("--target: want http(s)://host:port, got %q", *target)
	}
	tc := traffic.Config{Target: base, Rate: plan.Rate, Duration: plan.Duration.Std(), Header: http.Header(header),
		MaxInFlight: *maxInFlight, Seed: *seed, Progress: e.Stderr, InPlace: e.Terminal(e.Stderr)}
	var flush func() error
	if *timeline != "" {
		f, err := os.Create(*timeline)
		if err != nil {
			return fmt.Errorf("--timeline: %w", err)
		}
		defer f.Close()
		w := bufio.NewWriter(f)
		tc.Timeline, flush = w, w.Flush
	}
	for _, r := range plan.Mix {
		kind, method, path, _ := config.ParseEndpoint(r.Request) // validated
		tc.Mix = append(tc.Mix, traffic.Request{Name: r.Request, Method: method, Path: path, Stream: kind == config.Stream,
			Messages: r.Messages, Body: r.Body, Weight: r.Weight})
	}
	fmt.Fprintf(e.Stderr, "load: %v requests/s for %v against %s (%d kinds of request)\n", plan.Rate, plan.Duration, base, len(tc.Mix))
	sum, err := traffic.Run(ctx, tc)
	switch {
	case sum == nil:
	case *asJSON:
		if jerr := sum.WriteJSON(e.Stdout); jerr != nil && err == nil {
			err = jerr
		}
	default:
		sum.Write(e.Stdout)
	}
	if flush != nil {
		if ferr := flush(); ferr != nil && err == nil {
			err = fmt.Errorf("--timeline: %w", ferr)
		}
	}
	return err
}

// parseRequestFlag reads "METHOD /path[=weight]".
func parseRequestFlag(v string) (*config.Request, error) {
	req := &config.Request{Request: v, Weight: 1, Messages: 3}
	if i := strings.LastIndex(v, "="); i > 0 {
		w, err := strconv.ParseFloat(v[i+1:], 64)
		if err != nil || w <= 0 {
			return nil, fmt.Errorf("%q: the weight after = is a positive number", v)
		}
		req.Request, req.Weight = strings.TrimSpace(v[:i]), w
	}
	kind, _, _, err := config.ParseEndpoint(req.Request)
	if err != nil {
		return nil, err
	}
	if kind == config.GRPC {
		return nil, fmt.Errorf("%q: load sends REST requests and opens streams", req.Request)
	}
	return req, nil
}

// DeclaresLoad reports whether args (a `load` command line) ask for declared
// traffic: the platform they name declares load:, or they give --request.
func DeclaresLoad(e *Env, args []string) bool {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configPath := ConfigFlag(fs)
	var requests requestFlags
	fs.Var(&requests, "request", "")
	// Only these two matter here; the others are skipped with their values.
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name := strings.TrimLeft(strings.SplitN(a, "=", 2)[0], "-")
		if name == "config" || name == "request" {
			rest = append(rest, a)
			if !strings.Contains(a, "=") && i+1 < len(args) {
				rest = append(rest, args[i+1])
				i++
			}
		}
	}
	if fs.Parse(rest) != nil {
		return false
	}
	if len(requests) > 0 {
		return true
	}
	cfg, _, err := e.LoadConfig(*configPath)
	return err == nil && cfg.Load != nil
}
