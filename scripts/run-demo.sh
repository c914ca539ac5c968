#!/usr/bin/env bash
# Runs the demo from built binaries (called by scripts/demo.sh): two llmgw-mock backends,
# llmcd and llmgw on free loopback ports, one real streaming chat completion through the
# gateway, then `llmctl status` and `llmctl backends`. With --keep it stays up until
# Ctrl-C so you can try more requests; otherwise it stops everything it started.
set -euo pipefail
BIN="$(cd "${1:-build/bin}" && pwd)"
KEEP=0
[ "${2:-}" = "--keep" ] && KEEP=1
PROCS_TAG=demo
# shellcheck source=lib/procs.sh
source "$(dirname "$0")/lib/procs.sh"   # work dir, cleanup, free_port, wait_http, start_mock
WORK="$PROCS_WORK"

M1=$(start_mock mock1 --model llama-3.1-8b --output-tokens 24)
M2=$(start_mock mock2 --model llama-3.1-8b --output-tokens 24)
GW=$(free_port)
GRPC=$(free_port)
METRICS=$(free_port)
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
PROCS_PIDS+=($!)
"$BIN/llmgw" --config "$WORK/llmgw.yaml" 2>"$WORK/llmgw.log" &
PROCS_PIDS+=($!)
wait_http "http://127.0.0.1:$GW/ready" 10 || { tail -n 20 "$WORK"/*.log >&2; exit 1; }

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
