#!/usr/bin/env bash
# Scenario (d): memory per idle client connection. After a warm-up, N client connections
# each send one GET /health and then stay open and idle (bench/lib/idle_conns.py); the
# proxy's RSS delta / N is the cost of one idle keep-alive connection. llmgw (1 thread)
# and nginx (1 worker; RSS of master + worker) are measured in alternating rounds, each
# round on freshly started proxies (a process keeps freed memory, so a second measurement
# in the same process would read ~0).
# usage: bench/scenarios/d_idle_memory.sh [--long] [--connections N] [--rounds R]
source "$(dirname "$0")/../lib/common.sh"
CONNS=10000 ROUNDS=2
bench_options --long:ROUNDS=5 --connections=CONNS:N --rounds=ROUNDS:R -- "$@"
OUT=$(results_dir d_idle_memory)
MPORT=$(start_mock m --model bench-model --token-interval-ms 0 --output-tokens 16)
export GW_EXTRA_GATEWAY="timeouts: {client_idle_ms: 600000}"
fresh_proxies() {  # new llmgw + llmcd and nginx, warmed up with some real traffic
  [ -n "${GW_PID:-}" ] && stop_gateway
  stop_nginx
  start_gateway 1 least_connections "$MPORT"
  NPORT=$(free_port)
  start_nginx 1 "$NPORT" "$MPORT"
  NGINX_PID=$(cat "$BENCH_WORK/nginx.pid")
  # Warm-up: pools, buffer rings and allocator arenas exist before the baseline.
  for p in "$GW_PORT" "$NPORT"; do
    bench --target "127.0.0.1:$p" --model bench-model --concurrency 64 --duration 1 --stream-ratio 0.5 >/dev/null
  done
}

echo "scenario (d): $CONNS idle keep-alive connections, $ROUNDS rounds; $(machine_note)"
echo "proxy,round,connections,rss_before_kb,rss_after_kb,bytes_per_conn" >"$OUT/runs.csv"
hold() {  # hold PORT PID ROUND NAME
  local before after fifo="$BENCH_WORK/hold.$4.$3"
  sleep 0.5
  before=$(rss_kb "$2")
  mkfifo "$fifo"
  python3 "$BENCH_ROOT/bench/lib/idle_conns.py" 127.0.0.1 "$1" "$CONNS" <"$fifo" >"$fifo.out" &
  local hp=$!
  exec 9>"$fifo"
  local i
  for ((i = 0; i < 1200; i++)); do grep -q '^ready' "$fifo.out" 2>/dev/null && break; kill -0 $hp 2>/dev/null || break; sleep 0.05; done
  grep -q '^ready' "$fifo.out" || { echo "bench: could not open $CONNS connections to $4" >&2; exec 9>&-; return 1; }
  sleep 0.5
  after=$(rss_kb "$2")
  exec 9>&-
  wait $hp || true
  local per=$(( (after - before) * 1024 / CONNS ))
  echo "$4,$3,$CONNS,$before,$after,$per" >>"$OUT/runs.csv"
  printf '  round %d %-6s RSS %8d KB -> %8d KB  = %5d bytes per idle connection\n' "$3" "$4" "$before" "$after" "$per"
}
for ((r = 1; r <= ROUNDS; r++)); do
  fresh_proxies
  hold "$GW_PORT" "$GW_PID" "$r" llmgw
  hold "$NPORT" "$NGINX_PID" "$r" nginx
done

PYTHONPATH="$BENCH_ROOT/bench/lib" python3 - "$OUT" "$(machine_note)" <<'PY'
import csv, sys
from report import median, table, write_json, plot
out, note = sys.argv[1], sys.argv[2]
runs = list(csv.DictReader(open(f"{out}/runs.csv")))
summary = {"scenario": "d_idle_memory", "machine": note, "proxies": {}}
rows = []
for p in ("llmgw", "nginx"):
    rs = [r for r in runs if r["proxy"] == p]
    per = median([int(r["bytes_per_conn"]) for r in rs])
    summary["proxies"][p] = {"bytes_per_idle_conn": per, "connections": int(rs[0]["connections"]),
                             "per_round": [int(r["bytes_per_conn"]) for r in rs]}
    rows.append([p, int(rs[0]["connections"]), per, per / 1024.0])
print()
table(["proxy", "connections", "bytes/conn", "KB/conn"], rows, nd=2)
g, n = summary["proxies"]["llmgw"]["bytes_per_idle_conn"], summary["proxies"]["nginx"]["bytes_per_idle_conn"]
summary["ratio_llmgw_over_nginx"] = g / n if n else None
summary["goal"] = {"max_bytes": 2048, "met": g <= 2048}
print(f"llmgw/nginx memory per idle connection: {g / n:.2f}x   (issue 3 goal: <= 2 KB: {'met' if g <= 2048 else 'NOT met'})")
write_json(f"{out}/summary.json", summary)
plot(f"{out}/d_idle_memory.png", """
set title "(d) RSS per idle keep-alive connection"
set ylabel "bytes"
set style data histograms
set style fill solid 0.8 border -1
set yrange [0:*]
plot "d.dat" using 2:xtic(1) notitle
""", {"d.dat": f"llmgw {g}\nnginx {n}\n"})
PY
echo "results: $OUT"
