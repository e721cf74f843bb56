package shop

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/switchyard/switchyard/cli"
	"github.com/switchyard/switchyard/internal/shop/loadgen"
)

// cmdLoad drives the shop like its customers do; a platform declaring its own
// traffic (load: in switchyard.yaml), or requests named with --request, gets the
// toolkit's load instead.
func cmdLoad(ctx context.Context, e *cli.Env, args []string) error {
	if cli.DeclaresLoad(e, args) {
		return cli.Load(ctx, e, args)
	}
	fs := e.Flags("load")
	configPath := cli.ConfigFlag(fs)
	rate := fs.Float64("rate", 100, "`N` orders started per second")
	duration := fs.Duration("duration", time.Minute, "how long to start orders, e.g. `1m`")
	customers := fs.Int("customers", 20, "how many customers, `N`, place them")
	declines := fs.Float64("declines", 0.1, "the `fraction` of orders paid with a card that declines")
	maxInFlight := fs.Int("max-in-flight", 1000, "`N` orders in flight at most; beyond, an order is counted as not sent")
	viaGateway := fs.Bool("gateway", false, "go through the gateway's public API, as customers' apps do, instead of to each service")
	target := fs.String("target", "", "the gateway's base `URL` (implies --gateway; default: the local stack's gateway)")
	settle := fs.Duration("settle", 30*time.Second, "how long to wait after the last order for orders to finish, e.g. `30s`")
	seed := fs.Uint64("seed", 0, "seed the choices with `N`, to repeat a run (default random)")
	record := fs.String("record", "", "`file` the accepted order ids are appended to, for switchyard check (default <data dir>/accepted-orders.txt; - for none)")
	retryWindow := fs.Duration("retry-window", 0, "keep trying a request the platform failed (5xx, 429, no connection) for this long, e.g. `10s`, as a patient app would (default: only Retry-After on 429 and 503, five tries)")
	asJSON := fs.Bool("json", false, "print the summary as one JSON document")
	timeline := fs.String("timeline", "", "`file` to write one JSON line per scheduled order to: when, outcome, latency, tries")
	if err := e.Parse(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return cli.Usagef("load takes no arguments")
	case *rate <= 0 || *rate > 100_000:
		return cli.Usagef("--rate: want more than 0 and at most 100000 orders a second, got %v", *rate)
	case *duration <= 0:
		return cli.Usagef("--duration: want a positive duration such as 60s")
	case *customers < 1 || *customers > 10_000:
		return cli.Usagef("--customers: want 1 to 10000, got %d", *customers)
	case *declines < 0 || *declines > 1:
		return cli.Usagef("--declines: want a share from 0 to 1, got %v", *declines)
	case *maxInFlight < 1:
		return cli.Usagef("--max-in-flight: want at least 1")
	case *retryWindow < 0 || *retryWindow > 10*time.Minute:
		return cli.Usagef("--retry-window: want 0 to 10m, got %v", *retryWindow)
	}
	cfg, _, err := e.LoadConfig(*configPath)
	if err != nil {
		return err
	}
	urls, err := e.ServiceURLs(cfg, "users", "catalog", "orders")
	if err != nil {
		return err
	}
	// Under mutual TLS the services admit only each other: customers come through
	// the gateway.
	if *viaGateway || *target != "" || cfg.Security.TLS.Mutual() {
		base := strings.TrimSuffix(*target, "/")
		if base == "" {
			if cfg.Gateway == nil {
				return cli.Usagef("--gateway: %s declares no gateway", cfg.Source)
			}
			gw, err := e.ServiceURLs(cfg, "gateway")
			if err != nil {
				return err
			}
			base = gw["gateway"]
		} else if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cli.Usagef("--target: want http(s)://host:port, got %q", *target)
		}
		// The public paths are the services' own under /api.
		for _, s := range []string{"users", "catalog", "orders"} {
			urls[s] = base + "/api"
		}
	}
	lc := loadgen.Config{
		UsersURL: urls["users"], CatalogURL: urls["catalog"], OrdersURL: urls["orders"],
		Rate: *rate, Duration: *duration, Customers: *customers, Declines: *declines,
		MaxInFlight: *maxInFlight, Settle: *settle, Seed: *seed, Progress: e.Stderr, InPlace: e.Terminal(e.Stderr), RetryWindow: *retryWindow,
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
		path = cli.AcceptedFile(cfg)
	}
	if path != "-" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("record accepted orders: %w", err)
		}
		defer f.Close()
		lc.Accepted = f
	}
	fmt.Fprintf(e.Stderr, "load: %v orders/s for %v by %d customers against %s\n", *rate, *duration, *customers, urls["orders"])
	sum, err := loadgen.Run(ctx, lc)
	switch {
	case sum == nil:
	case *asJSON:
		if path == "-" {
			path = ""
		}
		if jerr := sum.WriteJSON(e.Stdout, path); jerr != nil && err == nil {
			err = jerr
		}
	default:
		sum.Write(e.Stdout)
		if path != "-" {
			fmt.Fprintf(e.Stdout, "accepted ids     appended to %s (switchyard check reads them)\n", path)
		}
	}
	return err
}
