#!/usr/bin/env bash
# Scenario (e): a backend failing under load. Three mocks behind llmgw (2 threads, real
# llmcd, health every 500 ms) and behind nginx (2 workers, passive max_fails, with
# proxy_next_upstream extended to 5xx so it retries like llmgw does). Open-loop load
# (half streaming) for the whole run; two faults on a timeline:
#   T1..T1+F  mock b0 answers every request 503 (POST /mock/faults), then is cleared;
#   T2        mock b1 is killed (SIGKILL); T2+F it is restarted on the same port.
# Reported per proxy: client-visible errors per phase, time from each fault's start to the
# last client error, and time from each fault's end until the backend serves again (its
# /mock/stats completed_total sampled every 100 ms).
# usage: bench/scenarios/e_backend_failure.sh [--long] [--rate R] [--fault-s F]
source "$(dirname "$0")/../lib/common.sh"
RATE=200 F=5
bench_options "--long:RATE=400 F=15" --rate=RATE:R --fault-s=F:F -- "$@"
T1=$F; T2=$((3 * F)); DUR=$((5 * F))
OUT=$(results_dir e_backend_failure)
MOCK_FLAGS=(--model bench-model --token-interval-ms 2 --output-tokens 16)
P0=$(start_mock b0 "${MOCK_FLAGS[@]}"); P1=$(start_mock b1 "${MOCK_FLAGS[@]}"); P2=$(start_mock b2 "${MOCK_FLAGS[@]}")

GW_EXTRA_YAML="health: { interval_ms: 500, timeout_ms: 300, unhealthy_after: 2, healthy_after: 2 }
circuit_breaker: { failure_threshold: 5, success_threshold: 3, open_ms: 2000, half_open_requests: 3 }" \
GW_EXTRA_GATEWAY="retries: {max: 2, backoff_ms: 10}" start_gateway 2 least_connections "$P0" "$P1" "$P2"
NPORT=$(free_port 32000)
NGINX_EXTRA_LOCATION="      proxy_next_upstream error timeout http_500 http_502 http_503 http_429 non_idempotent;" \
  start_nginx 2 "$NPORT" "$P0" "$P1" "$P2"

echo "scenario (e): $RATE req/s open loop for ${DUR}s; b0 503s at ${T1}s for ${F}s; b1 killed at ${T2}s, restarted ${F}s later; $(machine_note)"
run_one() {  # run_one NAME PORT
  local name=$1 port=$2
  bench --target "127.0.0.1:$port" --model bench-model --rate "$RATE" --duration "$DUR" --stream-ratio 0.5 \
    --timeout-ms 10000 --out "$OUT/$name.json" >/dev/null &
  local bp=$!
  local t0; t0=$(date +%s.%N)
  # sampler: completed_total (successful answers) of b0 and b1 every 100 ms (0 when down)
  ( set +e; while kill -0 $bp 2>/dev/null; do
      a=$(curl -s -m 0.2 "127.0.0.1:$P0/mock/stats" | sed -n 's/.*"completed_total":\([0-9]*\).*/\1/p' || true)
      b=$(curl -s -m 0.2 "127.0.0.1:$P1/mock/stats" | sed -n 's/.*"completed_total":\([0-9]*\).*/\1/p' || true)
      echo "$(echo "$(date +%s.%N) - $t0" | bc) ${a:-0} ${b:-0}"
      sleep 0.1
    done ) >"$OUT/$name.backends.txt" &
  local sp=$!
  sleep_until() { local d; d=$(echo "$t0 + $1 - $(date +%s.%N)" | bc); [ "${d:0:1}" = "-" ] || sleep "$d"; }
  sleep_until "$T1"
  curl -s -o /dev/null "127.0.0.1:$P0/mock/faults" -d '{"error_rate":1.0,"error_status":503}'
  sleep_until "$((T1 + F))"
  curl -s -o /dev/null "127.0.0.1:$P0/mock/faults" -d '{"reset":true}'
  sleep_until "$T2"
  kill -9 "$(cat "$BENCH_WORK/b1.pid")"
  sleep_until "$((T2 + F))"
  "$BIN/llmgw-mock" --listen "127.0.0.1:$P1" "${MOCK_FLAGS[@]}" >"$BENCH_WORK/b1.out" 2>>"$BENCH_WORK/b1.log" &
  echo $! >"$BENCH_WORK/b1.pid"
  disown $!
  wait $bp; wait $sp 2>/dev/null || true
  echo "  $name: $(jget "$OUT/$name.json" "'ok %d, errors %d %s' % (d['ok'], d['errors_total'], d['errors'])")"
}
run_one llmgw "$GW_PORT"
sleep 2  # let both proxies see b1 healthy again before the baseline run
run_one nginx "$NPORT"

