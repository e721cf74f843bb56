package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/shop/loadgen"
)

func cmdLoad(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "load")
	configPath := configFlag(fs)
	rate := fs.Float64("rate", 100, "orders started per `second`")
	duration := fs.Duration("duration", time.Minute, "how `long` to start orders")
	customers := fs.Int("customers", 20, "how many customers place them")
	declines := fs.Float64("declines", 0.1, "`share` of orders paid with a card that declines")
	maxInFlight := fs.Int("max-in-flight", 1000, "orders in flight at most; beyond, an order is counted as not sent")
	viaGateway := fs.Bool("gateway", false, "go through the gateway's public API, as customers' apps do, instead of to each service")
	target := fs.String("target", "", "the gateway's base `URL` (implies --gateway; default: the local stack's gateway)")
	settle := fs.Duration("settle", 30*time.Second, "how `long` to wait after the last order for orders to finish")
	seed := fs.Uint64("seed", 0, "seed of the choices, to repeat a run (default random)")
	record := fs.String("record", "", "`file` the accepted order ids are appended to, for switchyard check (default <data dir>/accepted-orders.txt; - for none)")
	retryWindow := fs.Duration("retry-window", 0, "keep trying a request the platform failed (5xx, 429, no connection) for this `long`, as a patient app would (default: only Retry-After on 429 and 503, five tries)")
	timeline := fs.String("timeline", "", "`file` to write one JSON line per scheduled order to: when, outcome, latency, tries")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageErrorf("load takes no arguments")
	case *rate <= 0 || *rate > 100_000:
		return usageErrorf("--rate: want more than 0 and at most 100000 orders a second, got %v", *rate)
	case *duration <= 0:
		return usageErrorf("--duration: want a positive duration such as 60s")
	case *customers < 1 || *customers > 10_000:
		return usageErrorf("--customers: want 1 to 10000, got %d", *customers)
	case *declines < 0 || *declines > 1:
		return usageErrorf("--declines: want a share from 0 to 1, got %v", *declines)
	case *maxInFlight < 1:
		return usageErrorf("--max-in-flight: want at least 1")
	case *retryWindow < 0 || *retryWindow > 10*time.Minute:
		return usageErrorf("--retry-window: want 0 to 10m, got %v", *retryWindow)
	}
	cfg, _, err := loadConfig(e, *configPath)
	if err != nil {
		return err
	}
	urls, err := serviceURLs(cfg, "users", "catalog", "orders")
	if err != nil {
		return err
	}
	if *viaGateway || *target != "" {
		base := strings.TrimSuffix(*target, "/")
		if base == "" {
			if cfg.Gateway == nil {
				return usageErrorf("--gateway: %s declares no gateway", cfg.Source)
			}
			gw, err := serviceURLs(cfg, "gateway")
			if err != nil {
				return err
			}
			base = gw["gateway"]
		} else if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usageErrorf("--target: want http(s)://host:port, got %q", *target)
		}
		// The public paths are the services' own under /api.
		for _, s := range []string{"users", "catalog", "orders"} {
			urls[s] = base + "/api"
		}
	}
	lc := loadgen.Config{
		UsersURL: urls["users"], CatalogURL: urls["catalog"], OrdersURL: urls["orders"],
		Rate: *rate, Duration: *duration, Customers: *customers, Declines: *declines,
		MaxInFlight: *maxInFlight, Settle: *settle, Seed: *seed, Progress: e.stderr, RetryWindow: *retryWindow,
	}
	if *timeline != "" {
		f, err := os.Create(*timeline)
		if err != nil {
			return fmt.Errorf("--timeline: %w", err)
		}
		defer f.Close()
		lc.Timeline = f
	}
	path := *record
	if path == "" {
		path = acceptedFile(cfg)
	}
	if path != "-" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("record accepted orders: %w", err)
		}
		defer f.Close()
		lc.Accepted = f
	}
	fmt.Fprintf(e.stderr, "load: %v orders/s for %v by %d customers against %s\n", *rate, *duration, *customers, urls["orders"])
	sum, err := loadgen.Run(ctx, lc)
	if sum != nil {
		sum.Write(e.stdout)
		if path != "-" {
			fmt.Fprintf(e.stdout, "accepted ids     appended to %s (switchyard check reads them)\n", path)
		}
	}
	return err
}

// serviceURLs finds services' base URLs: from the running local stack
// (stack.json), else from the platform's listen addresses.
func serviceURLs(cfg *config.Config, names ...string) (map[string]string, error) {
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
		svc := cfg.Service(n)
		if n == "gateway" {
			svc = gatewayService(cfg)
		}
		if svc == nil {
			return nil, fmt.Errorf("the platform has no %s service", n)
		}
		out[n] = "http://" + svc.Listen
	}
	return out, nil
}
