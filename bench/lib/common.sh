#!/usr/bin/env bash
# Shared helpers for bench/ scenario scripts: free ports, process start/stop, and the
# baselines (nginx proxy_pass with a keep-alive upstream, HAProxy) configured in a temp
# dir on 127.0.0.1 only. Source it; it registers cleanup of everything it starts.
set -euo pipefail

BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${BIN:-$BENCH_ROOT/build/bin}"
BENCH_WORK="$(mktemp -d /tmp/llmgw-bench.XXXXXX)"
BENCH_PIDS=()

bench_cleanup() {
  for p in "${BENCH_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -f "$BENCH_WORK/nginx.pid" ] && kill "$(cat "$BENCH_WORK/nginx.pid")" 2>/dev/null || true
  rm -rf "$BENCH_WORK"
}
trap bench_cleanup EXIT INT TERM

free_port() {
  local p=${1:-20000}
  while (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

wait_http() {  # wait_http URL [SECONDS]
  local i
  for ((i = 0; i < ${2:-10} * 20; i++)); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: $1 did not come up" >&2
  return 1
}

# start_mock NAME [mock flags...] -> echoes the port
start_mock() {
  local name=$1; shift
  "$BIN/llmgw-mock" --listen 127.0.0.1:0 "$@" >"$BENCH_WORK/$name.out" 2>"$BENCH_WORK/$name.log" &
  BENCH_PIDS+=($!)
  local i
  for ((i = 0; i < 200; i++)); do
    if grep -q '^listening ' "$BENCH_WORK/$name.out" 2>/dev/null; then
      sed -n 's/^listening 127.0.0.1:\([0-9]*\).*/\1/p' "$BENCH_WORK/$name.out" | head -1
      return 0
    fi
    sleep 0.05
  done
  echo "bench: mock $name did not start" >&2
  return 1
}

# start_nginx WORKERS LISTEN_PORT UPSTREAM_PORT... : proxy_pass with keepalive upstream,
# access log off, buffering off (as one would configure nginx in front of SSE).
start_nginx() {
  local workers=$1 port=$2; shift 2
  local servers=""
  for u in "$@"; do servers+="    server 127.0.0.1:$u;"$'\n'; done
  cat >"$BENCH_WORK/nginx.conf" <<NGINX
worker_processes $workers;
pid $BENCH_WORK/nginx.pid;
error_log $BENCH_WORK/nginx-error.log warn;
daemon on;
events { worker_connections 20000; }
http {
  access_log off;
  client_body_temp_path $BENCH_WORK/nginx-body;
  proxy_temp_path $BENCH_WORK/nginx-proxy;
  upstream backends {
$servers    keepalive 256;
  }
  server {
    listen 127.0.0.1:$port reuseport;
    location / {
      proxy_pass http://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
NGINX
  nginx -c "$BENCH_WORK/nginx.conf" -p "$BENCH_WORK"
  wait_http "http://127.0.0.1:$port/health" 10
}

# start_haproxy THREADS LISTEN_PORT UPSTREAM_PORT...
start_haproxy() {
  local threads=$1 port=$2; shift 2
  local servers="" i=0
  for u in "$@"; do servers+="  server s$i 127.0.0.1:$u"$'\n'; i=$((i + 1)); done
  cat >"$BENCH_WORK/haproxy.cfg" <<HAP
global
  nbthread $threads
  maxconn 40000
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:$port
  default_backend be
backend be
  balance leastconn
  http-reuse always
$servers
HAP
  haproxy -f "$BENCH_WORK/haproxy.cfg" >"$BENCH_WORK/haproxy.log" 2>&1 &
  BENCH_PIDS+=($!)
  wait_http "http://127.0.0.1:$port/health" 10
}

# write_gateway_config FILE THREADS LISTEN_PORT GRPC_PORT METRICS_PORT POLICY UPSTREAM_PORT...
write_gateway_config() {
  local file=$1 threads=$2 port=$3 grpc=$4 metrics=$5 policy=$6; shift 6
  {
    echo "instance: bench-$$-$port"
    echo "log_level: warn"
    echo "gateway: { listen: 127.0.0.1:$port, threads: $threads }"
    echo "admin: { grpc_listen: 127.0.0.1:$grpc, metrics_listen: 127.0.0.1:$metrics }"
    echo "health: { interval_ms: 1000, timeout_ms: 500 }"
    echo "models:"
    echo "  - name: bench-model"
    echo "    policy: $policy"
    echo "    backends:"
    local i=0
    for u in "$@"; do
      echo "      - { id: b$i, url: \"http://127.0.0.1:$u\", max_concurrent: 100000 }"
      i=$((i + 1))
    done
  } >"$file"
}

machine_note() {
  echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -r), $(date -u +%Y-%m-%d)"
}
