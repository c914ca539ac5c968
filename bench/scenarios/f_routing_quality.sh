#!/usr/bin/env bash
# Scenario (f): routing quality over real processes. Four mocks at speeds 1, 1, 0.5, 0.25
# (continuous batching, 16 sequences each, prefix cache of 512 blocks = 8192 tokens) behind
# llmgw (2 threads) + llmcd (scraping every 250 ms), one policy at a time. Workload: open
# loop, streaming, 32 shared prefixes of 768 tokens + 256 unique tokens, 32 output tokens:
# the prefixes do not all fit in one mock's cache, so affinity pays. Load is a fraction of
# the fleet's capacity, estimated at start by saturating one speed-1 mock with the same
# workload (capacity = its req/s x (1 + 1 + 0.5 + 0.25)). Every run starts fresh mocks
# (cold caches) and a fresh gateway. Prefix-cache hit rate = hit tokens / queried tokens
# summed over the four mocks' /mock/stats.
# usage: bench/scenarios/f_routing_quality.sh [--long] [--loads 0.5,0.9] [--duration S] [--policies LIST] [--threads N]
source "$(dirname "$0")/../lib/common.sh"
LOADS=0.5,0.9 DUR=5 THREADS=2
POLICIES=round_robin,weighted_round_robin,least_connections,least_queue,capacity,p2c_kv,consistent_hash,prefix_affinity,adaptive
while [ $# -gt 0 ]; do
  case $1 in
    --long) LOADS=0.5,0.7,0.9 DUR=30 ;;
    --loads) LOADS=$2; shift ;;
    --duration) DUR=$2; shift ;;
    --policies) POLICIES=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    *) echo "usage: $0 [--long] [--loads LIST] [--duration S] [--policies LIST] [--threads N]" >&2; exit 2 ;;
  esac
  shift
done
OUT=$(results_dir f_routing_quality)
SPEEDS=(1 1 0.5 0.25)
WEIGHTS=(4 4 2 1)  # for weighted_round_robin: proportional to speed
MOCK_FLAGS=(--model bench-model --max-num-seqs 16 --token-interval-ms 10 --output-tokens 32
  --prefill-us-per-token 40 --prefix-cache-blocks 512 --block-size 16)
WORK=(--model bench-model --stream-ratio 1 --prefix-groups 32 --prefix-tokens 768 --prompt-tokens fixed:256
  --max-tokens 32 --timeout-ms 60000)

# Capacity estimate: one speed-1 mock saturated (closed loop, twice its batch size).
CP=$(start_mock cal --speed 1 "${MOCK_FLAGS[@]}")
bench --target "127.0.0.1:$CP" --concurrency 32 --duration 4 "${WORK[@]}" --out "$OUT/calibration.json" >/dev/null
stop_pid "$(cat "$BENCH_WORK/cal.pid")"
CAP=$(jget "$OUT/calibration.json" "'%.2f' % (d['throughput_rps'] * 2.75)")
echo "scenario (f): fleet speeds ${SPEEDS[*]}, capacity estimate $CAP req/s, loads $LOADS, ${DUR}s per run; $(machine_note)"

