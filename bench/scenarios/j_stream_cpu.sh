#!/usr/bin/env bash
# Scenario (j): the proxy's CPU per streamed request (issue 14's event path). One fast mock
# (--token-interval-ms 0, 64 tokens), llmgw-bench with 16 connections streaming back to
# back, each proxy on one thread / worker. Variants, alternating per round: llmgw with
# stream resume (the default: every event goes through StreamFilter), llmgw with
# gateway.resume_streams: false (the loadgen asks for usage, so bytes are relayed as they
# come), and nginx. Reported per run: streams/s, the proxy's CPU µs per stream from /proc,
# and (when perf can count) its user+kernel instructions per stream, steadier than time
# on a shared machine.
# usage: bench/scenarios/j_stream_cpu.sh [--rounds N] [--duration S] [--tokens N] [--concurrency C]
source "$(dirname "$0")/../lib/common.sh"
ROUNDS=2 DUR=5 TOKENS=64 CONC=16
bench_options --rounds=ROUNDS:N --duration=DUR:S --tokens=TOKENS:N --concurrency=CONC:C -- "$@"
OUT=$(results_dir j_stream_cpu)
echo "scenario (j): $CONC streaming connections, $TOKENS tokens/stream, mock at 0 ms/token, ${ROUNDS} rounds x ${DUR}s; $(machine_note)"
echo "proxy,round,streams,streams_per_s,cpu_us_per_stream,instr_per_stream,errors" >"$OUT/runs.csv"
MPORT=$(start_mock m --model bench-model --token-interval-ms 0 --output-tokens "$TOKENS" --max-num-seqs 1024)
PERF=0
# Only where the machine exposes a hardware counter (not in most VMs: "<not supported>").
perf stat -e instructions -x, -- true 2>&1 | grep -q '^[0-9]' && PERF=1

run_one() {  # run_one NAME ROUND
  local name=$1 round=$2 port pid
  case $name in
    llmgw | llmgw_noresume)
      local extra=""
      [ "$name" = llmgw_noresume ] && extra="resume_streams: false"
      GW_EXTRA_GATEWAY="$extra" start_gateway 1 least_connections "$MPORT"
      port=$GW_PORT pid=$GW_PID ;;
    nginx)
      port=$(free_port 32000)
      start_nginx 1 "$port" "$MPORT"
      pid=$(cat "$BENCH_WORK/nginx.pid") ;;
  esac
  local perfpid="" ppids=$pid
  [ "$name" = nginx ] && ppids=$(pgrep -P "$pid" | paste -sd,)
  if [ "$PERF" = 1 ]; then
    perf stat -e instructions -x, -o "$OUT/$name.$round.perf" -p "$ppids" >/dev/null 2>&1 &
    perfpid=$!
  fi
  local before after
  before=$(cpu_ticks "$pid")
  bench --target "127.0.0.1:$port" --model bench-model --concurrency "$CONC" --duration "$DUR" --stream-ratio 1 \
    --out "$OUT/$name.$round.json" >/dev/null
  after=$(cpu_ticks "$pid")
  if [ -n "$perfpid" ]; then kill -INT "$perfpid"; wait "$perfpid" || true; fi
  if [ "$name" = nginx ]; then stop_nginx; else stop_gateway; fi
  local ok errs instr
  ok=$(jget "$OUT/$name.$round.json" "d['ok']")
  errs=$(jget "$OUT/$name.$round.json" "d['errors_total']")
  instr=0
  [ -f "$OUT/$name.$round.perf" ] && instr=$(awk -F, '/instructions/ {print $1}' "$OUT/$name.$round.perf" | head -1)
  awk -v n="$name" -v r="$round" -v ok="$ok" -v e="$errs" -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" \
    -v d="$DUR" -v ins="${instr:-0}" 'BEGIN {
      cpu = ok ? t / hz * 1e6 / ok : 0; ipr = ok && ins ~ /^[0-9]+$/ ? ins / ok : 0
      printf "%s,%d,%d,%.0f,%.2f,%.0f,%d\n", n, r, ok, ok / d, cpu, ipr, e }' >>"$OUT/runs.csv"
  tail -1 "$OUT/runs.csv" | awk -F, '{ printf "  round %s %-15s %8s streams/s  %7s cpu-us/stream  %9s instr/stream  errors %s\n", $2, $1, $4, $5, ($6 > 0 ? $6 : "n/a"), $7 }'
}
for ((r = 1; r <= ROUNDS; r++)); do
  for name in llmgw llmgw_noresume nginx; do run_one "$name" "$r"; done
done
echo "results: $OUT/runs.csv"
