#!/usr/bin/env bash
# listening_port FILE [SECONDS] -> echoes the port of the first "listening HOST:PORT" line
# that llmgw, llmcd or llmgw-mock writes to stdout once bound (port 0 = kernel's pick).
# One definition for the demo, the bench scenarios, soak.sh and chaos.sh.
listening_port() {
  local out="$1" i
  for ((i = 0; i < ${2:-10} * 20; i++)); do
    if grep -q '^listening ' "$out" 2>/dev/null; then
      sed -n 's/^listening .*:\([0-9]*\).*$/\1/p' "$out" | head -1
      return 0
    fi
    sleep 0.05
  done
  echo "no 'listening' line in $out after ${2:-10}s" >&2
  return 1
}
