#!/usr/bin/env bash
# Soak test: llmcd + llmgw + two llmgw-mock backends on loopback under steady llmgw-bench
# load (closed loop, half streaming) for MINUTES (default 10). Samples RSS and open file
# descriptors of llmgw and llmcd every 10 s and fails when
#   - any request fails (llmgw-bench errors_total > 0) or a process dies,
#   - llmgw's or llmcd's RSS grows by more than RSS_GROWTH_MB (default 32) from the end
#     of the first minute (caches warm) to the end of the run,
#   - llmgw's descriptors exceed its idle count + 4 x CONCURRENCY + 64 while loaded, or
#     stay above idle + 2 x CONCURRENCY + 16 once the load has stopped (leaked sockets).
#
#   scripts/soak.sh [MINUTES]        CONCURRENCY=32 RSS_GROWTH_MB=32 scripts/soak.sh 10
#
# Samples go to $SOAK_DIR/samples.csv (default: a fresh /tmp directory, kept on failure).
set -euo pipefail
cd "$(dirname "$0")/.."

MINUTES="${1:-10}"
case "$MINUTES" in ''|*[!0-9]*) echo "soak.sh: MINUTES must be a whole number" >&2; exit 2 ;; esac
[ "$MINUTES" -ge 2 ] || { echo "soak.sh: MINUTES must be at least 2 (the first minute is warm-up)" >&2; exit 2; }
CONCURRENCY="${CONCURRENCY:-32}"
RSS_GROWTH_MB="${RSS_GROWTH_MB:-32}"
SOAK_DIR="${SOAK_DIR:-$(mktemp -d /tmp/llmgw-soak-XXXXXX)}"
mkdir -p "$SOAK_DIR"

export CCACHE_DIR="${CCACHE_DIR:-$PWD/.cache/ccache}"
scripts/build.sh >/dev/null
BIN="$PWD/build/bin"

PIDS=()
INSTANCE="soak-$$"
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -f "/dev/shm/llmgw-$INSTANCE"
}
trap cleanup EXIT

source "$(dirname "$0")/lib/listening_port.sh"  # listening_port FILE -> port

MOCK_PORTS=()
for i in 0 1; do
  "$BIN/llmgw-mock" --listen 127.0.0.1:0 --model m --token-interval-ms 2 --output-tokens 16 \
    --max-num-seqs 64 >"$SOAK_DIR/mock$i.out" 2>"$SOAK_DIR/mock$i.log" &
  PIDS+=($!)
  MOCK_PORTS+=("$(listening_port "$SOAK_DIR/mock$i.out")")
done

