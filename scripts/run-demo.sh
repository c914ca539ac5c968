#!/usr/bin/env bash
# Runs the demo from built binaries (called by scripts/demo.sh): two llmgw-mock backends,
# llmcd and llmgw on free loopback ports, one real streaming chat completion through the
# gateway, then `llmctl status` and `llmctl backends`. With --keep it stays up until
# Ctrl-C so you can try more requests; otherwise it stops everything it started.
set -euo pipefail
BIN="$(cd "${1:-build/bin}" && pwd)"
KEEP=0
[ "${2:-}" = "--keep" ] && KEEP=1
WORK="$(mktemp -d /tmp/llmgw-demo.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() {  # first port from $1 upward that nothing on 127.0.0.1 answers on
  local p=$1
  while (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}
wait_for() {  # wait_for URL SECONDS
  local i
  for ((i = 0; i < $2 * 20; i++)); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "demo: $1 did not come up; logs in $WORK" >&2
  tail -n 20 "$WORK"/*.log >&2 || true
  return 1
}
start_mock() {  # start_mock NAME -> prints port
  "$BIN/llmgw-mock" --listen 127.0.0.1:0 --model llama-3.1-8b --output-tokens 24 \
      >"$WORK/$1.out" 2>"$WORK/$1.log" &
  PIDS+=($!)
  local i
  for ((i = 0; i < 100; i++)); do
    if grep -q '^listening ' "$WORK/$1.out" 2>/dev/null; then
      sed -n 's/^listening 127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/$1.out" | head -1
      return 0
    fi
    sleep 0.05
  done
  echo "demo: mock $1 did not start" >&2
  return 1
}

M1=$(start_mock mock1)
M2=$(start_mock mock2)
GW=$(free_port 8080)
GRPC=$(free_port 9090)
METRICS=$(free_port $((GRPC == 9100 ? 9101 : 9100)))
cat >"$WORK/llmgw.yaml" <<YAML
instance: demo-$$
gateway:
  listen: 127.0.0.1:$GW
  threads: 2
admin:
  grpc_listen: 127.0.0.1:$GRPC
  metrics_listen: 127.0.0.1:$METRICS
health: { interval_ms: 500, timeout_ms: 300 }
models:
  - name: llama-3.1-8b
    aliases: [default]
    policy: p2c_kv
    backends:
      - { id: mock-1, url: "http://127.0.0.1:$M1", max_concurrent: 16 }
      - { id: mock-2, url: "http://127.0.0.1:$M2", max_concurrent: 16 }
YAML
"$BIN/llmcd" --config "$WORK/llmgw.yaml" 2>"$WORK/llmcd.log" &
PIDS+=($!)
"$BIN/llmgw" --config "$WORK/llmgw.yaml" 2>"$WORK/llmgw.log" &
PIDS+=($!)
wait_for "http://127.0.0.1:$GW/ready" 10

echo "== llmgw is ready on 127.0.0.1:$GW (mocks on :$M1 and :$M2, admin on :$GRPC)"
echo "== streaming chat completion through the gateway:"
echo "\$ curl -N http://127.0.0.1:$GW/v1/chat/completions -d '{\"model\":\"default\",\"stream\":true,...}'"
curl -sS -N "http://127.0.0.1:$GW/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"model":"default","stream":true,"messages":[{"role":"user","content":"Say hello to the fleet."}]}'
echo
sleep 0.3  # one control-plane tick, so the counters include the request above
echo "== llmctl status"
"$BIN/llmctl" --addr "127.0.0.1:$GRPC" status
echo "== llmctl backends"
"$BIN/llmctl" --addr "127.0.0.1:$GRPC" backends
if [ "$KEEP" = 1 ]; then
  echo "== running; try: curl http://127.0.0.1:$GW/v1/models   ·   $BIN/llmctl --addr 127.0.0.1:$GRPC watch"
  echo "== Ctrl-C stops everything"
  wait
fi
