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
PIDS+=($!)
taskset -c 0 "$MOCK" --listen 127.0.0.1:0 --model m --token-interval-ms 0 --output-tokens 16 >"$TMP/mock.out" 2>/dev/null &
PIDS+=($!)
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

run() {  # name port script
  local out
  out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -s "$3" "http://127.0.0.1:$2/v1/chat/completions")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  printf '%-34s %12s %10s %10s\n' "$1" "$rps" "$p50" "$p99"
}
printf 'server on core 0, wrk -t1 -c%s -d%ss on core 1\n' "$CONNS" "$DUR"
printf '%-34s %12s %10s %10s\n' "target" "req/s" "p50" "p99"
run "nginx return 200 (fixed body)" "$NPORT" "$TMP/post_false.lua"
run "llmgw-mock non-stream (16 tokens)" "$MPORT" "$TMP/post_false.lua"
run "llmgw-mock SSE stream (16 events)" "$MPORT" "$TMP/post_true.lua"
