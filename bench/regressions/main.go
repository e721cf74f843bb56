// Command regressions reads benchstat's CSV comparison of a baseline and a new
// run (benchstat -format csv old.txt new.txt) and reports the benchmarks that got
// worse by more than a threshold, with benchstat's own judgement of significance:
// a delta benchstat prints as "~" is noise and never reported.
//
// Worse depends on the unit: more time, bytes or allocations per operation, or
// less of anything per second (events/s, orders/s). It exits 1 when any
// benchmark regressed, so bench/compare.sh can stop a change before it lands.
//
// benchstat prints the comparison; nothing in x/perf says which way a unit is
// better, hence this small reader of its output.
package main

import (
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

func main() {
	threshold := flag.Float64("threshold", 5, "the smallest change, in percent, reported as a regression")
	flag.Parse()
	found, err := regressions(os.Stdin, os.Stdout, *threshold)
	if err != nil {
		fmt.Fprintln(os.Stderr, "regressions:", err)
		os.Exit(2) //nolint:forbidigo // this is main
	}
	if found > 0 {
		os.Exit(1) //nolint:forbidigo // this is main
	}
}

// regressions writes a line per regressed benchmark and returns how many.
func regressions(in io.Reader, out io.Writer, threshold float64) (int, error) {
	r := csv.NewReader(in)
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	unit, found, compared := "", 0, 0
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return found, err
		}
		switch {
		case len(rec) < 7:
			continue // benchstat's headers (goos: ...) and blank lines
		case rec[0] == "" && rec[5] == "vs base":
			unit = rec[1]
			continue
		case rec[0] == "" || rec[0] == "geomean":
			continue
		}
		delta := strings.TrimSpace(rec[5])
		if delta == "~" || delta == "" || unit == "" {
			continue
		}
		pct, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(delta, "+"), "%"), 64)
		if err != nil {
			continue // "?" when a side is missing
		}
		compared++
		if worse(unit, pct) && abs(pct) >= threshold {
			found++
			fmt.Fprintf(out, "REGRESSION %-50s %-12s %s → %s (%s, %s)\n", rec[0], unit, rec[1], rec[3], delta, rec[6])
		}
	}
	fmt.Fprintf(out, "%d significant changes compared, %d regressions of %g %% or more\n", compared, found, threshold)
	return found, nil
}

// worse reports whether a change of pct percent in unit is for the worse.
func worse(unit string, pct float64) bool {
	if strings.HasSuffix(unit, "/s") || strings.HasSuffix(unit, "/sec") {
		return pct < 0 // a rate: less is worse
	}
	return pct > 0 // sec/op, B/op, allocs/op and other costs: more is worse
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
