#!/usr/bin/env bash
# Profiles llmgw in front of llmgw-mock (answers at once, 16 tokens) on loopback.
#   dataplane/tools/profile.sh ir  [LLMGW_BIN] [SECONDS] [STREAM]
#       user-space instructions per request under callgrind (repeatable on a noisy box),
#       plus syscalls per request from strace -c (io_uring_enter, setsockopt, ...)
#   dataplane/tools/profile.sh ab  BIN_A BIN_B [ROUNDS] [SECONDS] [CONNS] [STREAM]
#       alternating wrk runs (1 llmgw thread pinned to core 0, mock and wrk on core 1),
#       prints requests/s of each run and the medians.
#   dataplane/tools/profile.sh lat BIN [ROUNDS] [SECONDS]
#       one connection, alternating direct-to-mock and through llmgw; wrk's p50/p99 of
#       each run and the medians of the differences (the latency llmgw adds).
set -uo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:?usage: profile.sh ir|ab ...}; shift
TMP=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.2; rm -rf "$TMP"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_line() { for _ in $(seq 100); do grep -q listening "$1" 2>/dev/null && return 0; sleep 0.05; done; return 1; }

taskset -c 1 build/bin/llmgw-mock --listen 127.0.0.1:0 --model m --token-interval-ms 0 --output-tokens 16 \
  >"$TMP/mock.out" 2>/dev/null &
PIDS+=($!)
wait_line "$TMP/mock.out"
MPORT=$(sed 's/.*://' "$TMP/mock.out")

lua() {  # stream flag
  cat >"$TMP/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"m","stream":$1,"messages":[{"role":"user","content":"hello"}]}'
wrk.headers["Content-Type"] = "application/json"
LUA
}

start_gw() {  # bin [wrapper...]; sets GPORT, GPID
  local bin=$1; shift
  local port; port=$(free_port)
  cat >"$TMP/gw.yaml" <<YAML
instance: prof-$$-$port
log_level: ${LOG_LEVEL:-warn}
gateway: { listen: 127.0.0.1:$port, threads: 1 }
models:
  - name: m
    backends:
      - { url: "http://127.0.0.1:$MPORT", max_concurrent: 100000 }
YAML
  "$@" "$bin" --config "$TMP/gw.yaml" >"$TMP/gw.out" 2>"$TMP/gw.err" &
  GPID=$!
  PIDS+=($GPID)
  wait_line "$TMP/gw.out" || { cat "$TMP/gw.err"; exit 1; }
  GPORT=$port
  # After llmgw attached: the last process to close the shm object unlinks it.
  build/bin/llmgw-dev-publish --config "$TMP/gw.yaml" >/dev/null
  for _ in $(seq 100); do curl -sf "127.0.0.1:$port/ready" >/dev/null && break; sleep 0.05; done
}

case $MODE in
ir)
  BIN=${1:-build/bin/llmgw}; SECS=${2:-5}; lua "${3:-false}"
  start_gw "$BIN" valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$TMP/cg.out"
  sleep 1
  taskset -c 1 wrk -t1 -c8 -d1s -s "$TMP/post.lua" "http://127.0.0.1:$GPORT/v1/chat/completions" >/dev/null  # warm-up
  callgrind_control -i on "$GPID" >/dev/null
  out=$(taskset -c 1 wrk -t1 -c8 -d"${SECS}s" -s "$TMP/post.lua" "http://127.0.0.1:$GPORT/v1/chat/completions")
  callgrind_control -i off "$GPID" >/dev/null
  callgrind_control -d "$GPID" >/dev/null
  sleep 0.5
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  echo "wrk: $(grep -E "requests in|Non-2xx|Socket errors" <<<"$out" | tr "\n" " ")"
  ir=$(callgrind_annotate "$TMP"/cg.out.1 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1; exit}')
  echo "requests=$reqs Ir=$ir Ir/request=$(( ir / reqs ))"
  callgrind_annotate --inclusive=no "$TMP"/cg.out.1 2>/dev/null | sed -n '/file:function/,$p' | head -40
  kill "$GPID"; wait "$GPID" 2>/dev/null || true
  cp "$TMP"/cg.out.1 "/tmp/callgrind.$(basename "$BIN").out"
  # Syscalls per request, natively (strace slows llmgw but counts exactly).
  start_gw "$BIN" strace -f -c -o "$TMP/strace.out"
  out=$(taskset -c 1 wrk -t1 -c8 -d2s -s "$TMP/post.lua" "http://127.0.0.1:$GPORT/v1/chat/completions")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  echo "wrk: $(grep -E "requests in|Non-2xx|Socket errors" <<<"$out" | tr "\n" " ")"
  kill $(pgrep -P "$GPID") 2>/dev/null; wait "$GPID" 2>/dev/null || true  # llmgw drains, strace reports
  echo "syscalls during $reqs requests (strace -c):"
  awk -v r="$reqs" '/^ *[0-9]/ && NF>=5 {printf "  %-20s %8d  %.2f/request\n", $NF, $4, $4/r}' "$TMP/strace.out"
  ;;
ab)
  A=${1:?bin A}; B=${2:?bin B}; ROUNDS=${3:-5}; SECS=${4:-5}; CONNS=${5:-50}; lua "${6:-false}"
  declare -a RA RB
  for r in $(seq "$ROUNDS"); do
    for which in A B; do
      bin=$A; [ $which = B ] && bin=$B
      start_gw "$bin" taskset -c 0
      sleep 0.3
      rps=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$TMP/post.lua" "http://127.0.0.1:$GPORT/v1/chat/completions" |
            awk '/Requests\/sec/ {print $2}')
      kill "$GPID"; wait "$GPID" 2>/dev/null || true
      echo "round $r $which $rps"
      if [ $which = A ]; then RA+=("$rps"); else RB+=("$rps"); fi
    done
  done
  med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
  echo "median A=$(med "${RA[@]}") B=$(med "${RB[@]}") req/s"
  ;;
lat)
  BIN=${1:?bin}; ROUNDS=${2:-5}; SECS=${3:-4}; lua false
  start_gw "$BIN" taskset -c "${GW_CPU:-0}"
  to_us() { awk '{v=$1; if (v ~ /us$/) {sub(/us/,"",v); print v} else if (v ~ /ms$/) {sub(/ms/,"",v); print v*1000} else {sub(/s/,"",v); print v*1000000}}'; }
  declare -a D50 D99
  for r in $(seq "$ROUNDS"); do
    d=$(taskset -c 1 wrk -t1 -c1 -d"${SECS}s" --latency -s "$TMP/post.lua" "http://127.0.0.1:$MPORT/v1/chat/completions")
    g=$(taskset -c 1 wrk -t1 -c1 -d"${SECS}s" --latency -s "$TMP/post.lua" "http://127.0.0.1:$GPORT/v1/chat/completions")
    d50=$(awk '$1=="50%" {print $2}' <<<"$d" | to_us); d99=$(awk '$1=="99%" {print $2}' <<<"$d" | to_us)
    g50=$(awk '$1=="50%" {print $2}' <<<"$g" | to_us); g99=$(awk '$1=="99%" {print $2}' <<<"$g" | to_us)
    echo "round $r direct p50=${d50}us p99=${d99}us  via llmgw p50=${g50}us p99=${g99}us"
    D50+=("$(awk -v a="$g50" -v b="$d50" 'BEGIN {print a-b}')"); D99+=("$(awk -v a="$g99" -v b="$d99" 'BEGIN {print a-b}')")
  done
  med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
  echo "added latency (median of rounds): p50=$(med "${D50[@]}")us p99=$(med "${D99[@]}")us"
  ;;
esac
