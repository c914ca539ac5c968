#!/usr/bin/env bash
# Measures llmgw-mock against nginx serving a fixed response, both pinned to one core, with
# wrk on the other core; prints a table. The mock must never be the bottleneck of a gateway
# benchmark, so it should keep up with nginx here.
# usage: bench/scenarios/mock_vs_nginx.sh [DURATION_S] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-10}
CONNS=${2:-64}
MOCK=build/bin/llmgw-mock
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# The same 16-token chat completion body the mock returns, so both answer the same bytes.
"$MOCK" --listen 127.0.0.1:0 --model m --token-interval-ms 0 --output-tokens 16 >"$TMP/mock.out" 2>/dev/null &
PIDS+=($!)
for _ in $(seq 50); do grep -q listening "$TMP/mock.out" 2>/dev/null && break; sleep 0.1; done
MPORT=$(sed 's/.*://' "$TMP/mock.out")
FIXED=$(curl -s "127.0.0.1:$MPORT/v1/chat/completions" -d '{"model":"m","messages":[{"role":"user","content":"hello"}]}')
kill "${PIDS[0]}"; PIDS=()

NPORT=$(free_port)
mkdir -p "$TMP/nginx/logs"
printf '%s' "$FIXED" >"$TMP/nginx/fixed.json"
cat >"$TMP/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
error_log $TMP/nginx/logs/error.log crit;
pid $TMP/nginx/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $TMP/nginx;
  proxy_temp_path $TMP/nginx; fastcgi_temp_path $TMP/nginx; uwsgi_temp_path $TMP/nginx; scgi_temp_path $TMP/nginx;
  server {
    listen 127.0.0.1:$NPORT;
    location / { default_type application/json; return 200 '$(cat "$TMP/nginx/fixed.json")'; }
  }
}
CONF
taskset -c 0 nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" &
NGINX_PID=$!
PIDS+=($NGINX_PID)
taskset -c 0 "$MOCK" --listen 127.0.0.1:0 --model m --token-interval-ms 0 --output-tokens 16 >"$TMP/mock.out" 2>/dev/null &
MOCK_PID=$!
PIDS+=($MOCK_PID)
for _ in $(seq 50); do grep -q listening "$TMP/mock.out" 2>/dev/null && break; sleep 0.1; done
MPORT=$(sed 's/.*://' "$TMP/mock.out")
sleep 0.3

for stream in false true; do
  cat >"$TMP/post_$stream.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"m","stream":$stream,"messages":[{"role":"user","content":"hello"}]}'
wrk.headers["Content-Type"] = "application/json"
LUA
done

# CPU ticks (utime+stime) of a process and its children: on a shared, noisy machine the
# server's CPU time per request is steadier than requests/s, which also measures wrk and
# whoever else runs on the core.
cpu_ticks() {
  local t=0 p
  for p in "$1" $(pgrep -P "$1" || true); do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done
  echo "$t"
}
run() {  # name port script pid
  local out before after reqs
  before=$(cpu_ticks "$4")
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -s "$3" "http://127.0.0.1:$2/v1/chat/completions")
  after=$(cpu_ticks "$4")
  local rps p50 p99 us
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  us=$(awk -v t=$((after - before)) -v n="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
  printf '%-34s %12s %10s %10s %18s\n' "$1" "$rps" "$p50" "$p99" "$us"
}
printf 'server on core 0, wrk -t1 -c%s -d%ss on core 1\n' "$CONNS" "$DUR"

printf '%-34s %12s %10s %10s %18s\n' "target" "req/s" "p50" "p99" "server-cpu-us/req"
run "nginx return 200 (fixed body)" "$NPORT" "$TMP/post_false.lua" "$NGINX_PID"
run "llmgw-mock non-stream (16 tokens)" "$MPORT" "$TMP/post_false.lua" "$MOCK_PID"
run "llmgw-mock SSE stream (16 events)" "$MPORT" "$TMP/post_true.lua" "$MOCK_PID"
