// Command profilelayers says what share of a CPU profile each layer of a service
// costs — HTTP, gRPC, JSON, SQL, tracing... — attributing each sample to the
// innermost frame that belongs to a layer (so a SQL statement run inside an HTTP
// handler counts as SQL, a write system call inside the HTTP server as system
// calls, and nothing counts twice). Samples in none of them are the service's own
// code, or scheduling.
//
//	profilelayers orders.prof payments.prof ...   one Markdown row per profile, per 1 000 orders
//
// -orders gives how many orders the profiles' window saw, to turn seconds into CPU
// per order. pprof's own views count a frame for every sample beneath it, which
// overlaps layers; hence this reader of the profile format (google/pprof's).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/google/pprof/profile"
)

// layers, innermost first in precedence: a sample's first frame (from the leaf)
// that matches one decides.
var layers = []struct {
	name string
	re   *regexp.Regexp
}{
	{"syscalls", regexp.MustCompile(`^(syscall\.|internal/poll\.|internal/runtime/syscall|runtime\.(futex|epoll|netpoll|usleep|write1|read))`)},
	{"gc+alloc", regexp.MustCompile(`^runtime\.(gc|mallocgc|mark|scan|sweep|bgsweep|bgscavenge|memclr|newobject|makeslice|growslice)`)},
	{"crypto", regexp.MustCompile(`^(crypto/|github\.com/golang-jwt|github\.com/go-jose)`)},
	{"sql", regexp.MustCompile(`^(modernc\.org/sqlite|database/sql|github\.com/jackc/pgx)`)},
	{"json", regexp.MustCompile(`^(encoding/json|github\.com/goccy)`)},
	{"protobuf", regexp.MustCompile(`^google\.golang\.org/protobuf`)},
	{"tracing", regexp.MustCompile(`^go\.opentelemetry\.io`)},
	{"logging", regexp.MustCompile(`^log/slog`)},
	{"metrics", regexp.MustCompile(`^github\.com/prometheus`)},
	{"nats", regexp.MustCompile(`^github\.com/nats-io`)},
	{"grpc", regexp.MustCompile(`^(connectrpc\.com|golang\.org/x/net/http2|net/http\.\(\*http2|net/http\.http2)`)},
	{"http", regexp.MustCompile(`^(net/http|net/textproto|net/url|bufio\.|github\.com/switchyard/switchyard/gateway\.\(\*Wire)`)},
}

func main() {
	orders := flag.Float64("orders", 0, "orders in the profiles' window (0: shares only)")
	parts := flag.String("parts", "", "`name=regexp,...`: instead of layers, split each profile by the outermost frame matching a part (the broker and the hub inside one process)")
	flag.Parse()
	if *parts != "" {
		if err := byParts(*parts, *orders, flag.Args()); err != nil {
			fmt.Fprintln(os.Stderr, "profilelayers:", err)
			os.Exit(1) //nolint:forbidigo // this is main
		}
		return
	}
	fmt.Fprint(os.Stdout, "| process | CPU ms per order |")
	for _, l := range layers {
		fmt.Fprintf(os.Stdout, " %s |", l.name)
	}
	fmt.Fprintln(os.Stdout, " own code, scheduling |")
	fmt.Fprint(os.Stdout, "|---|---:|")
	for range layers {
		fmt.Fprint(os.Stdout, "---:|")
	}
	fmt.Fprintln(os.Stdout, "---:|")
	for _, path := range flag.Args() {
		if err := row(path, *orders); err != nil {
			fmt.Fprintln(os.Stderr, "profilelayers:", err)
			os.Exit(1) //nolint:forbidigo // this is main
		}
	}
}

func read(path string) (*profile.Profile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// byParts prints one row per profile with the share of each named part: a sample
// belongs to the part whose pattern matches the outermost frame (from the root) that
// any part matches, so the work a part asks of a library counts as the part's.
func byParts(spec string, orders float64, paths []string) error {
	type part struct {
		name string
		re   *regexp.Regexp
	}
	var ps []part
	for _, kv := range strings.Split(spec, ",") {
		name, expr, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("-parts: %q is not name=regexp", kv)
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return fmt.Errorf("-parts %s: %w", name, err)
		}
		ps = append(ps, part{name, re})
	}
	fmt.Fprint(os.Stdout, "| process | CPU ms per order |")
	for _, p := range ps {
		fmt.Fprintf(os.Stdout, " %s |", p.name)
	}
	fmt.Fprintln(os.Stdout, " runtime, other |")
	fmt.Fprintln(os.Stdout, "|---|---:|"+strings.Repeat("---:|", len(ps)+1))
	for _, path := range paths {
		p, err := read(path)
		if err != nil {
			return err
		}
		cpu := len(p.SampleType) - 1
		by := make([]int64, len(ps)+1)
		var total int64
		for _, s := range p.Sample {
			v := s.Value[cpu]
			total += v
			owner := len(ps)
		stack:
			for i := len(s.Location) - 1; i >= 0; i-- { // root first
				for _, line := range s.Location[i].Line {
					if line.Function == nil {
						continue
					}
					for j, part := range ps {
						if part.re.MatchString(line.Function.Name) {
							owner = j
							break stack
						}
					}
				}
			}
			by[owner] += v
		}
		printRow(path, total, by, orders)
	}
	return nil
}

func row(path string, orders float64) error {
	p, err := read(path)
	if err != nil {
		return err
	}
	cpu := len(p.SampleType) - 1 // cpu nanoseconds is the last sample type
	by := make([]int64, len(layers)+1)
	var total int64
	for _, s := range p.Sample {
		v := s.Value[cpu]
		total += v
		by[layerOf(s)] += v
	}
	printRow(path, total, by, orders)
	return nil
}

func printRow(path string, total int64, by []int64, orders float64) {
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	perOrder := "—"
	if orders > 0 {
		perOrder = fmt.Sprintf("%.2f", float64(total)/1e6/orders)
	}
	fmt.Fprintf(os.Stdout, "| %s | %s |", name, perOrder)
	for _, v := range by {
		fmt.Fprintf(os.Stdout, " %.0f %% |", 100*float64(v)/float64(max(total, 1)))
	}
	fmt.Fprintln(os.Stdout)
}

// layerOf returns the index of the sample's innermost layer, len(layers) for none.
func layerOf(s *profile.Sample) int {
	for _, loc := range s.Location { // leaf first
		for i := len(loc.Line) - 1; i >= 0; i-- { // inlined frames: innermost first
			if loc.Line[i].Function == nil {
				continue
			}
			name := loc.Line[i].Function.Name
			for j, l := range layers {
				if l.re.MatchString(name) {
					return j
				}
			}
		}
	}
	return len(layers)
}
