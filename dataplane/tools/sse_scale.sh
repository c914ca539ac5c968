#!/usr/bin/env bash
# Holds N concurrent SSE streams through llmgw and reports inter-chunk latency and stalls,
# against the same load sent straight to the mock (what llmgw adds). Loopback only.
#   dataplane/tools/sse_scale.sh [CONCURRENCY=10000] [SECONDS=30] [TOKENS=250] [GW_THREADS=2]
# The mock answers at 50 tokens/s per stream (--token-interval-ms 20, no batch slowdown)
# with room for every stream (--max-num-seqs); llmgw-bench runs a closed loop of
# CONCURRENCY connections. Needs a high `ulimit -n` (raised here; run as root if the hard
# limit is low). Prints the bench JSON of both runs and a summary line each:
#   ttft p50/p99, inter-token p50/p99/p999/max, stall = the largest gap between two
#   tokens of a stream exceeds 100 ms (5x the 20 ms interval), errors, llmgw RSS and CPU.
set -uo pipefail
cd "$(dirname "$0")/../.."
CONC=${1:-10000}; SECS=${2:-30}; TOKENS=${3:-250}; GWT=${4:-2}
NOFILE=$(( CONC * 4 + 4096 ))
# Raising the hard limit needs CAP_SYS_RESOURCE (root outside a restricted container);
# without it, run with the hard limit there is and say what it means for llmgw, which
# holds two descriptors per stream (client + upstream).
[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge "$NOFILE" ] || ulimit -Hn "$NOFILE" 2>/dev/null || echo "note: cannot raise the hard limit to $NOFILE (no CAP_SYS_RESOURCE); using $(ulimit -Hn)"
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $(( CONC * 2 + 64 )) ]; then
  echo "warning: ulimit -n $(ulimit -n) < 2 x $CONC + 64: llmgw cannot hold every stream (client + upstream socket each)"
fi
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$TMP"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_line() { for _ in $(seq 200); do grep -q listening "$1" 2>/dev/null && return 0; sleep 0.05; done; return 1; }

build/bin/llmgw-mock --listen 127.0.0.1:0 --model m --threads 1 --max-num-seqs $(( CONC * 2 )) \
  --kv-capacity-tokens $(( CONC * (TOKENS + 128) * 2 )) --prefix-cache-blocks 0 \
  --token-interval-ms 20 --decode-batch-factor 0 --prefill-us-per-token 0 --output-tokens "$TOKENS" \
  >"$TMP/mock.out" 2>"$TMP/mock.err" &
PIDS+=($!)
wait_line "$TMP/mock.out" || { cat "$TMP/mock.err"; exit 1; }
MPORT=$(sed 's/.*://' "$TMP/mock.out")

GPORT=$(free_port)
cat >"$TMP/gw.yaml" <<YAML
instance: sse-scale-$$
log_level: info
gateway:
  listen: 127.0.0.1:$GPORT
  threads: $GWT
  max_connections: $(( CONC + 1000 ))
models:
  - name: m
    backends:
      - { url: "http://127.0.0.1:$MPORT", max_concurrent: $(( CONC * 2 )) }
YAML
build/bin/llmgw --config "$TMP/gw.yaml" >"$TMP/gw.out" 2>"$TMP/gw.err" &
GPID=$!
PIDS+=($GPID)
wait_line "$TMP/gw.out" || { cat "$TMP/gw.err"; exit 1; }
build/bin/llmgw-dev-publish --config "$TMP/gw.yaml" >/dev/null
for _ in $(seq 100); do curl -sf "127.0.0.1:$GPORT/ready" >/dev/null && break; sleep 0.05; done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
summary() {  # label json
  python3 - "$1" "$2" <<'PY'
import json, sys
label, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
it, tt = r["inter_token_ms"], r["ttft_ms"]
print(f"{label}: ok={r['ok']} errors={r['errors_total']} {r['errors']} rps={r['throughput_rps']:.0f} "
      f"tokens/s={r['output_tokens_per_s']:.0f} ttft p50={tt['p50']:.1f} p99={tt['p99']:.1f} ms "
      f"inter-token p50={it['p50']:.2f} p99={it['p99']:.2f} p999={it['p999']:.2f} max={it['max']:.1f} ms "
      f"stall={'yes' if it['max'] > 100 else 'no'} (max gap > 100 ms)")
PY
}
run() {  # label port
  local out="$TMP/$1.json"
  build/bin/llmgw-bench --target "127.0.0.1:$2" --concurrency "$CONC" --duration "$SECS" --model m \
    --prompt-tokens fixed:16 --timeout-ms 120000 --no-progress --out "$out" >/dev/null 2>"$TMP/$1.err"
  cat "$out"; echo
  summary "$1" "$out"
}
run direct "$MPORT"
c0=$(cpu_ticks "$GPID")
run via-llmgw "$GPORT"
c1=$(cpu_ticks "$GPID")
echo "llmgw: threads=$GWT cpu=$(awk -v t=$(( c1 - c0 )) -v h="$(getconf CLK_TCK)" -v s="$SECS" 'BEGIN {printf "%.1fs (%.0f%% of one core)", t/h, 100*t/h/s}') over the run, rss=$(awk '/VmRSS/ {print $2, $3}' /proc/$GPID/status)"
kill "$GPID"; wait "$GPID" 2>/dev/null
echo "llmgw warnings/errors, ring counters:"
grep -E '"level":"(warn|error)"|worker stopped' "$TMP/gw.err" | sed 's/^{"ts":"[^"]*",//' | sort | uniq -c | head -20
