#!/usr/bin/env bash
# Chaos suite: llmgw + llmcd in one network namespace, two llmgw-mock backends in two
# others, joined by veth pairs (10.77.0.0/30 and 10.77.1.0/30), nothing outside the
# namespaces created here. Under llmgw-bench load it breaks the network and checks what
# clients see:
#   1. one backend partitioned (its end of the link down: packets vanish, no RST), then
#      healed: bounded failures (at most the requests in flight to it), the other backend
#      takes the traffic, the healed one gets traffic again;
#   2. every backend partitioned: requests fail fast (503, no hang past the timeouts)
#      while it lasts, and succeed again within seconds of the heal;
#   3. a slow link (tbf, 1 Mbit/s with 300 ms of queue) to one backend: streams stay
#      whole (no error); how the traffic splits is reported;
#   4. loss, delay and reorder with netem, only where the kernel has sch_netem: this
#      script says NOT RUN otherwise (and exits 3 with REQUIRE_NETEM=1).
# Needs root (ip netns). One command: scripts/chaos.sh. Bounded: about 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "chaos.sh: needs root (network namespaces)" >&2; exit 2; }
command -v ip >/dev/null && command -v tc >/dev/null || {
  echo "chaos.sh: needs iproute2 (scripts/install-deps.sh)" >&2; exit 2; }

export CCACHE_DIR="${CCACHE_DIR:-$PWD/.cache/ccache}"
scripts/build.sh >/dev/null
BIN="$PWD/build/bin"
DIR="$(mktemp -d /tmp/llmgw-chaos-XXXXXX)"
TAG="c$$"
GW="llmgw-$TAG-gw"; BE0="llmgw-$TAG-be0"; BE1="llmgw-$TAG-be1"
PIDS=()
FAILED=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for ns in "$GW" "$BE0" "$BE1"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -f "/dev/shm/llmgw-chaos-$TAG"
}
trap cleanup EXIT

# ---- topology ------------------------------------------------------------------------
for ns in "$GW" "$BE0" "$BE1"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done
for i in 0 1; do
  be="llmgw-$TAG-be$i"
  ip link add "g$TAG$i" type veth peer name "b$TAG$i"
  ip link set "g$TAG$i" netns "$GW"
  ip link set "b$TAG$i" netns "$be"
  ip -n "$GW" addr add "10.77.$i.1/30" dev "g$TAG$i"
  ip -n "$be" addr add "10.77.$i.2/30" dev "b$TAG$i"
  ip -n "$GW" link set "g$TAG$i" up
  ip -n "$be" link set "b$TAG$i" up
done
# For foreground commands only: a function run with & is a subshell, and $! would be
# its pid, not the process's (cleanup could not stop it).
in_gw() { ip netns exec "$GW" "$@"; }

# A partition: the backend's end of the link goes down. The gateway's end stays up with
# its route, so packets are sent and silently lost (a real partition, not a fast
# "network unreachable").
partition() { ip -n "llmgw-$TAG-be$1" link set "b$TAG$1" down; }
heal() { ip -n "llmgw-$TAG-be$1" link set "b$TAG$1" up; }

source "$(dirname "$0")/lib/listening_port.sh"  # listening_port FILE -> port

for i in 0 1; do
  ip netns exec "llmgw-$TAG-be$i" "$BIN/llmgw-mock" --listen "10.77.$i.2:8000" --model m \
    --token-interval-ms 10 --output-tokens 20 >"$DIR/mock$i.out" 2>"$DIR/mock$i.log" &
  PIDS+=($!)
  listening_port "$DIR/mock$i.out" >/dev/null
done

cat >"$DIR/llmgw.yaml" <<EOF
instance: chaos-$TAG
log_level: warn
gateway:
  listen: 127.0.0.1:0
  threads: 1
  timeouts: { connect_ms: 300, first_byte_ms: 2000, idle_ms: 2000, total_ms: 10000 }
  retries: { max: 2, backoff_ms: 20 }
