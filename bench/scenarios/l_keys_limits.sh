#!/usr/bin/env bash
# Scenario (l): client API keys and limits (issue 12).
# 1. Cost: two gateways side by side in front of one fast llmgw-mock, one without keys or
#    limits, one with `auth.required`, a key with rpm, tpm and max_concurrent limits and a
#    global rps limit (all set far above what the run reaches, so nothing is refused:
#    what is measured is the cost of checking them). wrk (keep-alive POSTs, the key in
#    Authorization for the second) alternates between them each round; req/s and the
#    llmgw process's CPU time per request (from /proc) are compared (goal: <= 5% cost).
# 2. Fleet: a controller llmcd and two agents, each agent with its own llmgw, share one
#    key's rpm. A paced client offers four times the limit, all to one gateway, moving to
#    the other every PHASE seconds; admitted requests per second and per 10 s window are
#    printed against the limit (and plotted when gnuplot is there).
# usage: bench/scenarios/l_keys_limits.sh [--rounds N] [--duration S] [--connections C]
#        [--rpm N] [--phase S] [--phases N] [--only cost|fleet]
source "$(dirname "$0")/../lib/common.sh"
ROUNDS=5 DUR=5 CONNS=32 RPM=1800 PHASE=15 PHASES=4 ONLY=""
bench_options --rounds=ROUNDS:N --duration=DUR:S --connections=CONNS:C --rpm=RPM:N --phase=PHASE:S \
  --phases=PHASES:N "--only=ONLY:cost|fleet" -- "$@"
OUT=$(results_dir l_keys_limits)
SECRET="sk-bench-$$-0123456789abcdef"
SHA=$(printf %s "$SECRET" | sha256sum | cut -c1-64)
echo "scenario (l): $(machine_note)"

if [ "$ONLY" != fleet ]; then
  MPORT=$(start_mock mj --model bench-model --token-interval-ms 0 --output-tokens 16 --threads 1)
  GW_EXTRA_YAML="health: { interval_ms: 1000, timeout_ms: 500 }" start_gateway 1 least_connections "$MPORT"
  OFF_PORT=$GW_PORT OFF_PID=$GW_PID OFF_CD=$LLMCD_PID
  GW_EXTRA_YAML="health: { interval_ms: 1000, timeout_ms: 500 }
