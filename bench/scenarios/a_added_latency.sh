#!/usr/bin/env bash
# Scenario (a): latency a proxy adds at one connection. One mock answering as fast as it
# can; llmgw-bench with one closed-loop connection (non-streaming chat, 16 output tokens)
# against the mock directly, through llmgw (1 thread, real llmcd) and through nginx
# (1 worker, proxy_pass, keepalive upstream). Rounds alternate direct/llmgw/nginx so drift
# on a shared machine hits all three; added latency = target - direct of the same round.
# usage: bench/scenarios/a_added_latency.sh [--long] [--rounds N] [--duration S]
source "$(dirname "$0")/../lib/common.sh"
ROUNDS=3 DUR=5
bench_options "--long:ROUNDS=7 DUR=10" --rounds=ROUNDS:N --duration=DUR:S -- "$@"
OUT=$(results_dir a_added_latency)

MPORT=$(start_mock m --model bench-model --token-interval-ms 0 --output-tokens 16)
start_gateway 1 least_connections "$MPORT"
NPORT=$(free_port 32000)
start_nginx 1 "$NPORT" "$MPORT"

echo "scenario (a): 1 connection, non-streaming, ${ROUNDS} rounds x ${DUR}s per target; $(machine_note)"
for ((r = 1; r <= ROUNDS; r++)); do
  for t in direct llmgw nginx; do
    case $t in direct) p=$MPORT ;; llmgw) p=$GW_PORT ;; nginx) p=$NPORT ;; esac
    bench --target "127.0.0.1:$p" --model bench-model --concurrency 1 --duration "$DUR" \
      --stream-ratio 0 --out "$OUT/$t.$r.json" >/dev/null
    echo "  round $r $t: p50 $(jget "$OUT/$t.$r.json" "'%.1f' % (d['e2e_ms']['p50']*1000)") us"
  done
done

PYTHONPATH="$BENCH_ROOT/bench/lib" python3 - "$OUT" "$ROUNDS" "$(machine_note)" <<'PY'
import sys
from report import load, median, table, write_json, plot
out, rounds, note = sys.argv[1], int(sys.argv[2]), sys.argv[3]
us = lambda d, k: d["e2e_ms"][k] * 1000.0
runs = {t: [load(f"{out}/{t}.{r}.json") for r in range(1, rounds + 1)] for t in ("direct", "llmgw", "nginx")}
summary = {"scenario": "a_added_latency", "machine": note, "rounds": rounds, "targets": {}}
rows = []
for t in ("direct", "llmgw", "nginx"):
    p50 = median([us(d, "p50") for d in runs[t]])
    p99 = median([us(d, "p99") for d in runs[t]])
    rps = median([d["throughput_rps"] for d in runs[t]])
    add50 = None if t == "direct" else median([us(a, "p50") - us(b, "p50") for a, b in zip(runs[t], runs["direct"])])
    add99 = None if t == "direct" else median([us(a, "p99") - us(b, "p99") for a, b in zip(runs[t], runs["direct"])])
    errs = sum(d["errors_total"] for d in runs[t])
    summary["targets"][t] = {"p50_us": p50, "p99_us": p99, "added_p50_us": add50, "added_p99_us": add99,
                             "rps": rps, "errors": errs,
                             "per_round_p50_us": [us(d, "p50") for d in runs[t]],
                             "per_round_p99_us": [us(d, "p99") for d in runs[t]]}
    rows.append([t, p50, p99, add50, add99, rps, errs])
print()
table(["target", "p50 us", "p99 us", "added p50 us", "added p99 us", "req/s", "errors"], rows)
g, n = summary["targets"]["llmgw"], summary["targets"]["nginx"]
ratio50 = g["added_p50_us"] / n["added_p50_us"] if n["added_p50_us"] else None
ratio99 = g["added_p99_us"] / n["added_p99_us"] if n["added_p99_us"] else None
summary["ratio_added_llmgw_over_nginx"] = {"p50": ratio50, "p99": ratio99}
summary["goal"] = {"added_p50_us_max": 20, "added_p99_us_max": 80,
                   "met_p50": g["added_p50_us"] is not None and g["added_p50_us"] <= 20,
                   "met_p99": g["added_p99_us"] is not None and g["added_p99_us"] <= 80}
print(f"\nadded latency llmgw/nginx: p50 {ratio50:.2f}x, p99 {ratio99:.2f}x   "
      f"(issue 3 goal: added p50 <= 20 us: {'met' if summary['goal']['met_p50'] else 'NOT met'}, "
      f"added p99 <= 80 us: {'met' if summary['goal']['met_p99'] else 'NOT met'})")
write_json(f"{out}/summary.json", summary)
dat = "".join(f"{i} {t} {summary['targets'][t]['p50_us']:.2f} {summary['targets'][t]['p99_us']:.2f}\n"
              for i, t in enumerate(("direct", "llmgw", "nginx")))
plot(f"{out}/a_added_latency.png", """
set title "(a) latency at one connection (median of rounds)"
set ylabel "microseconds"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
plot "a.dat" using 3:xtic(2) title "p50", "" using 4 title "p99"
""", {"a.dat": dat})
PY
echo "results: $OUT"