cat >"$SOAK_DIR/llmgw.yaml" <<EOF
instance: $INSTANCE
log_level: warn
gateway: { listen: 127.0.0.1:0, threads: 2 }
admin: { grpc_listen: 127.0.0.1:0, metrics_listen: 127.0.0.1:0 }
health: { interval_ms: 500, timeout_ms: 500 }
models:
  - name: m
    policy: least_connections
    backends:
      - { url: http://127.0.0.1:${MOCK_PORTS[0]} }
      - { url: http://127.0.0.1:${MOCK_PORTS[1]} }
EOF

"$BIN/llmcd" --config "$SOAK_DIR/llmgw.yaml" >"$SOAK_DIR/llmcd.out" 2>"$SOAK_DIR/llmcd.log" &
CD_PID=$!
PIDS+=("$CD_PID")
"$BIN/llmgw" --config "$SOAK_DIR/llmgw.yaml" >"$SOAK_DIR/llmgw.out" 2>"$SOAK_DIR/llmgw.log" &
GW_PID=$!
PIDS+=("$GW_PID")
GW_PORT=$(listening_port "$SOAK_DIR/llmgw.out")
for i in $(seq 1 100); do
  curl -sf -m 1 "http://127.0.0.1:$GW_PORT/ready" >/dev/null && break
  sleep 0.1
done
curl -sf -m 1 "http://127.0.0.1:$GW_PORT/ready" >/dev/null || { echo "soak.sh: llmgw never ready" >&2; exit 1; }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
fds() { ls "/proc/$1/fd" | wc -l; }
alive() { kill -0 "$1" 2>/dev/null; }

GW_FDS_IDLE=$(fds "$GW_PID")
echo "soak: ${MINUTES} min, concurrency $CONCURRENCY, llmgw :$GW_PORT (idle fds $GW_FDS_IDLE), dir $SOAK_DIR"
echo "t_s,llmgw_rss_kb,llmgw_fds,llmcd_rss_kb,llmcd_fds" >"$SOAK_DIR/samples.csv"

DURATION=$((MINUTES * 60))
"$BIN/llmgw-bench" --target "127.0.0.1:$GW_PORT" --concurrency "$CONCURRENCY" --duration "$DURATION" \
  --model m --stream-ratio 0.5 --prompt-tokens uniform:16:256 --timeout-ms 10000 --no-progress \
  --out "$SOAK_DIR/bench.json" >/dev/null 2>"$SOAK_DIR/bench.log" &
BENCH_PID=$!
PIDS+=("$BENCH_PID")

start=$(date +%s)
fail=""
max_gw_fds=0
while alive "$BENCH_PID"; do
  sleep 10
  alive "$BENCH_PID" || break
  t=$(($(date +%s) - start))
  for p in "$GW_PID" "$CD_PID"; do alive "$p" || { fail="a process died (pid $p)"; break 2; }; done
  g_rss=$(rss_kb "$GW_PID"); g_fds=$(fds "$GW_PID"); c_rss=$(rss_kb "$CD_PID"); c_fds=$(fds "$CD_PID")
  echo "$t,$g_rss,$g_fds,$c_rss,$c_fds" >>"$SOAK_DIR/samples.csv"
  [ "$g_fds" -gt "$max_gw_fds" ] && max_gw_fds=$g_fds
  printf 'soak: %4ds llmgw rss %6d kB fds %4d | llmcd rss %6d kB fds %3d\n' "$t" "$g_rss" "$g_fds" "$c_rss" "$c_fds"
done
wait "$BENCH_PID" || fail="${fail:-llmgw-bench exited non-zero}"
sleep 2  # let idle keep-alive connections settle
gw_fds_after=$(fds "$GW_PID" 2>/dev/null || echo 0)

# Warm reference: the first sample at or after 60 s; final: the last sample.
read -r warm_g warm_c < <(awk -F, 'NR>1 && $1>=60 {print $2, $4; exit}' "$SOAK_DIR/samples.csv")
read -r last_g last_c < <(tail -1 "$SOAK_DIR/samples.csv" | awk -F, '{print $2, $4}')
growth_g=$(( (last_g - warm_g) / 1024 ))
growth_c=$(( (last_c - warm_c) / 1024 ))
# The first occurrence of each key is the run's total (later ones are per-bucket series).
json_num() { grep -o "\"$1\":[0-9]*" "$SOAK_DIR/bench.json" | head -1 | cut -d: -f2; }
sent=$(json_num sent)
ok=$(json_num ok)
errors=$(json_num errors_total)

echo "soak: requests sent ${sent:-?} ok ${ok:-?} errors ${errors:-?}"
echo "soak: llmgw rss ${warm_g} -> ${last_g} kB (${growth_g} MB), llmcd rss ${warm_c} -> ${last_c} kB (${growth_c} MB)"
echo "soak: llmgw fds idle ${GW_FDS_IDLE}, max under load ${max_gw_fds}, after load ${gw_fds_after}"

[ -n "$fail" ] || [ "${errors:-1}" = 0 ] || fail="$errors requests failed (see $SOAK_DIR/bench.json)"
[ -n "$fail" ] || [ "${ok:-0}" -gt 0 ] || fail="no request succeeded"
[ -n "$fail" ] || [ "$growth_g" -le "$RSS_GROWTH_MB" ] || fail="llmgw RSS grew ${growth_g} MB (> $RSS_GROWTH_MB)"
[ -n "$fail" ] || [ "$growth_c" -le "$RSS_GROWTH_MB" ] || fail="llmcd RSS grew ${growth_c} MB (> $RSS_GROWTH_MB)"
[ -n "$fail" ] || [ "$max_gw_fds" -le $((GW_FDS_IDLE + 4 * CONCURRENCY + 64)) ] ||
  fail="llmgw held $max_gw_fds descriptors under load (bound $((GW_FDS_IDLE + 4 * CONCURRENCY + 64)))"
[ -n "$fail" ] || [ "$gw_fds_after" -le $((GW_FDS_IDLE + 2 * CONCURRENCY + 16)) ] ||
  fail="llmgw kept $gw_fds_after descriptors after the load (bound $((GW_FDS_IDLE + 2 * CONCURRENCY + 16)))"
if [ -n "$fail" ]; then
  echo "soak: FAILED: $fail (logs and samples in $SOAK_DIR)" >&2
  exit 1
fi
echo "soak: passed"
rm -rf "$SOAK_DIR"