GW_EXTRA_YAML="health: { interval_ms: 500, timeout_ms: 300, scrape_interval_ms: 250, metrics_stale_ms: 2000 }" 
export GW_EXTRA_YAML GW_MAX_CONCURRENT=64
for load in ${LOADS//,/ }; do
  rate=$(echo "$CAP * $load" | bc -l)
  for policy in ${POLICIES//,/ }; do
    ports=()
    for i in 0 1 2 3; do
      port=$(start_mock "f$i" --speed "${SPEEDS[$i]}" --seed $((i + 1)) "${MOCK_FLAGS[@]}")
      ports+=("$port:${WEIGHTS[$i]}")
    done
    start_gateway "$THREADS" "$policy" "${ports[@]}"
    bench --target "127.0.0.1:$GW_PORT" --rate "$rate" --duration "$DUR" "${WORK[@]}" --seed 7 \
      --out "$OUT/$policy.$load.json" >/dev/null
    for i in 0 1 2 3; do
      if ! curl -s -m 5 "127.0.0.1:${ports[$i]%%:*}/mock/stats" >"$OUT/$policy.$load.mock$i.json"; then
        echo "  warning: mock $i (port ${ports[$i]%%:*}) did not answer /mock/stats after $policy at $load" >&2
        echo '{"prefix_cache_query_tokens":0,"prefix_cache_hit_tokens":0,"requests_total":-1}' >"$OUT/$policy.$load.mock$i.json"
      fi
      stop_pid "$(cat "$BENCH_WORK/f$i.pid")" || true
    done
    stop_gateway
    echo "  load $load $policy: $(jget "$OUT/$policy.$load.json" "'%.1f req/s, ttft p50 %.0f ms p99 %.0f ms, e2e p99 %.0f ms, errors %d' % (d['throughput_rps'], d['ttft_ms']['p50'], d['ttft_ms']['p99'], d['e2e_ms']['p99'], d['errors_total'])")"
  done
done

PYTHONPATH="$BENCH_ROOT/bench/lib" python3 - "$OUT" "$(machine_note)" "$LOADS" "$POLICIES" "$CAP" "$DUR" <<'PY'
import sys
from report import load, table, write_json, plot
out, note, loads, policies, cap = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4].split(","), float(sys.argv[5])
dur = float(sys.argv[6])
summary = {"scenario": "f_routing_quality", "machine": note, "capacity_estimate_rps": cap, "loads": {}}
rows, dat = [], ""
for ld in loads:
    res = {}
    for p in policies:
        d = load(f"{out}/{p}.{ld}.json")
        mocks = [load(f"{out}/{p}.{ld}.mock{i}.json") for i in range(4)]
        q = sum(m["prefix_cache_query_tokens"] for m in mocks)
        h = sum(m["prefix_cache_hit_tokens"] for m in mocks)
        res[p] = {"offered_rps": cap * float(ld), "done_rps": d["ok"] / d["elapsed_s"], "finish_s": d["elapsed_s"], "ttft_p50_ms": d["ttft_ms"]["p50"], "ttft_p99_ms": d["ttft_ms"]["p99"],
                  "e2e_p99_ms": d["e2e_ms"]["p99"], "prefix_hit_rate": h / q if q else 0.0, "errors": d["errors_total"],
                  "share_per_backend": [m["requests_total"] for m in mocks]}
    best_ttft = min(r["ttft_p99_ms"] for r in res.values())
    best_e2e = min(r["e2e_p99_ms"] for r in res.values())
    for p in policies:
        r = res[p]
        r["ttft_p99_vs_best"] = r["ttft_p99_ms"] / best_ttft if best_ttft else None
        r["e2e_p99_vs_best"] = r["e2e_p99_ms"] / best_e2e if best_e2e else None
        rows.append([f"{ld} {p}", r["offered_rps"], r["finish_s"], r["ttft_p50_ms"], r["ttft_p99_ms"], r["e2e_p99_ms"], 100 * r["prefix_hit_rate"],
                     r["e2e_p99_vs_best"], "/".join(str(x) for x in r["share_per_backend"]), r["errors"]])
        dat += f"\"{p}@{ld}\" {r['ttft_p50_ms']:.1f} {r['ttft_p99_ms']:.1f} {r['e2e_p99_ms']:.1f} {100 * r['prefix_hit_rate']:.1f}\n"
    summary["loads"][ld] = res
print()
table(["load policy", "offered req/s", "done after s", "ttft p50", "ttft p99", "e2e p99", "hit %", "e2e p99/best", "requests per mock (1/1/.5/.25)", "errors"], rows)
print(f"(times in ms; all requests were sent within {dur:g} s and 'done after s' is when the last one finished, so a backlog shows there;")
print(" load = fraction of the estimated fleet capacity; hit % = prefix-cache hit tokens / prompt tokens over the four mocks)")
write_json(f"{out}/summary.json", summary)
plot(f"{out}/f_routing_quality.png", """
set title "(f) routing quality: TTFT p99 and e2e p99 per policy and load"
set ylabel "ms"
set y2label "prefix-cache hit %"
set y2tics
set y2range [0:100]
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xtics rotate by -45
set logscale y
plot "f.dat" using 3:xtic(1) title "TTFT p99", "" using 4 title "e2e p99", "" using 5 axes x1y2 with points pt 7 title "hit %"
""", {"f.dat": dat})
PY
echo "results: $OUT"
