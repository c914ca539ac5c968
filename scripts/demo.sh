#!/usr/bin/env bash
# The README's demo command: installs dependencies, builds, starts two llmgw-mock backends,
# llmcd and llmgw on loopback, sends a real streaming chat completion through the gateway
# and prints `llmctl status`. Everything it starts is stopped when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
BIN="${BUILD_DIR:-build}/bin"

missing=()
for b in llmgw-mock llmcd llmgw llmctl; do
  [ -x "$BIN/$b" ] || missing+=("$b")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "demo: not runnable yet: ${missing[*]} not built (see the open issues)." >&2
  exit 1
fi
exec scripts/run-demo.sh "$BIN" "$@"
