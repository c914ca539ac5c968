#!/usr/bin/env bash
# Builds every libFuzzer target with clang into build-fuzz/ (all code instrumented:
# -fsanitize=fuzzer-no-link,address,undefined, see fuzz/CMakeLists.txt) and runs each one
# for SECONDS (default 60) from its committed seed corpus. Fails on any crash, leak,
# timeout or sanitizer report; the reproducer is kept in build-fuzz/artifacts/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     e.g. scripts/fuzz.sh 30 config_fuzz
#
# New inputs found go to build-fuzz/corpus/<target>/ (kept between runs, never committed
# automatically: copy an interesting one into the seed directory by hand). A longer
# campaign is the same command with more seconds, see docs/RELIABILITY.md.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH="${1:-60}"
shift || true
case "$SECONDS_EACH" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a number" >&2; exit 2 ;; esac

# name | seed corpus (committed). One line per target.
TARGETS=(
  "prom_parser_fuzz    fuzz/corpus/prom_parser"    # llmcd: scraped backend /metrics
  "config_fuzz         fuzz/corpus/config"         # config loader, YAML text
  "snapshot_wire_fuzz  fuzz/corpus/snapshot_wire"  # fleet snapshot frames from the network
  "request_json_fuzz   fuzz/corpus/request_json"   # data plane: JSON field reader alone
  "llmgw_request_fuzz  dataplane/fuzz/corpus"      # data plane: llhttp request stream + JSON reader
  "relay_fuzz          fuzz/corpus/relay"          # data plane: SSE relay + response framing
  "client_session_fuzz fuzz/corpus/client_session" # data plane: client request path (ClientSession)
  "upstream_codec_fuzz fuzz/corpus/upstream_codec" # data plane: upstream responses (UpstreamCodec)
  "anthropic_stream_fuzz fuzz/corpus/anthropic_stream"  # Anthropic SSE -> OpenAI chunks
  "stream_resume_fuzz  fuzz/corpus/stream_resume"  # data plane: StreamFilter, continuation bodies, rewriting
)

BUILD_DIR=build-fuzz
export CCACHE_DIR="${CCACHE_DIR:-$PWD/.cache/ccache}"
# ccache does not hash the file named by -fsanitize-ignorelist: hash it explicitly.
export CCACHE_EXTRAFILES="$PWD/fuzz/ubsan_ignorelist.txt"
CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -G Ninja -DLLMGW_BUILD_FUZZERS=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$BUILD_DIR" -j"$(nproc)" fuzzers

# halt_on_error: the first UBSan report ends the run (and fails this script).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
mkdir -p "$BUILD_DIR/artifacts" "$BUILD_DIR/logs"

want=("$@")
failed=()
summary=()
for line in "${TARGETS[@]}"; do
  read -r name seeds <<<"$line"
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " =~ " $name " ]]; then continue; fi
  bin="$BUILD_DIR/bin/$name"
  if [ ! -x "$bin" ]; then
    echo "fuzz.sh: $name was not built" >&2
    failed+=("$name(missing)")
    continue
  fi
  corpus="$BUILD_DIR/corpus/$name"
  log="$BUILD_DIR/logs/$name.log"
  mkdir -p "$corpus"
  echo "== $name: ${SECONDS_EACH}s from $seeds"
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: a memory blow-up.
  if "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$BUILD_DIR/artifacts/$name-" \
      "$corpus" "$seeds" >"$log" 2>&1; then
    stats=$(sed -nE 's/^#([0-9]+)[[:space:]]+DONE[[:space:]]+cov: ([0-9]+) ft: ([0-9]+).*/execs=\1 cov=\2 ft=\3/p' "$log" | tail -1)
    summary+=("$name: $stats")
    echo "   ok: $stats"
  else
    echo "   FAILED (log: $log)"
    grep -E 'ERROR|runtime error|SUMMARY|Test unit written|deadly signal' "$log" | head -20 || true
    failed+=("$name")
  fi
done

echo "== fuzz summary (${SECONDS_EACH}s each)"
for s in "${summary[@]}"; do echo "   $s"; done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