admin: { grpc_listen: 127.0.0.1:0, metrics_listen: 127.0.0.1:0 }
health: { interval_ms: 200, timeout_ms: 300, unhealthy_after: 2, healthy_after: 1, scrape_interval_ms: 200 }
models:
  - name: m
    policy: least_connections
    backends:
      - { url: http://10.77.0.2:8000 }
      - { url: http://10.77.1.2:8000 }
EOF
ip netns exec "$GW" "$BIN/llmcd" --config "$DIR/llmgw.yaml" >"$DIR/llmcd.out" 2>"$DIR/llmcd.log" &
PIDS+=($!)
ip netns exec "$GW" "$BIN/llmgw" --config "$DIR/llmgw.yaml" >"$DIR/llmgw.out" 2>"$DIR/llmgw.log" &
PIDS+=($!)
GW_PORT=$(listening_port "$DIR/llmgw.out")
for _ in $(seq 1 100); do
  in_gw curl -sf -m 1 "http://127.0.0.1:$GW_PORT/ready" >/dev/null && break
  sleep 0.1
done

mock_requests() {  # requests_total of backend $1, from inside its namespace
  ip netns exec "llmgw-$TAG-be$1" curl -s -m 2 "http://10.77.$1.2:8000/mock/stats" |
    grep -o '"requests_total":[0-9]*' | cut -d: -f2
}
# Runs llmgw-bench in the gateway namespace in the background; results in $DIR/$1.json.
bench() {
  local name="$1"; shift
  ip netns exec "$GW" "$BIN/llmgw-bench" --target "127.0.0.1:$GW_PORT" --model m --no-progress --timeout-ms 15000 \
    --out "$DIR/$name.json" "$@" >/dev/null 2>"$DIR/$name.log" &
  BENCH_PID=$!
}
json_num() { grep -o "\"$2\":[0-9]*" "$DIR/$1.json" | head -1 | cut -d: -f2; }
json_err() { grep -o "\"errors\":{[^}]*}" "$DIR/$1.json" | head -1; }
check() {  # check NAME DESCRIPTION 'SHELL CONDITION'
  local name="$1" what="$2"
  if eval "$3"; then echo "   ok: $what"; else echo "   FAILED: $what"; FAILED+=("$name: $what"); fi
}

# ---- 1. one backend partitioned, then healed ------------------------------------------
echo "== 1. backend 1 partitioned for 4 s under load (8 connections, half streaming)"
CONC=8
bench part1 --concurrency "$CONC" --duration 12 --stream-ratio 0.5
sleep 3
partition 1
sleep 4
heal 1
before_heal=$(mock_requests 1)
wait "$BENCH_PID" || true
after=$(mock_requests 1)
sent=$(json_num part1 sent); ok=$(json_num part1 ok); errs=$(json_num part1 errors_total)
echo "   sent $sent ok $ok errors $errs $(json_err part1); backend 1 requests ${before_heal} -> ${after} after the heal"
check part1 "failures ($errs) at most the requests in flight ($CONC)" '[ "$errs" -le "$CONC" ]'
check part1 "traffic kept flowing ($ok ok of $sent)" '[ "$ok" -ge $((sent * 9 / 10)) ]'
check part1 "the healed backend got traffic again" '[ "$after" -gt "$before_heal" ]'

# ---- 2. every backend partitioned -------------------------------------------------------
echo "== 2. both backends partitioned for 5 s, then healed"
partition 0
partition 1
sleep 1.5   # two health intervals: both unhealthy
start=$(date +%s%N)
code=$(in_gw curl -s -o /dev/null -w '%{http_code}' -m 20 "http://127.0.0.1:$GW_PORT/v1/chat/completions" \
  -H 'Content-Type: application/json' -d '{"model":"m","messages":[{"role":"user","content":"hi"}]}' || true)
took_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "   during the partition: HTTP $code in $took_ms ms"
check part2 "a request during a full partition fails with 503 ($code)" '[ "$code" = 503 ]'
check part2 "and fails within the connect and retry budget ($took_ms ms <= 3000)" '[ "$took_ms" -le 3000 ]'
sleep 3.5
heal 0
heal 1
healed_at=$(date +%s%N)
recovered=""
for _ in $(seq 1 100); do
  code=$(in_gw curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:$GW_PORT/v1/chat/completions" \
    -H 'Content-Type: application/json' -d '{"model":"m","messages":[{"role":"user","content":"hi"}]}' || true)
  if [ "$code" = 200 ]; then recovered=$(( ($(date +%s%N) - healed_at) / 1000000 )); break; fi
  sleep 0.1
done
echo "   first 200 after the heal: ${recovered:-never} ms"
check part2 "served again within 3 s of the heal" '[ -n "$recovered" ] && [ "${recovered:-99999}" -le 3000 ]'
# Full-speed check after recovery: no failures at all.
bench part2b --concurrency 8 --duration 4 --stream-ratio 0.5
wait "$BENCH_PID" || true
errs=$(json_num part2b errors_total); ok=$(json_num part2b ok)
check part2 "after the heal: $ok ok, $errs failed" '[ "$errs" -eq 0 ] && [ "$ok" -gt 0 ]'

# ---- 3. a slow link ---------------------------------------------------------------------
echo "== 3. backend 0 behind a 1 Mbit/s link with 300 ms of queue (tbf), 10 s of streams"
tc_slow() { ip netns exec "$1" tc qdisc add dev "$2" root tbf rate 1mbit burst 8kb latency 300ms; }
tc_slow "$GW" "g${TAG}0"
tc_slow "$BE0" "b${TAG}0"
r0=$(mock_requests 0); r1=$(mock_requests 1)
bench slow --concurrency 16 --duration 10 --stream-ratio 1 --prompt-tokens fixed:2048
wait "$BENCH_PID" || true
d0=$(( $(mock_requests 0) - r0 )); d1=$(( $(mock_requests 1) - r1 ))
errs=$(json_num slow errors_total); ok=$(json_num slow ok)
echo "   ok $ok errors $errs $(json_err slow); requests: slow backend $d0, fast backend $d1"
check slow "every stream complete ($errs failed)" '[ "$errs" -eq 0 ] && [ "$ok" -gt 0 ]'
# The split is reported, not asserted: on a loaded 2-core machine the link is not always
# the bottleneck, and least_connections only shifts traffic when it is.
ip netns exec "$GW" tc qdisc del dev "g${TAG}0" root
ip netns exec "$BE0" tc qdisc del dev "b${TAG}0" root

# ---- 4. loss, delay, reorder (netem) ------------------------------------------------------
echo "== 4. loss / delay / reorder (netem)"
if ip netns exec "$GW" tc qdisc add dev "g${TAG}1" root netem delay 1ms 2>/dev/null; then
  ip netns exec "$GW" tc qdisc del dev "g${TAG}1" root
  echo "   NOT RUN: sch_netem is present but these scenarios are not written yet"
  [ "${REQUIRE_NETEM:-0}" = 1 ] && FAILED+=("netem: not written")
else
  echo "   NOT RUN: this kernel has no sch_netem (tc: unknown qdisc kind); loss, delay and"
  echo "   reorder were not tested. Set REQUIRE_NETEM=1 to make that a failure."
  if [ "${REQUIRE_NETEM:-0}" = 1 ]; then
    echo "chaos.sh: REQUIRE_NETEM=1 and no netem" >&2
    exit 3
  fi
fi

if [ ${#FAILED[@]} -gt 0 ]; then
  echo "chaos.sh: FAILED: ${FAILED[*]} (logs in $DIR)" >&2
  exit 1
fi
echo "chaos.sh: passed (scenarios 1-3; see above for 4)"
rm -rf "$DIR"
