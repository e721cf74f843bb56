#!/usr/bin/env bash
# Where an order's CPU goes: `switchyard up` with every service's profiler on
# (SWITCHYARD_PPROF=1), `switchyard load` through the gateway, and a CPU profile of
# each process over the same window, split by layer — system calls, GC and
# allocation, crypto, SQL, JSON, protobuf, tracing, logging, metrics, NATS, gRPC,
# HTTP, and the service's own code — per service (bench/profilelayers). The broker,
# the trace hub and the children's log pipes live in the `up` process, whose profile
# is split by which of them asked for the work.
#
#   bench/profile-orders.sh          RATE=100 WINDOW=15 to change the load and the profiles' length;
#                                    DATABASE_SPANS=0 without a span per SQL statement
# Profiles go to bench/out/profile-<time>/ (go tool pprof -http :0 <file> to look).
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-100}
WINDOW=${WINDOW:-15}
out=bench/out/profile-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
bin=$(mktemp -d)/switchyard
go build -o "$bin" ./cmd/switchyard
dir=$(mktemp -d)
python3 - switchyard.yaml "$dir/switchyard.yaml" "${DATABASE_SPANS:-1}" <<-'PY'
import sys
s = open(sys.argv[1]).read()
s = s.replace("    description: Stock per product and the reservations orders hold, over gRPC.\n",
              "    description: Stock per product and the reservations orders hold, over gRPC.\n    settings: {seed_quantity: 10000000}\n", 1)
if len(sys.argv) > 3 and sys.argv[3] == "0":
    s = s.replace("telemetry:\n", "telemetry:\n  database_spans: false\n", 1)
open(sys.argv[2], "w").write(s)
PY
(cd "$dir" && exec env SWITCHYARD_PPROF=1 "$bin" up >up.log 2>&1) &
up=$!
trap 'kill -INT $up 2>/dev/null; wait $up 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 200); do grep -q "switchyard is up" "$dir/up.log" 2>/dev/null && break; sleep 0.1; done
services=$(awk '/SERVICE/{f=1;next} f&&NF==3{print $1" "$2} f&&NF==0{exit}' "$dir/up.log")
hub=$(awk '$1=="traces"{print $2; exit}' "$dir/up.log")
(cd "$dir" && "$bin" load --gateway --rate "$RATE" --duration "$((WINDOW + 10))s" --customers 100 --settle 30s --record - \
	>"$dir/load.out" 2>"$dir/load.err") &
load=$!
until grep -q "placing orders" "$dir/load.err" 2>/dev/null; do sleep 0.05; done
sleep 3 # past the first orders' warm-up
hz=$(getconf CLK_TCK)
upcpu() { awk -v hz="$hz" '{printf "%.2f", ($14+$15)/hz}' "/proc/$up/stat"; }
before=$(upcpu)
while read -r name url; do
	curl -s -o "$out/$name.prof" "$url/debug/pprof/profile?seconds=$WINDOW" &
done <<<"$services"
curl -s -o "$out/up.prof" "$hub/debug/pprof/profile?seconds=$WINDOW" &
wait $(jobs -p | grep -v "^$load$" | grep -v "^$up$") 2>/dev/null || true
after=$(upcpu)
wait $load || true
tail -n +1 "$dir/load.out" >"$out/load.txt"
orders=$(awk -v r="$RATE" -v s="$WINDOW" 'BEGIN{print r*s}')

{
	echo "# $(date -u +%FT%TZ), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; $RATE orders/s through the gateway, profiles of $WINDOW s (~$orders orders)"
	echo "# each sample counts for the innermost layer on its stack (bench/profilelayers)"
	go run ./bench/profilelayers -orders "$orders" $(while read -r name _; do echo "$out/$name.prof"; done <<<"$services")
	printf "\n# the up process: %.2f ms per order from /proc; its profile by part\n" "$(echo "($after - $before) * 1000 / $orders" | bc -l)"
	go run ./bench/profilelayers -orders "$orders" -parts 'broker=^github\.com/nats-io/nats-server,hub=^github\.com/switchyard/switchyard/observe,log pipes=^github\.com/switchyard/switchyard/internal/supervisor' "$out/up.prof"
} | tee "$out/summary.md"
echo "profiles in $out"
