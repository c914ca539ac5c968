#!/usr/bin/env bash
# Scenario (k), issue 13: upstream TLS. The same fast llmgw-mock behind a plain port and
# behind --tls (a throwaway CA made here); wrk (keep-alive POSTs of a small chat request)
# through llmgw to the plain backend, llmgw to the TLS backend, and nginx to the TLS
# backend with proxy_ssl_session_reuse and a keep-alive upstream. Reported per proxy: req/s,
# the proxy's CPU time per request (/proc utime+stime ÷ requests) and the TLS handshakes
# the backend saw per 1,000 requests (its /mock/stats tls_handshakes_total, resumed ones
# apart). The proxy is pinned to core 0, the mock and wrk to core 1 (--no-pin: unpinned).
# usage: bench/scenarios/k_tls_upstream.sh [--rounds N] [--duration S] [--connections C] [--no-pin]
source "$(dirname "$0")/../lib/common.sh"
ROUNDS=3 DUR=5 CONNS=64 PIN=1
bench_options --rounds=ROUNDS:N --duration=DUR:S --connections=CONNS:C --no-pin:PIN=0 -- "$@"
OUT=$(results_dir k_tls_upstream)
if [ "$PIN" = 1 ]; then PCPU=0 OCPU=1; else PCPU=0,1 OCPU=0,1; fi

# Throwaway CA and a server certificate for 127.0.0.1 / localhost.
PKI="$BENCH_WORK/pki"; mkdir -p "$PKI"
EC="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $EC -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -days 2 -subj /CN=bench-ca 2>/dev/null
openssl req $EC -keyout "$PKI/server.key" -out "$PKI/server.csr" -subj /CN=localhost 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$PKI/server.ext"
openssl x509 -req -in "$PKI/server.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
  -out "$PKI/server.crt" -days 2 -extfile "$PKI/server.ext" 2>/dev/null

write_post_lua

PLAIN=$(start_mock plain --model bench-model --token-interval-ms 0 --output-tokens 16 --threads 1)
TLSP=$(start_mock tls --model bench-model --token-interval-ms 0 --output-tokens 16 --threads 1 \
  --tls "$PKI/server.crt" "$PKI/server.key")
