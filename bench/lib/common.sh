#!/usr/bin/env bash
# Shared helpers for bench/ scenario scripts: the process helpers of scripts/lib/procs.sh,
# llmcd + llmgw start-up, and the baselines (nginx proxy_pass with a keep-alive upstream,
# HAProxy) configured in a temp dir on 127.0.0.1 only. Source it; it registers cleanup of
# everything it starts.
set -euo pipefail

BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="${BIN:-$BENCH_ROOT/build/bin}"
PROCS_TAG=bench
# shellcheck source=../../scripts/lib/procs.sh
source "$BENCH_ROOT/scripts/lib/procs.sh"   # work dir, cleanup, free_port, wait_http, start_mock
BENCH_WORK="$PROCS_WORK"
# shellcheck source=options.sh
source "$BENCH_ROOT/bench/lib/options.sh"   # bench_options: the scenario's command line

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
worker_rlimit_nofile 100000;
events { worker_connections 60000; }
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_body_temp_path $BENCH_WORK/nginx-body;
  proxy_temp_path $BENCH_WORK/nginx-proxy;
  upstream backends {
$servers    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$port reuseport;
    location / {
      proxy_pass ${NGINX_UPSTREAM_SCHEME:-http}://backends;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
${NGINX_EXTRA_LOCATION:-}
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
  maxconn 9900
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
  HAPROXY_PID=$!
  PROCS_PIDS+=($!)
  wait_http "http://127.0.0.1:$port/health" 10
}

# write_gateway_config FILE THREADS LISTEN_PORT GRPC_PORT METRICS_PORT POLICY UPSTREAM...
# UPSTREAM is PORT or PORT:WEIGHT. LISTEN_PORT may be 0 (llmgw prints its port). Extra
# top-level YAML (health:, routing:, circuit_breaker:, ...) comes from $GW_EXTRA_YAML and
# extra gateway: keys from $GW_EXTRA_GATEWAY (flow-map entries, e.g. "retries: {max: 2}").
BENCH_INSTANCE_SEQ=0
write_gateway_config() {
  local file=$1 threads=$2 port=$3 grpc=$4 metrics=$5 policy=$6; shift 6
  BENCH_INSTANCE_SEQ=$((BENCH_INSTANCE_SEQ + 1))
  {
    echo "instance: bench-$$-$BENCH_INSTANCE_SEQ"
    echo "log_level: warn"
    echo "gateway: { listen: 127.0.0.1:$port, threads: $threads, max_connections: 200000${GW_EXTRA_GATEWAY:+, $GW_EXTRA_GATEWAY} }"
    echo "admin: { grpc_listen: 127.0.0.1:$grpc, metrics_listen: 127.0.0.1:$metrics }"
    if [ -n "${GW_EXTRA_YAML:-}" ]; then
      printf '%s\n' "$GW_EXTRA_YAML"
    else
      echo "health: { interval_ms: 1000, timeout_ms: 500 }"
    fi
    echo "models:"
    echo "  - name: bench-model"
    echo "    policy: $policy"
    echo "    backends:"
    local i=0 u w
    for u in "$@"; do
      w=1
      case $u in *:*) w=${u#*:}; u=${u%%:*} ;; esac
      # GW_BACKEND_SCHEME=https and GW_BACKEND_EXTRA (say, "tls: { ca_file: ... }") for TLS backends.
      echo "      - { id: b$i, url: \"${GW_BACKEND_SCHEME:-http}://127.0.0.1:$u\", max_concurrent: ${GW_MAX_CONCURRENT:-100000}, weight: $w${GW_BACKEND_EXTRA:+, $GW_BACKEND_EXTRA} }"
      i=$((i + 1))
    done
  } >"$file"
}

# start_llmcd CONFIG: the real control plane, publishing the snapshot into shm.
start_llmcd() {
  "$BIN/llmcd" --config "$1" >"$BENCH_WORK/llmcd.$BENCH_INSTANCE_SEQ.out" 2>"$BENCH_WORK/llmcd.$BENCH_INSTANCE_SEQ.log" &
  PROCS_PIDS+=($!)
  LLMCD_PID=$!
}

# start_llmgw CONFIG [taskset cpu list] -> sets GW_PORT and GW_PID; waits for /ready 200
# (snapshot published and a backend eligible).
start_llmgw() {
  local cfg=$1 cpus=${2:-} out="$BENCH_WORK/llmgw.$BENCH_INSTANCE_SEQ.out"
  if [ -n "$cpus" ]; then
    taskset -c "$cpus" "$BIN/llmgw" --config "$cfg" >"$out" 2>"$BENCH_WORK/llmgw.$BENCH_INSTANCE_SEQ.log" &
  else
    "$BIN/llmgw" --config "$cfg" >"$out" 2>"$BENCH_WORK/llmgw.$BENCH_INSTANCE_SEQ.log" &
  fi
  GW_PID=$!
  PROCS_PIDS+=($GW_PID)
  local i
  for ((i = 0; i < 200; i++)); do
    grep -q '^listening ' "$out" 2>/dev/null && break
    sleep 0.05
  done
  GW_PORT=$(sed -n 's/^listening [^:]*:\([0-9]*\).*/\1/p' "$out" | head -1)
  [ -n "$GW_PORT" ] || { echo "bench: llmgw did not start:" >&2; cat "$BENCH_WORK/llmgw.$BENCH_INSTANCE_SEQ.log" >&2; return 1; }
  for ((i = 0; i < 200; i++)); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GW_PORT/ready")" = 200 ] && return 0
    sleep 0.05
  done
  echo "bench: llmgw on $GW_PORT never became ready" >&2
  return 1
}