auth: { required: true }
limits: { global: { rps: 100000000 } }
keys:
  - { id: bench, key_sha256: \"$SHA\", limits: { rpm: 4000000000, tpm: 4000000000, max_concurrent: 100000 } }" \
    start_gateway 1 least_connections "$MPORT"
  ON_PORT=$GW_PORT ON_PID=$GW_PID
  for mode in off on; do
    {
      echo 'wrk.method = "POST"'
      echo "wrk.body = '{\"model\":\"bench-model\",\"stream\":false,\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}'"
      echo 'wrk.headers["Content-Type"] = "application/json"'
      [ $mode = on ] && echo "wrk.headers[\"Authorization\"] = \"Bearer $SECRET\""
    } >"$BENCH_WORK/$mode.lua"
  done
  # Sanity: the keyed gateway refuses a request without the key, admits one with it.
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -d '{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}' "http://127.0.0.1:$ON_PORT/v1/chat/completions")
  [ "$code" = 401 ] || { echo "bench: keyed gateway answered $code without a key (want 401)" >&2; exit 1; }
  echo "mode,round,rps,cpu_us_per_req,non2xx" >"$OUT/cost.csv"
  for ((r = 1; r <= ROUNDS; r++)); do
    for mode in off on; do
      if [ $mode = off ]; then port=$OFF_PORT pid=$OFF_PID; else port=$ON_PORT pid=$ON_PID; fi
      before=$(cpu_ticks "$pid")
      w=$(wrk -t1 -c"$CONNS" -d"${DUR}s" -s "$BENCH_WORK/$mode.lua" "http://127.0.0.1:$port/v1/chat/completions")
      after=$(cpu_ticks "$pid")
      rps=$(awk '/Requests\/sec/ {print $2}' <<<"$w")
      reqs=$(awk '/requests in/ {print $1}' <<<"$w")
      non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$w"); non2xx=${non2xx:-0}
      cpu=$(awk -v t=$((after - before)) -v n="$reqs" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", n ? t / hz * 1e6 / n : 0}')
      echo "$mode,$r,$rps,$cpu,$non2xx" >>"$OUT/cost.csv"
      printf '  round %d  limits %-3s %10s req/s  %6s cpu-us/req  non2xx %s\n' "$r" "$mode" "$rps" "$cpu" "$non2xx"
    done
  done
  PYTHONPATH="$BENCH_ROOT/bench/lib" python3 - "$OUT" <<'PY'
import csv, sys
from report import median, table, write_json
out = sys.argv[1]
runs = list(csv.DictReader(open(f"{out}/cost.csv")))
s = {}
for m in ("off", "on"):
    rs = [r for r in runs if r["mode"] == m]
    s[m] = {"rps": median([float(r["rps"]) for r in rs]), "cpu_us_per_req": median([float(r["cpu_us_per_req"]) for r in rs]),
            "non2xx": sum(int(r["non2xx"]) for r in rs)}
# per-round ratios (adjacent in time) are less exposed to the shared machine's drift
off = [r for r in runs if r["mode"] == "off"]; on = [r for r in runs if r["mode"] == "on"]
s["rps_ratio_median_of_rounds"] = median([float(b["rps"]) / float(a["rps"]) for a, b in zip(off, on)])
s["cpu_ratio_median_of_rounds"] = median([float(b["cpu_us_per_req"]) / float(a["cpu_us_per_req"]) for a, b in zip(off, on)])
print()
table(["limits", "req/s", "cpu us/req", "non-2xx"], [[m, s[m]["rps"], s[m]["cpu_us_per_req"], s[m]["non2xx"]] for m in ("off", "on")], nd=2)
print(f"with auth and limits: req/s x{s['rps_ratio_median_of_rounds']:.3f}, CPU per request x{s['cpu_ratio_median_of_rounds']:.3f} "
      "(median of per-round ratios; goal: CPU cost <= 5%)")
write_json(f"{out}/cost.json", s)
PY
  stop_gateway; stop_pid "$OFF_PID"; stop_pid "$OFF_CD"
  stop_pid "$(cat "$BENCH_WORK/mj.pid")"
fi

if [ "$ONLY" != cost ]; then
  MPORT=$(start_mock mf --model bench-model --token-interval-ms 0 --output-tokens 1 --threads 1)
  CTL_GRPC=$(free_port 33000)
  KEYS="control: { tick_ms: 20, heartbeat_ms: 200 }
keys:
  - { id: shared, key_sha256: \"$SHA\", limits: { rpm: $RPM } }"
  GW_EXTRA_YAML="$KEYS" write_gateway_config "$BENCH_WORK/ctl.yaml" 1 0 "$CTL_GRPC" "$(free_port 33100)" round_robin "$MPORT"
  "$BIN/llmcd" --config "$BENCH_WORK/ctl.yaml" >/dev/null 2>"$BENCH_WORK/ctl.log" &
  PROCS_PIDS+=($!)
  sleep 0.5
  PORTS=()
  for a in a b; do
    GW_EXTRA_YAML="$KEYS" write_gateway_config "$BENCH_WORK/agent-$a.yaml" 2 0 "$(free_port 33200)" "$(free_port 33300)" round_robin "$MPORT"
    "$BIN/llmcd" --config "$BENCH_WORK/agent-$a.yaml" --agent-of "127.0.0.1:$CTL_GRPC" >/dev/null 2>"$BENCH_WORK/agent-$a.log" &
    PROCS_PIDS+=($!)
    start_llmgw "$BENCH_WORK/agent-$a.yaml"
    PORTS+=("$GW_PORT")
  done
  echo "fleet: controller + agents a (:${PORTS[0]}) and b (:${PORTS[1]}), key rpm $RPM ($(awk -v r="$RPM" 'BEGIN {print r / 60}')/s);" \
       "offered 4x the limit, moving a -> b -> a ... every ${PHASE}s"
  PYTHONPATH="$BENCH_ROOT/bench/lib" python3 - "$OUT" "$SECRET" "$RPM" "$PHASE" "$PHASES" "${PORTS[@]}" <<'PY'
import http.client, sys, threading, time
from report import table, write_json, plot
out, secret, rpm, phase, phases = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ports = [int(p) for p in sys.argv[6:8]]
rate = rpm / 60.0
offered, nthreads = 4 * rate, 6
body = b'{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}'
total_s = phase * phases
admitted = [[0, 0] for _ in range(total_s + 1)]  # per second, per gateway
refused = [0] * (total_s + 1)
lock = threading.Lock()
t0 = time.monotonic()
def worker():
    gap = nthreads / offered
    nxt = time.monotonic()
    while True:
        now = time.monotonic() - t0
        if now >= total_s:
            return
        g = int(now // phase) % 2
        try:
            c = http.client.HTTPConnection("127.0.0.1", ports[g], timeout=5)
            c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json", "Authorization": "Bearer " + secret})
            st = c.getresponse().status
            c.close()
        except Exception:
            st = 0
        sec = int(time.monotonic() - t0)
        with lock:
            if sec <= total_s:
                if st == 200: admitted[sec][g] += 1
                elif st == 429: refused[sec] += 1
        nxt += gap
        d = nxt - time.monotonic()
        if d > 0: time.sleep(d)
        else: nxt = time.monotonic()
ths = [threading.Thread(target=worker) for _ in range(nthreads)]
for t in ths: t.start()
for t in ths: t.join()
rows, win = [], []
for s in range(total_s):
    w = sum(sum(admitted[k]) for k in range(max(0, s - 9), s + 1)) if s >= 9 else None
    rows.append([s, "a" if (s // phase) % 2 == 0 else "b", admitted[s][0], admitted[s][1], sum(admitted[s]), refused[s], rate, w, rate * 10 if w is not None else None])
    if w is not None and s >= 11: win.append(w / (rate * 10))
print()
table(["second", "demand on", "admitted a", "admitted b", "admitted", "refused", "limit/s", "last 10 s", "limit 10 s"], rows, nd=1)
print(f"10 s windows from 2 s on: admitted / limit min {min(win):.3f} max {max(win):.3f} (bounds: 0.95 .. 1.05)")
write_json(f"{out}/fleet.json", {"rpm": rpm, "phase_s": phase, "per_second": admitted, "refused": refused,
                                 "window_ratio_min": min(win), "window_ratio_max": max(win)})
dat = "".join(f"{s} {sum(admitted[s])} {admitted[s][0]} {admitted[s][1]} {rate}\n" for s in range(total_s))
plot(f"{out}/l_fleet.png", f"""
set title "(l) one key's rpm shared by two gateways; demand moves every {phase} s"
set xlabel "second"; set ylabel "requests admitted per second"
set yrange [0:*]
plot "l.dat" using 1:2 with lines lw 2 title "fleet", "" using 1:3 with lines title "gateway a", "" using 1:4 with lines title "gateway b", "" using 1:5 with lines dt 2 title "limit"
""", {"l.dat": dat})
PY
fi
echo "results: $OUT"
