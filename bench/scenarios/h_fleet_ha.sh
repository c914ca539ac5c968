#!/usr/bin/env bash
# Scenario (h): the fleet on several "hosts" (network namespaces joined by a bridge,
# 10.80.0.0/24; nothing outside the namespaces created here): etcd, two controllers
# (fleet.etcd, lease_ms 2000), three gateway hosts (an agent + llmgw each) and the four
# mocks of scenario (f) (speeds 1, 1, 0.5, 0.25, prefix cache of 512 blocks). Workload
# of (f): streaming, 32 shared prefixes of 768 tokens (Zipf 1) + 256 unique tokens, 32
# output tokens, open loop at a fraction of the fleet's capacity (estimated as in (f)),
# split evenly over the gateways (one llmgw-bench per gateway host, the same prefix
# groups: a client-side round robin). Policy prefix_affinity. Runs, fresh mocks each:
#   one:        one gateway (llmcd + llmgw, no fleet) takes the whole rate: the reference;
#   per-gateway: three gateways, each with its own llmcd (no fleet): prefix homes per gateway;
#   fleet:      three agents of the HA controllers: prefix homes for the fleet; in the
#               middle of the run the leader is SIGKILLed: failed requests, and the time
#               until each agent has a snapshot from the new leader.
# Prefix-cache hit rate = hit tokens / queried tokens over the four mocks. Needs root.
# Each gateway's client has its own seed (the same prefix groups and popularity, different
# unique parts). Logs of every process are kept in the results directory.
# usage: bench/scenarios/h_fleet_ha.sh [--duration S] [--load F] [--only one|per-gateway|fleet]
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=../lib/options.sh
source bench/lib/options.sh
DUR=20 LOAD=0.5 ONLY=""
bench_options --duration=DUR:S --load=LOAD:F "--only=ONLY:one|per-gateway|fleet" -- "$@"
[ "$(id -u)" -eq 0 ] || { echo "h_fleet_ha.sh: needs root (network namespaces)" >&2; exit 2; }
ETCD=${ETCD:-/usr/bin/etcd}
[ -x "$ETCD" ] || { echo "h_fleet_ha.sh: $ETCD missing (scripts/install-deps.sh)" >&2; exit 2; }
BIN="$PWD/build/bin"
OUT="$PWD/bench/results/h_fleet_ha-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
DIR="$(mktemp -d /tmp/llmgw-benchh-XXXXXX)"
TAG="h$$"
NODES=(etcd ctl0 ctl1 gw0 gw1 gw2 be)
declare -A IP=([etcd]=10.80.0.1 [ctl0]=10.80.0.10 [ctl1]=10.80.0.11 [gw0]=10.80.0.20 [gw1]=10.80.0.21 [gw2]=10.80.0.22
  [be]=10.80.0.30)