# start_gateway THREADS POLICY UPSTREAM... : llmcd + llmgw on fresh ports -> GW_PORT, GW_PID,
# LLMCD_PID, GW_CONFIG
start_gateway() {
  local threads=$1 policy=$2; shift 2
  GW_CONFIG="$BENCH_WORK/gw.$((BENCH_INSTANCE_SEQ + 1)).yaml"
  local grpc metrics
  grpc=$(free_port 31000); metrics=$(free_port $((grpc + 1)))
  write_gateway_config "$GW_CONFIG" "$threads" 0 "$grpc" "$metrics" "$policy" "$@"
  start_llmcd "$GW_CONFIG"
  start_llmgw "$GW_CONFIG" "${GW_CPUS:-}"
}

stop_pid() {  # stop_pid PID: TERM, wait up to 3 s, then KILL
  local p=$1 i
  kill "$p" 2>/dev/null || return 0
  for ((i = 0; i < 60; i++)); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.05; done
  kill -9 "$p" 2>/dev/null || true
}

stop_gateway() { stop_pid "$GW_PID"; stop_pid "$LLMCD_PID"; }

stop_nginx() {
  [ -f "$BENCH_WORK/nginx.pid" ] || return 0
  local p; p=$(cat "$BENCH_WORK/nginx.pid")
  stop_pid "$p"
  rm -f "$BENCH_WORK/nginx.pid"
}

# CPU ticks (utime+stime) of a process and its children (nginx workers).
cpu_ticks() {
  local t=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat")))
  done
  echo "$t"
}

# RSS in KB of a process and its children.
rss_kb() {
  local t=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    [ -r "/proc/$p/status" ] && t=$((t + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status")))
  done
  echo "$t"
}

bench() { "$BIN/llmgw-bench" --no-progress "$@"; }

# jq-less JSON field read: jget FILE 'python expression on d'
jget() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# results dir for a scenario: bench/results/<name>-<utc stamp>
results_dir() {
  local d="$BENCH_ROOT/bench/results/$1-$(date -u +%Y%m%dT%H%M%S)"
  mkdir -p "$d"
  echo "$d"
}

machine_note() {
  echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -r), $(date -u +%Y-%m-%d)"
}

# write_post_lua: $BENCH_WORK/post.lua, wrk's keep-alive POST of a small non-streaming chat
# request to model bench-model.
write_post_lua() {
  cat >"$BENCH_WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"bench-model","stream":false,"messages":[{"role":"user","content":"hello"}]}'
wrk.headers["Content-Type"] = "application/json"
LUA
}

to_us() {  # wrk latency like 312.00us / 1.20ms / 2.00s -> microseconds
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000; else if (v ~ /s$/) print n * 1e6; else print n }'
}

# wrk_figures WRK_OUTPUT TICKS: from `wrk --latency` output sets rps, reqs, p50 and p99 (us),
# non2xx, errs (socket errors) and cpu (the proxy's CPU us per request, from the
# cpu_ticks difference TICKS over the run).
wrk_figures() {
  local w=$1 ticks=$2
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$w")
  reqs=$(awk '/requests in/ {print $1}' <<<"$w")
  p50=$(to_us "$(awk '$1=="50%" {print $2}' <<<"$w")")
  p99=$(to_us "$(awk '$1=="99%" {print $2}' <<<"$w")")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$w"); non2xx=${non2xx:-0}
  errs=$(awk '/Socket errors/ {s=0; for (i=1;i<=NF;i++) if ($i ~ /^[0-9]+,?$/) s+=$i; print s}' <<<"$w"); errs=${errs:-0}
  cpu=$(awk -v t="$ticks" -v n="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", n ? t / hz * 1e6 / n : 0}')
}
