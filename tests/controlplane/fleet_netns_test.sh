#!/usr/bin/env bash
# The HA fleet on more than one "host": etcd, two controllers, the gateway host (agent +
# llmgw) and the backends each in their own network namespace, joined by veth pairs to a
# bridge in a hub namespace (10.79.0.0/24), nothing outside the namespaces created here.
# Under llmgw-bench load the leading controller is partitioned (its end of the link down:
# packets vanish, no reset, so neither etcd nor the agent hears from it) and later healed:
#   - the partitioned leader steps down by itself (it cannot renew its lease),
#   - the standby takes the lead and the agent re-attaches to it (the silent link is
#     noticed after three heartbeats without a snapshot),
#   - no client request fails, and after the heal the old leader stands by.
# Usage: fleet_netns_test.sh BIN_DIR [ETCD_BIN]. Needs root (ip netns); exit 77 = skipped.
# Bounded: about 30 s.
set -euo pipefail
BIN="${1:?usage: fleet_netns_test.sh BIN_DIR [ETCD_BIN]}"
ETCD="${2:-/usr/bin/etcd}"
[ "$(id -u)" -eq 0 ] || { echo "SKIPPED: needs root (network namespaces)"; exit 77; }
command -v ip >/dev/null || { echo "SKIPPED: needs iproute2"; exit 77; }
[ -x "$ETCD" ] || { echo "SKIPPED: $ETCD missing (scripts/install-deps.sh installs etcd-server)"; exit 77; }
ip netns add "llmgw-probe-$$" 2>/dev/null || { echo "SKIPPED: cannot create network namespaces here"; exit 77; }
ip netns del "llmgw-probe-$$"

DIR="$(mktemp -d /tmp/llmgw-fleetns-XXXXXX)"
TAG="n$$"
NODES=(etcd ctl0 ctl1 gw be)
declare -A IP=([etcd]=10.79.0.1 [ctl0]=10.79.0.10 [ctl1]=10.79.0.11 [gw]=10.79.0.20 [be]=10.79.0.30)
# shellcheck source=../../scripts/lib/netns.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/netns.sh"  # ns, netns_up/down, in_ns
PIDS=()
FAILED=()
LEASE_MS=2000

cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  netns_down
  for i in c0 c1 a; do rm -f "/dev/shm/llmgw-fns$i-$TAG" "/dev/shm/llmgw-fns$i-$TAG.writer"; done
  if [ ${#FAILED[@]} -eq 0 ]; then rm -rf "$DIR"; else echo "logs kept in $DIR"; fi
}
trap cleanup EXIT

# ---- topology: one bridge in the hub, one veth per node ---------------------------------
netns_up
partition() { local v="IF_$1"; ip -n "$(ns "$1")" link set "${!v}" down; }
heal() { local v="IF_$1"; ip -n "$(ns "$1")" link set "${!v}" up; }
wait_for() {  # wait_for TIMEOUT_S 'CONDITION'
  local end=$(( $(date +%s) + $1 ))
  while [ "$(date +%s)" -lt "$end" ]; do eval "$2" && return 0; sleep 0.1; done
  return 1
}
listening_port() {  # the port of "listening 127.0.0.1:PORT" on the first line of FILE
  local line=""
  wait_for 5 "line=\$(head -1 '$1' 2>/dev/null); [ -n \"\$line\" ]" || return 1
  echo "${line##*:}"
}
check() {  # check DESCRIPTION 'CONDITION'
  if eval "$2"; then echo "   ok: $1"; else echo "   FAILED: $1"; FAILED+=("$1"); fi
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# ---- processes ------------------------------------------------------------------------
ip netns exec "$(ns etcd)" "$ETCD" --name ns --data-dir "$DIR/etcd" --listen-client-urls "http://${IP[etcd]}:2379" \
  --advertise-client-urls "http://${IP[etcd]}:2379" --listen-peer-urls "http://${IP[etcd]}:2380" \
  --initial-advertise-peer-urls "http://${IP[etcd]}:2380" --initial-cluster "ns=http://${IP[etcd]}:2380" \
  >"$DIR/etcd.log" 2>&1 &
PIDS+=($!)
wait_for 15 "in_ns etcd curl -sf -m 1 -X POST http://${IP[etcd]}:2379/v3/kv/range -d '{\"key\":\"eA==\"}' >/dev/null" ||
  { echo "etcd did not start"; cat "$DIR/etcd.log"; FAILED+=(etcd); exit 1; }
for p in 8000 8001; do
  ip netns exec "$(ns be)" "$BIN/llmgw-mock" --listen "${IP[be]}:$p" --model m --token-interval-ms 5 --output-tokens 8 \
    >"$DIR/mock$p.out" 2>"$DIR/mock$p.log" &
  PIDS+=($!)
done
config() {  # config INSTANCE ROLE ID GRPC_LISTEN
  cat <<YAML
instance: $1
log_level: info
gateway: { listen: 127.0.0.1:0, threads: 1, retries: { max: 2, backoff_ms: 20 } }
admin: { grpc_listen: "$4", metrics_listen: 127.0.0.1:0, token_file: "$DIR/admin.token" }
health: { interval_ms: 300, timeout_ms: 500, unhealthy_after: 2, healthy_after: 1 }
control: { tick_ms: 50, heartbeat_ms: 300 }
fleet:
  role: $2
  agent_id: $3
  etcd: { endpoints: ["http://${IP[etcd]}:2379"], prefix: /fleetns/, lease_ms: $LEASE_MS }
models:
  - name: m
    policy: least_connections
    backends:
      - { id: b0, url: "http://${IP[be]}:8000" }
      - { id: b1, url: "http://${IP[be]}:8001" }
YAML
}
echo "fleet-ns-test-token-$$" >"$DIR/admin.token"
chmod 600 "$DIR/admin.token"
config "fnsc0-$TAG" controller ctl0 "${IP[ctl0]}:9090" >"$DIR/ctl0.yaml"
config "fnsc1-$TAG" controller ctl1 "${IP[ctl1]}:9090" >"$DIR/ctl1.yaml"
config "fnsa-$TAG" agent gw-a 127.0.0.1:0 >"$DIR/agent.yaml"
fleet_json() { in_ns "$1" "$BIN/llmctl" --addr "${IP[$1]}:9090" --token-file "$DIR/admin.token" --timeout 1000 -o json fleet 2>/dev/null || true; }
leads() { fleet_json "$1" | grep -q '"is_leader": *true'; }

ip netns exec "$(ns ctl0)" "$BIN/llmcd" --config "$DIR/ctl0.yaml" >/dev/null 2>"$DIR/ctl0.log" &
PIDS+=($!)
wait_for 10 "leads ctl0" || { echo "ctl0 did not lead"; FAILED+=(start); exit 1; }
ip netns exec "$(ns ctl1)" "$BIN/llmcd" --config "$DIR/ctl1.yaml" >/dev/null 2>"$DIR/ctl1.log" &
PIDS+=($!)
wait_for 10 "grep -q 'standing by' '$DIR/ctl1.log'" || { echo "ctl1 did not stand by"; FAILED+=(start); exit 1; }
ip netns exec "$(ns gw)" "$BIN/llmcd" --config "$DIR/agent.yaml" >/dev/null 2>"$DIR/agent.log" &
PIDS+=($!)
ip netns exec "$(ns gw)" "$BIN/llmgw" --config "$DIR/agent.yaml" >"$DIR/llmgw.out" 2>"$DIR/llmgw.log" &
PIDS+=($!)
GW_PORT=$(listening_port "$DIR/llmgw.out")
wait_for 10 "in_ns gw curl -sf -m 1 http://127.0.0.1:$GW_PORT/ready >/dev/null" ||
  { echo "llmgw not ready"; FAILED+=(start); exit 1; }
echo "== fleet up: ctl0 leads, ctl1 stands by, agent gw-a and llmgw on port $GW_PORT"

# ---- the leader partitioned under load ------------------------------------------------
ip netns exec "$(ns gw)" "$BIN/llmgw-bench" --target "127.0.0.1:$GW_PORT" --model m --no-progress --timeout-ms 15000 \
  --concurrency 4 --duration 14 --stream-ratio 0.5 --out "$DIR/bench.json" >/dev/null 2>"$DIR/bench.log" &
BENCH=$!
PIDS+=($BENCH)
sleep 3
echo "== ctl0 (the leader) partitioned from everything"
partition ctl0
t0=$(now_ms)
wait_for 10 "leads ctl1" && took_lead=$(( $(now_ms) - t0 )) || took_lead=""
wait_for 10 "grep -q 'connected to the fleet controller.*ctl1' '$DIR/agent.log'" && attached=$(( $(now_ms) - t0 )) || attached=""
wait_for 10 "grep -q 'no longer leads' '$DIR/ctl0.log'" && stepped_down=1 || stepped_down=0
echo "   ctl1 leads after ${took_lead:-never} ms, the agent attached to it after ${attached:-never} ms (lease_ms $LEASE_MS)"
check "ctl1 took the lead within 2 x lease_ms" '[ -n "$took_lead" ] && [ "$took_lead" -le $((2 * LEASE_MS)) ]'
check "the agent re-attached to ctl1 within 2 x lease_ms + 3 heartbeats" \
  '[ -n "$attached" ] && [ "$attached" -le $((2 * LEASE_MS + 900)) ]'
check "the partitioned leader stepped down by itself" '[ "$stepped_down" = 1 ]'
sleep 3
echo "== ctl0 healed"
heal ctl0
check "ctl0 stands by behind ctl1 after the heal" "wait_for 10 \"grep -c 'standing by' '$DIR/ctl0.log' | grep -q '^[1-9]'\" && leads ctl1 && ! leads ctl0"
wait "$BENCH" || true
sent=$(grep -o '"sent":[0-9]*' "$DIR/bench.json" | head -1 | cut -d: -f2)
ok=$(grep -o '"ok":[0-9]*' "$DIR/bench.json" | head -1 | cut -d: -f2)
errs=$(grep -o '"errors_total":[0-9]*' "$DIR/bench.json" | head -1 | cut -d: -f2)
echo "   load: sent ${sent:-?} ok ${ok:-?} errors ${errs:-?}"
check "no client request failed through the partition and the failover" '[ "${errs:-1}" = 0 ] && [ "${ok:-0}" -gt 100 ]'

if [ ${#FAILED[@]} -ne 0 ]; then
  for f in ctl0 ctl1 agent; do echo "--- $f"; tail -20 "$DIR/$f.log"; done
  exit 1
fi
echo "fleet_netns_test: all checks passed"
