#!/usr/bin/env bash
# The gateway against its peers, in one run on one machine: wrk against the same
# small JSON backend directly, through Switchyard's gateway (passing requests on; on
# net/http's transport instead of Wire; with every feature a production route has:
# JWT verification, a rate limit, load shedding, tracing), through Caddy and through
# nginx (both from Debian packages: apt-get install caddy nginx-light wrk); and a
# cached route, the gateway answering from its response cache, against nginx's
# proxy_cache doing the same.
#
# Usage: bench/gateway.sh        DURATION=10s CONNECTIONS=64 THREADS=2 to change the load.
# Prints a Markdown table (rps, p99, ratio to direct) to paste into RESULTS.md; raw
# wrk output goes to bench/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
for tool in wrk nginx caddy; do
	command -v "$tool" >/dev/null || { echo "bench/gateway.sh needs $tool (apt-get install wrk nginx-light caddy)" >&2; exit 1; }
done
work=$(mktemp -d)
out=bench/out/gateway-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	[ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/gatewaybench" ./bench/gatewaybench
bin="$work/gatewaybench"
"$bin" -mode backend -listen 127.0.0.1:9001 & pids+=($!)
"$bin" -mode passthrough -listen 127.0.0.1:9002 & pids+=($!)
"$bin" -mode passthrough-std -listen 127.0.0.1:9003 & pids+=($!)
"$bin" -mode full -listen 127.0.0.1:9004 -token-file "$work/token" & pids+=($!)
"$bin" -mode cached -listen 127.0.0.1:9007 & pids+=($!)

cat >"$work/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
daemon on;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $work; proxy_temp_path $work; fastcgi_temp_path $work; uwsgi_temp_path $work; scgi_temp_path $work;
	upstream backend { server 127.0.0.1:9001; keepalive 256; }
	proxy_cache_path $work/cache keys_zone=answers:10m;
	server {
		listen 127.0.0.1:9005;
		location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
	}
	server {
		listen 127.0.0.1:9008;
		location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection "";
			proxy_cache answers; proxy_cache_valid 200 1m; }
	}
}
NGINX
nginx -c "$work/nginx.conf" -p "$work"

cat >"$work/Caddyfile" <<CADDY
{
	admin off
	auto_https off
}
http://127.0.0.1:9006 {
	reverse_proxy 127.0.0.1:9001
}
CADDY
caddy run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 & pids+=($!)

for port in 9001 9002 9003 9004 9005 9006 9007 9008; do
	for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done
token=$(cat "$work/token")

run() { # name url [header]
	local name=$1 url=$2 file="$out/$1.txt"
	shift 2
	wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$@" "$url" >/dev/null # warm-up
	wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" >"$file"
	local rps p99 non2xx
	rps=$(awk '/^Requests\/sec/ {print $2}' "$file")
	p99=$(awk '$1=="99%" {print $2}' "$file")
	non2xx=$(awk '/Non-2xx/ {print $5}' "$file")
	echo "$name $rps $p99 ${non2xx:-0}"
}

{
	run direct http://127.0.0.1:9001/v1/products/p-0001
	run gateway-passthrough http://127.0.0.1:9002/api/v1/products/p-0001
	run gateway-passthrough-nethttp-transport http://127.0.0.1:9003/api/v1/products/p-0001
	run gateway-jwt-ratelimit-tracing http://127.0.0.1:9004/api/v1/products/p-0001 -H "Authorization: Bearer $token"
	run nginx http://127.0.0.1:9005/v1/products/p-0001
	run caddy http://127.0.0.1:9006/v1/products/p-0001
	run gateway-cached-route http://127.0.0.1:9007/api/v1/products/p-0001
	run nginx-proxy-cache http://127.0.0.1:9008/v1/products/p-0001
} | tee "$out/summary.txt"

echo
echo "$(date -u +%F), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; wrk -t$THREADS -c$CONNECTIONS -d$DURATION; all on this machine"
echo
echo "| path | requests/s | p99 | ratio to direct | non-2xx |"
echo "|---|---:|---:|---:|---:|"
awk 'NR==1 {direct=$2} {printf "| %s | %.0f | %s | %.2f× | %s |\n", $1, $2, $3, $2/direct, $4}' "$out/summary.txt"
