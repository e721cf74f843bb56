package faults

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/telemetry"
)

// usage is what one process used at one moment, from its /metrics.
type usage struct {
	PID        int     `json:"pid"`
	Goroutines float64 `json:"goroutines"`
	RSS        float64 `json:"rss_bytes"`
	FDs        float64 `json:"open_fds"`
}

// readUsage reads every running process's usage of the stack in data.
func readUsage(ctx context.Context, data string) (map[string]usage, error) {
	procs, err := stackOf(data)
	if err != nil {
		return nil, err
	}
	out := map[string]usage{}
	client := &http.Client{Timeout: 5 * time.Second}
	for _, p := range procs {
		if p.URL == "" || p.PID == 0 {
			continue
		}
		u, err := scrape(ctx, client, p.URL+"/metrics")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		u.PID = p.PID
		out[p.Name] = u
	}
	return out, nil
}

// scrape reads the three gauges of the Go and process collectors.
func scrape(ctx context.Context, client *http.Client, url string) (usage, error) {
	families, err := telemetry.Scrape(ctx, client, url)
	if err != nil {
		return usage{}, err
	}
	var u usage
	for name, into := range map[string]*float64{"go_goroutines": &u.Goroutines, "process_resident_memory_bytes": &u.RSS, "process_open_fds": &u.FDs} {
		f := families[name]
		if f == nil || len(f.GetMetric()) == 0 {
			return usage{}, fmt.Errorf("%s has no %s", url, name)
		}
		*into = f.GetMetric()[0].GetGauge().GetValue()
	}
	return u, nil
}

// judgeLeaks compares each process's usage after the run with before the load,
// against the bounds, and records one verdict.
func (r *Result) judgeLeaks(l Leaks, before, after map[string]usage, waited time.Duration) {
	over, compared, restarted := l.compare(before, after)
	goroutines, rss, fds := l.bounds()
	who := "each process"
	if len(l.Services) > 0 {
		who = "each process of " + strings.Join(l.Services, ", ")
	}
	name := fmt.Sprintf("no leaks: %s at most %s goroutines, %s MiB and %s descriptors more after the run",
		who, limit(goroutines), limit(rss), limit(fds))
	detail := fmt.Sprintf("%d processes compared", len(compared))
	if len(restarted) > 0 {
		detail += fmt.Sprintf("; %s restarted meanwhile, not compared", strings.Join(restarted, ", "))
	}
	if waited >= time.Second {
		detail += fmt.Sprintf("; read %s after the run, once the growth had gone", waited.Round(time.Second))
	}
	if len(over) > 0 {
		detail = strings.Join(over, "; ") + "; " + detail
	}
	r.verdict(name, len(over) == 0, "%s", detail)
	r.Usage = map[string][2]usage{}
	for _, name := range compared {
		r.Usage[name] = [2]usage{before[name], after[name]}
	}
}

// settledUsage reads the processes' usage after the run until none is past the
// bounds, for at most within: what a finished run still holds for a few seconds
// (connections closing, retries ending) is not a leak; what stays is.
func settledUsage(ctx context.Context, data string, l Leaks, before map[string]usage, within time.Duration) (map[string]usage, time.Duration, error) {
	began := time.Now()
	for {
		after, err := readUsage(ctx, data)
		if err != nil {
			return nil, 0, err
		}
		if over, _, _ := l.compare(before, after); len(over) == 0 || time.Since(began) > within {
			return after, time.Since(began), nil
		}
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// bounds are the leak bounds with their defaults; negative means none.
func (l Leaks) bounds() (goroutines, rss, fds float64) {
	bound := func(v, def int) float64 {
		if v == 0 {
			v = def
		}
		return float64(v)
	}
	return bound(l.Goroutines, 100), bound(l.RSSMB, 128), bound(l.FDs, 64)
}

// compare lists the processes past a bound (with how far), those compared and
// those restarted meanwhile.
func (l Leaks) compare(before, after map[string]usage) (over, compared, restarted []string) {
	goroutines, rss, fds := l.bounds()
	names := make([]string, 0, len(after))
	for name := range after {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if service, _, _ := strings.Cut(name, "#"); len(l.Services) > 0 && !slices.Contains(l.Services, service) {
			continue
		}
		a, b := after[name], before[name]
		if b.PID == 0 || b.PID != a.PID {
			restarted = append(restarted, name)
			continue
		}
		compared = append(compared, name)
		if goroutines >= 0 && a.Goroutines-b.Goroutines > goroutines {
			over = append(over, fmt.Sprintf("%s: %+.0f goroutines (%.0f → %.0f)", name, a.Goroutines-b.Goroutines, b.Goroutines, a.Goroutines))
		}
		if rss >= 0 && (a.RSS-b.RSS)/(1<<20) > rss {
			over = append(over, fmt.Sprintf("%s: %+.0f MiB resident (%.0f → %.0f)", name, (a.RSS-b.RSS)/(1<<20), b.RSS/(1<<20), a.RSS/(1<<20)))
		}
		if fds >= 0 && a.FDs-b.FDs > fds {
			over = append(over, fmt.Sprintf("%s: %+.0f open descriptors (%.0f → %.0f)", name, a.FDs-b.FDs, b.FDs, a.FDs))
		}
	}
	return over, compared, restarted
}

func limit(v float64) string {
	if v < 0 {
		return "any"
	}
	return "+" + strconv.FormatFloat(v, 'f', -1, 64)
}