PYTHONPATH="$BENCH_ROOT/bench/lib" python3 - "$OUT" "$(machine_note)" "$T1" "$T2" "$F" "$DUR" <<'PY'
import sys
from report import load, table, write_json, plot
out, note = sys.argv[1], sys.argv[2]
T1, T2, F, DUR = (float(x) for x in sys.argv[3:7])
B = 0.1
summary = {"scenario": "e_backend_failure", "machine": note, "timeline_s": {"b0_503_from": T1, "b0_503_to": T1 + F,
           "b1_killed_at": T2, "b1_restarted_at": T2 + F, "end": DUR}, "proxies": {}}
rows, dats = [], {}
def phase_errors(tl, a, b):
    return sum(e for i, e in enumerate(tl["errors"]) if a <= i * B < b)
def last_error_after(tl, a, b):
    idx = [i * B for i, e in enumerate(tl["errors"]) if e and a <= i * B < b]
    return (max(idx) + B - a) if idx else 0.0
def serves_again(samples, col, after):
    # first sample after `after` where the backend's count of successful answers grew
    # (a restarted mock counts from 0, and a dead one reads 0)
    prev = 0
    for s in samples:
        if s[0] >= after and s[col] > 0 and (prev == 0 or s[col] > prev):
            return s[0] - after
        prev = s[col]
    return None
for p in ("llmgw", "nginx"):
    d = load(f"{out}/{p}.json")
    tl = d["timeline"]
    samples = [tuple(float(x) for x in l.split()) for l in open(f"{out}/{p}.backends.txt") if len(l.split()) == 3]
    s = {"ok": d["ok"], "errors_total": d["errors_total"], "errors": d["errors"],
         "errors_b0_503_phase": phase_errors(tl, T1, T2),
         "errors_b1_dead_phase": phase_errors(tl, T2, DUR + 10),
         "b0_errors_until_s": last_error_after(tl, T1, T2),
         "b1_errors_until_s": last_error_after(tl, T2, DUR + 10),
         "b0_serves_again_after_clear_s": serves_again(samples, 1, T1 + F),
         "b1_serves_again_after_restart_s": serves_again(samples, 2, T2 + F),
         "e2e_p99_ms": d["e2e_ms"]["p99"]}
    summary["proxies"][p] = s
    rows.append([p, d["ok"], d["errors_total"], s["errors_b0_503_phase"], s["b0_errors_until_s"],
                 s["b0_serves_again_after_clear_s"], s["errors_b1_dead_phase"], s["b1_errors_until_s"],
                 s["b1_serves_again_after_restart_s"], s["e2e_p99_ms"]])
    dats[f"{p}.dat"] = "".join(f"{i * B:.1f} {o / B:.0f} {e / B:.0f} {m:.1f}\n"
                               for i, (o, e, m) in enumerate(zip(tl["ok"], tl["errors"], tl["e2e_ms_max"])))
print()
table(["proxy", "ok", "errors", "503-phase err", "errs for s", "b0 back after s", "kill-phase err", "errs for s", "b1 back after s", "e2e p99 ms"], rows, nd=2)
print("(errs for s: from the fault's start to the last client-visible error; back after s: from the fault's end until the backend serves requests again)")
write_json(f"{out}/summary.json", summary)
plot(f"{out}/e_backend_failure.png", f"""
set title "(e) backend failure under load: b0 503s {T1:g}-{T1+F:g} s, b1 killed {T2:g} s, restarted {T2+F:g} s"
set xlabel "seconds"
set ylabel "client errors/s"
set yrange [0:*]
set y2label "max e2e ms per 100 ms"
set y2tics
set logscale y2
plot "llmgw.dat" using 1:3 with lines lw 2 title "llmgw errors/s", "nginx.dat" using 1:3 with lines title "nginx errors/s", \\
     "llmgw.dat" using 1:4 axes x1y2 with lines title "llmgw max e2e", "nginx.dat" using 1:4 axes x1y2 with lines title "nginx max e2e"
""", dats)
PY
echo "results: $OUT"
