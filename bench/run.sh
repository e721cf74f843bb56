#!/usr/bin/env bash
# Runs Switchyard's benchmarks and summarises them with benchstat (pinned in
# tools/go.mod). Usage: bench/run.sh [regexp]   e.g. bench/run.sh 'Loopback|Policies'
# Results go to bench/out/; RESULTS.md records the figures with machine and date.
set -euo pipefail
cd "$(dirname "$0")/.."
pattern=${1:-.}
mkdir -p bench/out
out=bench/out/go-bench-$(date +%Y%m%d-%H%M%S).txt
{
	echo "# $(date -u +%FT%TZ) $(go version)"
	echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs"
} >"$out"
go test -run '^$' -bench "$pattern" -benchtime 2s -count 6 ./bench/ | tee -a "$out"
go tool -modfile=tools/go.mod benchstat "$out"
