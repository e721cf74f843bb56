#!/usr/bin/env bash
# Confirmed orders per second, end to end: `switchyard up` (every service its own
# process, embedded NATS) driven by `switchyard load` on the same machine, at each
# rate in RATES for DURATION, on SQLite and — when BENCH_POSTGRES names a server,
# e.g. postgres://postgres@127.0.0.1:5432/postgres — on PostgreSQL. Each run starts
# from empty databases with stock that does not run out (inventory seed_quantity),
# and ends with `switchyard check`. It also records the CPU seconds each process
# spent, to say where an order's cost goes.
#
#   bench/orders.sh                      RATES="100 200 300" DURATION=20s
#   SYNC=2m bench/orders.sh              the broker's fsync relaxed (see RESULTS.md)
#   TRACES=nodb bench/orders.sh          no database spans; TRACES=off: no spans at all
#                                        (default: what `up` does — every hop and statement)
#   VIA=services bench/orders.sh         orders sent to each service directly, not through
#                                        the gateway's public API (default: VIA=gateway,
#                                        as customers' apps send them)
set -euo pipefail
cd "$(dirname "$0")/.."
RATES=${RATES:-"100 200 300"}
DURATION=${DURATION:-20s}
SYNC=${SYNC:-always}
TRACES=${TRACES:-full}
VIA=${VIA:-gateway}
via=()
[ "$VIA" = gateway ] && via=(--gateway)
mkdir -p bench/out
out=bench/out/orders-$(date +%Y%m%d-%H%M%S).txt
bin=$(mktemp -d)/switchyard
go build -o "$bin" ./cmd/switchyard
hz=$(getconf CLK_TCK)

cpu() { # pid → CPU seconds so far
	awk -v hz="$hz" '{printf "%.2f", ($14+$15)/hz}' "/proc/$1/stat"
}

run() { # engine rate
	local engine=$1 rate=$2 dir up
	dir=$(mktemp -d)
	sed -e 's/^    sync: always/    sync: '"$SYNC"'/' switchyard.yaml >"$dir/switchyard.yaml"
	# Stock that lasts the run.
	python3 - "$dir/switchyard.yaml" "$TRACES" <<-'PY'
	import sys, re
	p = sys.argv[1]; s = open(p).read()
	s = s.replace("    description: Stock per product and the reservations orders hold, over gRPC.\n",
	              "    description: Stock per product and the reservations orders hold, over gRPC.\n    settings: {seed_quantity: 10000000}\n", 1)
	traces = {"full": "", "nodb": "  database_spans: false\n", "off": "  sample_ratio: 0\n"}[sys.argv[2]]
	s = s.replace("telemetry:\n  log_level: info\n", "telemetry:\n  log_level: info\n" + traces, 1)
	open(p, "w").write(s)
	PY
	local env=()
	if [ "$engine" = postgres ]; then
		local db="bench_$(date +%s%N | tail -c 9)"
		env=(DATABASE_URL="${BENCH_POSTGRES%/*}/$db")
	fi
	(cd "$dir" && exec env "${env[@]}" "$bin" up >up.log 2>&1) &
	up=$!
	for _ in $(seq 1 200); do grep -q "switchyard is up" "$dir/up.log" 2>/dev/null && break; sleep 0.1; done
	grep -q "switchyard is up" "$dir/up.log" || { cat "$dir/up.log"; echo "up did not start" >&2; exit 1; }
	local pids
	pids=$(pgrep -P $up | tr '\n' ' ')
	echo "== $engine, $rate orders/s for $DURATION (broker sync $SYNC, traces $TRACES, via $VIA)" | tee -a "$out"
	(cd "$dir" && env "${env[@]}" "$bin" load "${via[@]}" --rate "$rate" --duration "$DURATION" --customers 100 --settle 60s --record - \
		>"$dir/load.out" 2>"$dir/load.err") &
	local load=$!
	# CPU is counted from the first order (signing customers up hashes passwords).
	until grep -q "placing orders" "$dir/load.err" 2>/dev/null; do sleep 0.05; done
	declare -A before
	local pgpids=""
	[ "$engine" = postgres ] && pgpids=$(pgrep -u postgres -f "postgres" | tr '\n' ' ')
	for p in $up $pids $pgpids; do before[$p]=$(cpu $p 2>/dev/null || echo 0); done
	# ... to a second after the last order was placed (its saga's last steps).
	until grep -q "every order placed" "$dir/load.err" 2>/dev/null; do sleep 0.05; done
	sleep 1
	declare -A after
	for p in $up $pids $pgpids; do after[$p]=$(cpu $p 2>/dev/null || echo "${before[$p]}"); done
	wait $load
	cat "$dir/load.out" | tee -a "$out"
	echo "CPU seconds from the first order to a second after the last:" | tee -a "$out"
	for p in $up $pids; do
		printf "  %-14s %s\n" "$(tr '\0' ' ' </proc/$p/cmdline | awk '{print ($2=="up") ? "broker+up" : $3}')" \
			"$(echo "${after[$p]} - ${before[$p]}" | bc)" | tee -a "$out"
	done
	if [ -n "$pgpids" ]; then
		local total=0
		for p in $pgpids; do total=$(echo "$total + ${after[$p]} - ${before[$p]}" | bc); done
		printf "  %-14s %s\n" postgres "$total" | tee -a "$out"
	fi
	(cd "$dir" && env "${env[@]}" "$bin" check --wait 30s | tail -1) | tee -a "$out"
	kill -INT $up; wait $up 2>/dev/null || true
	if [ "$engine" = postgres ]; then
		for svc in users catalog orders inventory payments notifications; do
			psql "$BENCH_POSTGRES" -qc "DROP DATABASE IF EXISTS ${db}_$svc WITH (FORCE)" >/dev/null
		done
	fi
	rm -rf "$dir"
}

{
	echo "# $(date -u +%FT%TZ) $(go version)"
	echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs"
} | tee -a "$out"
for rate in $RATES; do run sqlite "$rate"; done
if [ -n "${BENCH_POSTGRES:-}" ]; then
	for rate in $RATES; do run postgres "$rate"; done
fi
echo "results in $out"
