#!/usr/bin/env bash
# Scenario (b): saturation requests/s of llmgw vs nginx vs HAProxy, at 1 thread/worker and
# at 2. wrk (closed loop, keep-alive POSTs of a small non-streaming chat request) drives
# each proxy in front of one fast llmgw-mock. With 1 thread the proxy is pinned to core 0
# and the mock and wrk to core 1, so the proxy's core is the bottleneck; with 2 nothing is
# pinned (all share both cores, which is what "2 cores" means on this box). Rounds
# alternate the three proxies. Besides req/s, the proxy's own CPU time per request (from
# /proc) is reported: it is steadier than req/s on a machine shared with other work.
# --no-pin leaves the 1-thread case unpinned too (to tell pinning effects from the proxy's own).
# usage: bench/scenarios/b_saturation.sh [--long] [--rounds N] [--duration S] [--connections C] [--no-pin] [--threads "1 2"]
source "$(dirname "$0")/../lib/common.sh"
ROUNDS=3 DUR=5 CONNS=64 PIN=1 THREADS="1 2"
bench_options "--long:ROUNDS=5 DUR=15" --rounds=ROUNDS:N --duration=DUR:S --connections=CONNS:C --no-pin:PIN=0 --threads=THREADS:LIST -- "$@"
OUT=$(results_dir b_saturation)
write_post_lua

echo "scenario (b): wrk -c$CONNS, pin 1-thread case: $PIN, ${ROUNDS} rounds x ${DUR}s per proxy and thread count; $(machine_note)"
echo "threads,proxy,round,rps,p50_us,p99_us,cpu_us_per_req,non2xx,errors" >"$OUT/runs.csv"

for threads in $THREADS; do
  if [ "$threads" = 1 ] && [ "$PIN" = 1 ]; then PCPU=0 OCPU=1; else PCPU=0,1 OCPU=0,1; fi
  MPORT=$(start_mock m$threads --model bench-model --token-interval-ms 0 --output-tokens 16 --threads 1)
  MOCK_PID=$(cat "$BENCH_WORK/m$threads.pid")
  taskset -pc $OCPU "$MOCK_PID" >/dev/null
  GW_CPUS=$PCPU start_gateway "$threads" least_connections "$MPORT"
  NPORT=$(free_port 32000)
  start_nginx "$threads" "$NPORT" "$MPORT"
  for p in $(cat "$BENCH_WORK/nginx.pid") $(pgrep -P "$(cat "$BENCH_WORK/nginx.pid")"); do taskset -pc $PCPU "$p" >/dev/null; done
  HPORT=$(free_port $((NPORT + 1)))
  start_haproxy "$threads" "$HPORT" "$MPORT"
  taskset -apc $PCPU "$HAPROXY_PID" >/dev/null
  for ((r = 1; r <= ROUNDS; r++)); do
    for t in llmgw nginx haproxy; do
      case $t in
        llmgw) port=$GW_PORT pid=$GW_PID ;;
        nginx) port=$NPORT pid=$(cat "$BENCH_WORK/nginx.pid") ;;
        haproxy) port=$HPORT pid=$HAPROXY_PID ;;
      esac
      before=$(cpu_ticks "$pid")
      w=$(taskset -c $OCPU wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -s "$BENCH_WORK/post.lua" "http://127.0.0.1:$port/v1/chat/completions")
      after=$(cpu_ticks "$pid")
      wrk_figures "$w" $((after - before))
      echo "$threads,$t,$r,$rps,$p50,$p99,$cpu,$non2xx,$errs" >>"$OUT/runs.csv"
      printf '  %s thread(s) round %d %-8s %10s req/s  p99 %8s us  %6s cpu-us/req  non2xx %s\n' "$threads" "$r" "$t" "$rps" "$p99" "$cpu" "$non2xx"
    done
  done
  stop_gateway; stop_nginx; stop_pid "$HAPROXY_PID"; stop_pid "$MOCK_PID"
done

PYTHONPATH="$BENCH_ROOT/bench/lib" python3 - "$OUT" "$(machine_note)" <<'PY'
import csv, sys
from report import median, table, write_json, plot
out, note = sys.argv[1], sys.argv[2]
runs = list(csv.DictReader(open(f"{out}/runs.csv")))
summary = {"scenario": "b_saturation", "machine": note, "by_threads": {}}
rows = []
thread_set = sorted({r["threads"] for r in runs})
for th in thread_set:
    s = {}
    for p in ("llmgw", "nginx", "haproxy"):
        rs = [r for r in runs if r["threads"] == th and r["proxy"] == p]
        s[p] = {k: median([float(r[k]) for r in rs]) for k in ("rps", "p50_us", "p99_us", "cpu_us_per_req")}
        s[p]["failed"] = sum(int(r["non2xx"]) + int(r["errors"]) for r in rs)
        s[p]["per_round_rps"] = [float(r["rps"]) for r in rs]
    for p in ("llmgw", "nginx", "haproxy"):
        rows.append([f"{th} thr {p}", s[p]["rps"], s[p]["p50_us"], s[p]["p99_us"], s[p]["cpu_us_per_req"],
                     s[p]["rps"] / s["nginx"]["rps"], s["nginx"]["cpu_us_per_req"] / s[p]["cpu_us_per_req"] if s[p]["cpu_us_per_req"] else None,
                     s[p]["failed"]])
    # per-round ratio (same round, adjacent in time) is less exposed to drift than medians
    rr = [float(a["rps"]) / float(b["rps"]) for a, b in zip(
        [r for r in runs if r["threads"] == th and r["proxy"] == "llmgw"],
        [r for r in runs if r["threads"] == th and r["proxy"] == "nginx"])]
    s["ratio_llmgw_nginx_rps_median_of_rounds"] = median(rr)
    s["ratio_llmgw_nginx_cpu_per_req"] = s["nginx"]["cpu_us_per_req"] / s["llmgw"]["cpu_us_per_req"]
    summary["by_threads"][th] = s
print()
table(["proxy", "req/s", "p50 us", "p99 us", "cpu us/req", "rps / nginx", "nginx cpu / cpu", "failed"], rows, nd=2)
for th in thread_set:
    s = summary["by_threads"][th]
    print(f"{th} thread(s): llmgw/nginx req/s {s['ratio_llmgw_nginx_rps_median_of_rounds']:.2f}x (median of per-round ratios), "
          f"CPU efficiency {s['ratio_llmgw_nginx_cpu_per_req']:.2f}x   (issue 3 goal: >= 1.5x)")
write_json(f"{out}/summary.json", summary)
dat = "".join(f"\"{th} thread(s)\" " + " ".join(f"{summary['by_threads'][th][p]['rps']:.0f}" for p in ("llmgw", "nginx", "haproxy")) + "\n"
              for th in thread_set)
plot(f"{out}/b_saturation.png", """
set title "(b) saturation requests/s (median of rounds)"
set ylabel "requests/s"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set yrange [0:*]
plot "b.dat" using 2:xtic(1) title "llmgw", "" using 3 title "nginx", "" using 4 title "HAProxy"
""", {"b.dat": dat})
PY
echo "results: $OUT"