# shellcheck source=../../scripts/lib/netns.sh
source "$PWD/scripts/lib/netns.sh"  # ns, netns_up/down, in_ns
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  netns_down
  rm -f /dev/shm/llmgw-bh*-"$TAG" /dev/shm/llmgw-bh*-"$TAG".writer
  mkdir -p "$OUT/logs" && cp "$DIR"/*.log "$OUT/logs/" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
netns_up
wait_for() { local end=$(( $(date +%s) + $1 )); while [ "$(date +%s)" -lt "$end" ]; do eval "$2" && return 0; sleep 0.1; done; return 1; }
first_port() { local l=""; wait_for 10 "l=\$(head -1 '$1' 2>/dev/null); [ -n \"\$l\" ]" || return 1; echo "${l##*:}"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
jget() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
echo "token-$TAG" >"$DIR/token"; chmod 600 "$DIR/token"

SPEEDS=(1 1 0.5 0.25)
MOCK_FLAGS=(--model bench-model --max-num-seqs 16 --token-interval-ms 10 --output-tokens 32
  --prefill-us-per-token 40 --prefix-cache-blocks 512 --block-size 16)
WORK=(--model bench-model --stream-ratio 1 --prefix-groups 32 --prefix-tokens 768 --prompt-tokens fixed:256
  --max-tokens 32 --timeout-ms 60000 --prefix-zipf 1 --no-progress)
MOCK_PIDS=()
start_mocks() {
  MOCK_PIDS=()
  for i in 0 1 2 3; do
    ip netns exec "$(ns be)" "$BIN/llmgw-mock" --listen "${IP[be]}:$((8000 + i))" --speed "${SPEEDS[$i]}" --seed $((i + 1)) \
      "${MOCK_FLAGS[@]}" >"$DIR/mock$i.out" 2>"$DIR/mock$i.log" &
    MOCK_PIDS+=($!)
    PIDS+=($!)
  done
  for i in 0 1 2 3; do wait_for 10 "in_ns be curl -sf -m 1 http://${IP[be]}:$((8000 + i))/mock/stats >/dev/null"; done
}
stop_pids() { for p in "$@"; do kill "$p" 2>/dev/null || true; done; for p in "$@"; do wait "$p" 2>/dev/null || true; done; }
mock_totals() {  # "query hit" over the four mocks
  local q=0 h=0 s
  for i in 0 1 2 3; do
    s=$(in_ns be curl -s -m 5 "http://${IP[be]}:$((8000 + i))/mock/stats")
    q=$((q + $(echo "$s" | grep -o '"prefix_cache_query_tokens":[0-9]*' | cut -d: -f2)))
    h=$((h + $(echo "$s" | grep -o '"prefix_cache_hit_tokens":[0-9]*' | cut -d: -f2)))
  done
  echo "$q $h"
}
config() {  # config INSTANCE ROLE ID GRPC_LISTEN [etcd]
  local fleet=""
  [ "${5:-}" = etcd ] && fleet="fleet: { role: $2, agent_id: $3, etcd: { endpoints: [\"http://${IP[etcd]}:2379\"], prefix: /bench/, lease_ms: 2000 } }"
  cat <<YAML
instance: $1
log_level: info
gateway: { listen: 127.0.0.1:0, threads: 2, retries: { max: 2, backoff_ms: 20 } }
admin: { grpc_listen: "$4", metrics_listen: 127.0.0.1:0, token_file: "$DIR/token" }
health: { interval_ms: 500, timeout_ms: 300, scrape_interval_ms: 250, metrics_stale_ms: 2000 }
control: { tick_ms: 100, heartbeat_ms: 300 }
$fleet
models:
  - name: bench-model
    policy: prefix_affinity
    backends:
      - { id: m0, url: "http://${IP[be]}:8000", max_concurrent: 64 }
      - { id: m1, url: "http://${IP[be]}:8001", max_concurrent: 64 }
      - { id: m2, url: "http://${IP[be]}:8002", max_concurrent: 64 }
      - { id: m3, url: "http://${IP[be]}:8003", max_concurrent: 64 }
YAML
}

# Capacity: one speed-1 mock saturated (as in (f)).
ip netns exec "$(ns be)" "$BIN/llmgw-mock" --listen "${IP[be]}:7999" --speed 1 "${MOCK_FLAGS[@]}" >"$DIR/cal.out" 2>/dev/null &
CAL=$!; PIDS+=($CAL)
wait_for 10 "in_ns be curl -sf -m 1 http://${IP[be]}:7999/mock/stats >/dev/null"
in_ns be "$BIN/llmgw-bench" --target "${IP[be]}:7999" --concurrency 32 --duration 4 "${WORK[@]}" --out "$OUT/calibration.json" >/dev/null
stop_pids "$CAL"
CAP=$(jget "$OUT/calibration.json" "'%.2f' % (d['throughput_rps'] * 2.75)")
RATE=$(echo "$CAP * $LOAD" | bc -l)
echo "scenario (h): capacity estimate $CAP req/s, load $LOAD -> $RATE req/s, ${DUR}s per run; $(nproc) cores"

# run NAME GATEWAYS...: one llmgw-bench per gateway host at RATE/N, at once; hit rate after.
run_load() {
  local name=$1; shift
  local n=$# per; per=$(echo "$RATE / $n" | bc -l)
  local before; before=$(mock_totals)
  local bp=() seed=7
  for g in "$@"; do
    seed=$((seed + 1))
    ip netns exec "$(ns "$g")" "$BIN/llmgw-bench" --target "127.0.0.1:${GWPORT[$g]}" --rate "$per" --duration "$DUR" "${WORK[@]}" \
      --seed "$seed" --out "$OUT/$name.$g.json" >/dev/null 2>"$DIR/$name.$g.bench.log" &
    bp+=($!)
  done
  BENCH_PIDS=("${bp[@]}")
  RUN_BEFORE=$before
}
finish_load() {  # finish_load NAME GATEWAYS... -> prints a summary line, appends a row
  local name=$1; shift
  for p in "${BENCH_PIDS[@]}"; do wait "$p" || true; done
  read -r q0 h0 <<<"$RUN_BEFORE"
  read -r q1 h1 <<<"$(mock_totals)"
  local ok=0 err=0 p99=0
  for g in "$@"; do
    ok=$((ok + $(jget "$OUT/$name.$g.json" "d['ok']")))
    err=$((err + $(jget "$OUT/$name.$g.json" "d['errors_total']")))
    p99=$(python3 -c "print(max($p99, $(jget "$OUT/$name.$g.json" "d['ttft_ms']['p99']")))")
  done
  local hit; hit=$(python3 -c "q=$q1-$q0; h=$h1-$h0; print('%.1f' % (100.0*h/q if q else 0))")
  echo "  $name: ok $ok errors $err, prefix-cache hit $hit %, worst gateway TTFT p99 $p99 ms"
  ROWS+=("| $name | $# | $ok | $err | $hit | $p99 |")
  HIT[$name]=$hit
}
declare -A GWPORT HIT
ROWS=()
GW_PIDS=()
start_gateway_host() {  # start_gateway_host NODE MODE(standalone|agent)
  local g=$1 mode=$2
  if [ "$mode" = standalone ]; then
    config "bh$g-$TAG" controller "$g" 127.0.0.1:9090 >"$DIR/$g.yaml"
  else
    config "bh$g-$TAG" agent "$g" 127.0.0.1:9090 etcd >"$DIR/$g.yaml"
  fi
  ip netns exec "$(ns "$g")" "$BIN/llmcd" --config "$DIR/$g.yaml" >/dev/null 2>"$DIR/$g.llmcd.log" &
  GW_PIDS+=($!); PIDS+=($!)
  rm -f "$DIR/$g.llmgw.out"
  ip netns exec "$(ns "$g")" "$BIN/llmgw" --config "$DIR/$g.yaml" >"$DIR/$g.llmgw.out" 2>"$DIR/$g.llmgw.log" &
  GW_PIDS+=($!); PIDS+=($!)
  GWPORT[$g]=$(first_port "$DIR/$g.llmgw.out")
  wait_for 15 "in_ns $g curl -sf -m 1 http://127.0.0.1:${GWPORT[$g]}/ready >/dev/null"
}
stop_gateways() { stop_pids "${GW_PIDS[@]}"; GW_PIDS=(); rm -f /dev/shm/llmgw-bh*-"$TAG" /dev/shm/llmgw-bh*-"$TAG".writer; }

if [ -z "$ONLY" ] || [ "$ONLY" = one ]; then
  echo "== one gateway"
  start_mocks; start_gateway_host gw0 standalone
  run_load one gw0; finish_load one gw0
  stop_gateways; stop_pids "${MOCK_PIDS[@]}"
fi
if [ -z "$ONLY" ] || [ "$ONLY" = per-gateway ]; then
  echo "== three gateways, prefix homes per gateway"
  start_mocks; for g in gw0 gw1 gw2; do start_gateway_host "$g" standalone; done
  run_load per-gateway gw0 gw1 gw2; finish_load per-gateway gw0 gw1 gw2
  stop_gateways; stop_pids "${MOCK_PIDS[@]}"
fi
if [ -n "$ONLY" ] && [ "$ONLY" != fleet ]; then printf '%s\n' "${ROWS[@]}"; exit 0; fi

echo "== three agents of two HA controllers, prefix homes for the fleet; the leader SIGKILLed mid-run"
ip netns exec "$(ns etcd)" "$ETCD" --name b --data-dir "$DIR/etcd" --listen-client-urls "http://${IP[etcd]}:2379" \
  --advertise-client-urls "http://${IP[etcd]}:2379" --listen-peer-urls "http://${IP[etcd]}:2380" \
  --initial-advertise-peer-urls "http://${IP[etcd]}:2380" --initial-cluster "b=http://${IP[etcd]}:2380" \
  >"$DIR/etcd.log" 2>&1 &
PIDS+=($!)
wait_for 15 "in_ns etcd curl -sf -m 1 -X POST http://${IP[etcd]}:2379/v3/kv/range -d '{\"key\":\"eA==\"}' >/dev/null"
start_mocks
declare -A CTL_PID
for c in ctl0 ctl1; do
  config "bh$c-$TAG" controller "$c" "${IP[$c]}:9090" etcd >"$DIR/$c.yaml"
  ip netns exec "$(ns "$c")" "$BIN/llmcd" --config "$DIR/$c.yaml" >/dev/null 2>"$DIR/$c.log" &
  CTL_PID[$c]=$!; PIDS+=($!)
  [ "$c" = ctl0 ] && wait_for 10 "grep -q 'this controller leads' '$DIR/ctl0.log'"
done
wait_for 10 "grep -q 'standing by' '$DIR/ctl1.log'"
for g in gw0 gw1 gw2; do start_gateway_host "$g" agent; done
run_load fleet gw0 gw1 gw2
sleep "$(echo "$DUR / 2" | bc -l)"
kill -9 "${CTL_PID[ctl0]}"
t0=$(now_ms)
for g in gw0 gw1 gw2; do
  wait_for 20 "grep -q 'connected to the fleet controller.*ctl1' '$DIR/$g.llmcd.log'" &&
    echo "  $g: first snapshot from the new leader $(( $(now_ms) - t0 )) ms after SIGKILL" |
    tee -a "$OUT/failover.txt" || echo "  $g: no snapshot from the new leader" | tee -a "$OUT/failover.txt"
done
finish_load fleet gw0 gw1 gw2
stop_gateways; stop_pids "${MOCK_PIDS[@]}"

{
  echo "| run | gateways | ok | failed | prefix-cache hit % | worst TTFT p99 ms |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "fleet-wide hit rate vs one gateway: ${HIT[fleet]:-?} % vs ${HIT[one]:-?} %; per-gateway homes: ${HIT[per-gateway]:-?} %"
  cat "$OUT/failover.txt"
} | tee "$OUT/summary.md"
