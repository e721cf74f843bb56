package faults

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/config"
)

// Draw returns the scenario's schedule: its written faults and, when it has a
// random block, faults drawn from it with seed — the same seed, the same
// schedule. services are the platform's, for a block that names none.
func Draw(s *Scenario, seed uint64, services []string) []Fault {
	out := slices.Clone(s.Faults)
	if r := s.Random; r != nil {
		rnd := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		kinds, targets := r.Kinds, r.Services
		if len(kinds) == 0 {
			kinds = []string{"kill", "stop"}
		}
		if len(targets) == 0 {
			targets = services
		}
		load := s.Load.Duration.Std()
		from, to := r.From.Or(load/10), r.To.Or(load*2/3)
		longest := r.For.Or(5 * time.Second)
		for range cmp.Or(r.Faults, 3) {
			f := Fault{At: config.Duration(from + time.Duration(rnd.Int64N(int64(max(to-from, time.Millisecond)))).Round(100*time.Millisecond))}
			switch kind := kinds[rnd.IntN(len(kinds))]; kind {
			case "kill":
				f.Kill = targets[rnd.IntN(len(targets))]
			case "stop":
				f.Stop = targets[rnd.IntN(len(targets))]
			case "broker-kill", "broker-stop":
				f.Broker = strings.TrimPrefix(kind, "broker-")
			case "database-kill", "database-stop":
				f.Database = strings.TrimPrefix(kind, "database-")
			case "redis-kill", "redis-stop":
				f.Redis = strings.TrimPrefix(kind, "redis-")
			case "latency":
				f.Edge, f.Latency = r.Edges[rnd.IntN(len(r.Edges))], config.Duration(time.Second)
			case "reset":
				f.Edge, f.Reset = r.Edges[rnd.IntN(len(r.Edges))], true
			case "blackhole":
				f.Edge, f.BlackHole = r.Edges[rnd.IntN(len(r.Edges))], true
			case "down":
				f.Edge, f.Down = r.Edges[rnd.IntN(len(r.Edges))], true
			case "duplicate":
				f.Deliveries, f.Event = "duplicate", r.Events[rnd.IntN(len(r.Events))]
			}
			if f.Kill == "" {
				f.For = config.Duration(time.Second + time.Duration(rnd.Int64N(int64(max(longest-time.Second, time.Millisecond)))).Round(100*time.Millisecond))
			}
			out = append(out, f)
		}
	}
	slices.SortStableFunc(out, func(a, b Fault) int { return cmp.Compare(a.At, b.At) })
	return out
}

// Shrink reduces a failing schedule to a smaller one that still fails, by delta
// debugging (Zeller's ddmin): it tries the schedule without ever smaller chunks
// of its faults, keeps any reduction that still fails, and stops when removing
// any single fault makes it pass — or when runs is spent. fails runs a schedule
// and reports whether it failed.
func Shrink(schedule []Fault, runs int, fails func([]Fault) bool) []Fault {
	current := slices.Clone(schedule)
	n := 2
	for len(current) >= 2 && runs > 0 {
		chunk := (len(current) + n - 1) / n
		reduced := false
		for start := 0; start < len(current) && runs > 0; start += chunk {
			end := min(start+chunk, len(current))
			candidate := append(slices.Clone(current[:start]), current[end:]...)
			runs--
			if fails(candidate) {
				current, n, reduced = candidate, max(n-1, 2), true
				break
			}
		}
		if !reduced {
			if n >= len(current) {
				break
			}
			n = min(n*2, len(current))
		}
	}
	return current
}
