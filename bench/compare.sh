#!/usr/bin/env bash
# Compares a fresh run of Switchyard's benchmarks with the committed baseline
# (bench/baseline.txt) and prints the regressions benchstat finds significant —
# for a developer to run before a change lands. Exits 1 when there is one.
#
# Usage: bench/compare.sh [regexp]           run the benchmarks matching regexp, then compare
#        bench/compare.sh -f new.txt         compare a run already made (bench/run.sh writes bench/out/)
#        bench/compare.sh -update [regexp]   make a fresh run the baseline (commit it with the figures)
# THRESHOLD=5 sets the smallest change reported, in percent. Baseline and run must
# come from the same kind of machine: the baseline's header names the one it came from.
set -euo pipefail
cd "$(dirname "$0")/.."
baseline=bench/baseline.txt
threshold=${THRESHOLD:-5}
update=false new=""
case "${1:-}" in
-update) update=true; shift ;;
-f) new=$2; shift 2 ;;
esac
pattern=${1:-.}
if [ -z "$new" ]; then
	mkdir -p bench/out
	new=bench/out/go-bench-$(date +%Y%m%d-%H%M%S).txt
	{
		echo "# $(date -u +%FT%TZ) $(go version)"
		echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs"
	} >"$new"
	go test -run '^$' -bench "$pattern" -benchtime 2s -count 6 ./bench/ | tee -a "$new"
fi
if $update; then
	cp "$new" "$baseline"
	echo "bench/baseline.txt is now $new"
	exit 0
fi
[ -f "$baseline" ] || { echo "no $baseline: make one with bench/compare.sh -update" >&2; exit 2; }
echo "baseline: $(head -2 "$baseline" | tr '\n' ' ')"
echo "this run: $(head -2 "$new" | tr '\n' ' ')"
go tool -modfile=tools/go.mod benchstat "$baseline" "$new"
echo
go tool -modfile=tools/go.mod benchstat -format csv "$baseline" "$new" 2>/dev/null | go run ./bench/regressions -threshold "$threshold"
