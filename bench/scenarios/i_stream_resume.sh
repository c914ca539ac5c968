#!/usr/bin/env bash
# Scenario (i): streams that survive their backend (issue 14). N concurrent streams
# (closed loop, all streaming, ~2 s each) on three mocks; a few seconds in, one mock is
# SIGKILLed with its streams in flight. Three runs, each on three fresh mocks: llmgw
# (stream resume on, the default), llmgw with gateway.resume_streams: false, and nginx
# (proxy_next_upstream on errors, as a production nginx in front of SSE). Reported per
# proxy: streams completed / started, the errors by kind, and for llmgw the resumed
# streams (llm_gateway_stream_resumes_total) and the time their clients waited for the
# next chunk across the failover (their longest inter-chunk gap, p50/p99, against the
# other streams' longest gap).
# usage: bench/scenarios/i_stream_resume.sh [--long] [--streams N]
source "$(dirname "$0")/../lib/common.sh"
N=200 DUR=8 KILL_AT=3
bench_options "--long:N=400 DUR=20 KILL_AT=8" --streams=N:N -- "$@"
OUT=$(results_dir i_stream_resume)
MOCK_FLAGS=(--model bench-model --token-interval-ms 20 --output-tokens 100 --max-num-seqs 1024)
echo "scenario (i): $N concurrent streams (100 tokens, 20 ms/token) on 3 mocks for ${DUR}s; mock b1 SIGKILLed at ${KILL_AT}s; $(machine_note)"

metrics_port() { sed -n 's/.*metrics_listen: 127.0.0.1:\([0-9]*\).*/\1/p' "$1"; }
run_one() {  # run_one NAME : starts 3 mocks and the proxy, runs the load, kills b1 mid-run
  local name=$1 p0 p1 p2 port
  p0=$(start_mock "$name-b0" "${MOCK_FLAGS[@]}"); p1=$(start_mock "$name-b1" "${MOCK_FLAGS[@]}")
  p2=$(start_mock "$name-b2" "${MOCK_FLAGS[@]}")
  case $name in
    llmgw|llmgw_noresume)
      local extra="retries: {max: 2, backoff_ms: 10}"
      [ "$name" = llmgw_noresume ] && extra="$extra, resume_streams: false"
      GW_EXTRA_YAML="health: { interval_ms: 500, timeout_ms: 300, unhealthy_after: 2, healthy_after: 2 }" \
      GW_EXTRA_GATEWAY="$extra" start_gateway 2 least_connections "$p0" "$p1" "$p2"
      port=$GW_PORT ;;
    nginx)
      port=$(free_port 32000)
      NGINX_EXTRA_LOCATION="      proxy_next_upstream error timeout http_500 http_502 http_503 http_429 non_idempotent;" \
        start_nginx 2 "$port" "$p0" "$p1" "$p2" ;;
  esac
  bench --target "127.0.0.1:$port" --model bench-model --concurrency "$N" --duration "$DUR" --stream-ratio 1 \
    --timeout-ms 20000 --out "$OUT/$name.json" >/dev/null &
  local bp=$!
  sleep "$KILL_AT"
  kill -9 "$(cat "$BENCH_WORK/$name-b1.pid")"
  wait $bp
  if [ "$name" != nginx ]; then
    curl -s "127.0.0.1:$(metrics_port "$GW_CONFIG")/metrics" | grep '^llm_gateway_stream_resumes_total' >"$OUT/$name.resumes.txt" || true
    stop_gateway
  else
    stop_nginx
  fi
  stop_pid "$(cat "$BENCH_WORK/$name-b0.pid")"; stop_pid "$(cat "$BENCH_WORK/$name-b2.pid")"
  echo "  $name: $(jget "$OUT/$name.json" "'ok %d, errors %d %s' % (d['ok'], d['errors_total'], d['errors'])")"
}
run_one llmgw
run_one llmgw_noresume
run_one nginx

PYTHONPATH="$BENCH_ROOT/bench/lib" python3 - "$OUT" "$(machine_note)" "$N" "$DUR" "$KILL_AT" <<'PY'
import os, re, sys
from report import load, table, write_json
out, note = sys.argv[1], sys.argv[2]
N, DUR, KILL_AT = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
def pct(v, p):
    if not v: return 0.0
    v = sorted(v); k = (len(v) - 1) * p / 100; f = int(k)
    return v[f] + (v[min(f + 1, len(v) - 1)] - v[f]) * (k - f)
summary = {"scenario": "i_stream_resume", "machine": note, "streams": N, "duration_s": DUR, "kill_at_s": KILL_AT,
           "proxies": {}}
rows = []
for p in ("llmgw", "llmgw_noresume", "nginx"):
    d = load(f"{out}/{p}.json")
    started = d["ok"] + d["errors_total"]
    s = {"completed": d["ok"], "started": started, "completed_pct": 100.0 * d["ok"] / started if started else 0,
         "errors": d["errors"], "stream_max_gap_ms_p50": d["stream_max_gap_ms"]["p50"]}
    resumed = 0
    f = f"{out}/{p}.resumes.txt"
    if os.path.exists(f):
        outcomes = {}
        for line in open(f):
            m = re.search(r'outcome="([a-z_]+)"[^}]*}\s+(\d+)', line) or re.search(r'outcome="([a-z_]+)".*\s(\d+)$', line.strip())
            if m: outcomes[m.group(1)] = outcomes.get(m.group(1), 0) + int(m.group(2))
        s["resume_outcomes"] = outcomes
        resumed = outcomes.get("ok", 0)
    s["resumed"] = resumed
    # The resumed streams are the ones with the longest gaps: the top `resumed` of the
    # per-stream longest gaps (the rest never waited more than a few token times).
    top = d.get("stream_max_gaps_top_ms", [])[:resumed]
    s["resumed_gap_ms_p50"] = pct(top, 50) if top else None
    s["resumed_gap_ms_p99"] = pct(top, 99) if top else None
    summary["proxies"][p] = s
    rows.append([p, started, d["ok"], f'{s["completed_pct"]:.1f}', d["errors_total"], resumed,
                 s["resumed_gap_ms_p50"] if top else "-", s["resumed_gap_ms_p99"] if top else "-",
                 s["stream_max_gap_ms_p50"]])
print()
table(["proxy", "streams", "completed", "completed %", "errors", "resumed", "resumed gap p50 ms", "resumed gap p99 ms",
       "all streams' max gap p50 ms"], rows, nd=1)
print("(resumed gap: the resumed streams' longest wait for a chunk, failover included; compare with a normal stream's longest gap)")
write_json(f"{out}/summary.json", summary)
PY
echo "results: $OUT"
