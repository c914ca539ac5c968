#!/usr/bin/env bash
# Process helpers shared by the demo (scripts/run-demo.sh) and the bench scenarios
# (bench/lib/common.sh): one work dir, every child killed on exit — also children started
# inside $(...), whose pids only their pid files know —, kernel-assigned free ports,
# waiting for an HTTP endpoint, and starting llmgw-mock on port 0.
# Source it with BIN (the build/bin directory) set; PROCS_TAG names the work dir and
# prefixes messages.
source "$(dirname "${BASH_SOURCE[0]}")/listening_port.sh"
PROCS_TAG="${PROCS_TAG:-llmgw}"
PROCS_WORK="$(mktemp -d "/tmp/llmgw-$PROCS_TAG.XXXXXX")"
PROCS_PIDS=()

procs_cleanup() {
  local p f
  for p in "${PROCS_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "$PROCS_WORK"/*.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$PROCS_WORK"
}
trap procs_cleanup EXIT INT TERM

free_port() {  # a port the kernel just handed out for bind(0): free of listeners and TIME_WAIT
  python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

wait_http() {  # wait_http URL [SECONDS]
  local i
  for ((i = 0; i < ${2:-10} * 20; i++)); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "$PROCS_TAG: $1 did not come up" >&2
  return 1
}

# start_mock NAME [mock flags...] -> echoes the port; the pid is in $PROCS_WORK/NAME.pid
start_mock() {
  local name=$1; shift
  # A name can be reused within a run: remove the old output first, or the wait below could
  # read the previous mock's "listening" line while the new one truncates the file.
  rm -f "$PROCS_WORK/$name.out"
  "$BIN/llmgw-mock" --listen 127.0.0.1:0 "$@" >"$PROCS_WORK/$name.out" 2>"$PROCS_WORK/$name.log" &
  PROCS_PIDS+=($!)
  echo $! >"$PROCS_WORK/$name.pid"
  listening_port "$PROCS_WORK/$name.out" 10 2>/dev/null && return 0
  echo "$PROCS_TAG: mock $name did not start (alive: $(kill -0 "$(cat "$PROCS_WORK/$name.pid")" 2>/dev/null && echo yes || echo no)):" >&2
  tail -5 "$PROCS_WORK/$name.log" >&2
  return 1
}