for n in plain tls; do taskset -pc $OCPU "$(cat "$BENCH_WORK/$n.pid")" >/dev/null; done
stat_tls() { curl -s --noproxy '*' --cacert "$PKI/ca.crt" "https://127.0.0.1:$TLSP/mock/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }

GW_CPUS=$PCPU start_gateway 1 least_connections "$PLAIN"; GW_PLAIN_PORT=$GW_PORT GW_PLAIN_PID=$GW_PID LLMCD1=$LLMCD_PID
GW_BACKEND_SCHEME=https GW_BACKEND_EXTRA="tls: { ca_file: \"$PKI/ca.crt\" }" GW_CPUS=$PCPU start_gateway 1 least_connections "$TLSP"
GW_TLS_PORT=$GW_PORT GW_TLS_PID=$GW_PID LLMCD2=$LLMCD_PID
NPORT=$(free_port 32000)
NGINX_UPSTREAM_SCHEME=https NGINX_EXTRA_LOCATION="      proxy_ssl_session_reuse on;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate $PKI/ca.crt;
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;" start_nginx 1 "$NPORT" "$TLSP"
for p in $(cat "$BENCH_WORK/nginx.pid") $(pgrep -P "$(cat "$BENCH_WORK/nginx.pid")"); do taskset -pc $PCPU "$p" >/dev/null; done

# Each proxy must answer before it is measured (a refused certificate would count as
# very fast requests otherwise).
for port in $GW_PLAIN_PORT $GW_TLS_PORT $NPORT; do
  code=$(curl -s --noproxy '*' -o "$BENCH_WORK/check.out" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d '{"model":"bench-model","messages":[{"role":"user","content":"hello"}]}' "http://127.0.0.1:$port/v1/chat/completions")
  if [ "$code" != 200 ]; then echo "proxy on port $port answered $code: $(cat "$BENCH_WORK/check.out")" >&2; exit 1; fi
done

echo "scenario (k): wrk -c$CONNS, ${ROUNDS} rounds x ${DUR}s per proxy; $(machine_note)"
echo "proxy,round,rps,p50_us,p99_us,cpu_us_per_req,handshakes_per_1000,resumed_per_1000,non2xx,errors" >"$OUT/runs.csv"
for ((r = 1; r <= ROUNDS; r++)); do
  for t in llmgw_plain llmgw_tls nginx_tls; do
    case $t in
      llmgw_plain) port=$GW_PLAIN_PORT pid=$GW_PLAIN_PID ;;
      llmgw_tls) port=$GW_TLS_PORT pid=$GW_TLS_PID ;;
      nginx_tls) port=$NPORT pid=$(cat "$BENCH_WORK/nginx.pid") ;;
    esac
    h0=$(stat_tls tls_handshakes_total); r0=$(stat_tls tls_resumed_total)
    before=$(cpu_ticks "$pid")
    w=$(taskset -c $OCPU wrk -t1 -c"$CONNS" -d"${DUR}s" --latency -s "$BENCH_WORK/post.lua" "http://127.0.0.1:$port/v1/chat/completions")
    after=$(cpu_ticks "$pid")
    h1=$(stat_tls tls_handshakes_total); r1=$(stat_tls tls_resumed_total)
    wrk_figures "$w" $((after - before))
    # The two stats fetches after h0 are handshakes too (curl's): not the proxy's.
    hs=$(awk -v d=$((h1 - h0 - 1)) -v n="$reqs" 'BEGIN {printf "%.3f", n ? (d < 0 ? 0 : d) * 1000 / n : 0}')
    rs=$(awk -v d=$((r1 - r0)) -v n="$reqs" 'BEGIN {printf "%.3f", n ? d * 1000 / n : 0}')
    echo "$t,$r,$rps,$p50,$p99,$cpu,$hs,$rs,$non2xx,$errs" >>"$OUT/runs.csv"
    printf '  round %d %-12s %10s req/s  p99 %8s us  %6s cpu-us/req  %s handshakes/1000 (%s resumed)  non2xx %s errors %s\n' \
      "$r" "$t" "$rps" "$p99" "$cpu" "$hs" "$rs" "$non2xx" "$errs"
  done
done
stop_pid "$GW_PLAIN_PID"; stop_pid "$LLMCD1"; stop_pid "$GW_TLS_PID"; stop_pid "$LLMCD2"; stop_nginx

PYTHONPATH="$BENCH_ROOT/bench/lib" python3 - "$OUT" "$(machine_note)" <<'PY'
import csv, sys
from report import median, table, write_json
out, note = sys.argv[1], sys.argv[2]
runs = list(csv.DictReader(open(f"{out}/runs.csv")))
summary = {"scenario": "k_tls_upstream", "machine": note, "by_proxy": {}}
rows = []
for p in ("llmgw_plain", "llmgw_tls", "nginx_tls"):
    rs = [r for r in runs if r["proxy"] == p]
    s = {k: median([float(r[k]) for r in rs]) for k in ("rps", "p50_us", "p99_us", "cpu_us_per_req", "handshakes_per_1000", "resumed_per_1000")}
    s["failed"] = sum(int(r["non2xx"]) + int(r["errors"]) for r in rs)
    summary["by_proxy"][p] = s
    rows.append([p, s["rps"], s["p50_us"], s["p99_us"], s["cpu_us_per_req"], s["handshakes_per_1000"], s["resumed_per_1000"], s["failed"]])
print()
table(["proxy", "req/s", "p50 us", "p99 us", "cpu us/req", "handshakes/1000", "resumed/1000", "failed"], rows, nd=3)
write_json(f"{out}/summary.json", summary)
PY
echo "results: $OUT"
