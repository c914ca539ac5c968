#!/usr/bin/env bash
# Configures and builds llmgw with Ninja into build/ (or $BUILD_DIR). Extra arguments go
# to cmake, e.g. scripts/build.sh -DLLMGW_SANITIZE=address. Warnings are errors here
# (LLMGW_WERROR=ON; a later -DLLMGW_WERROR=OFF overrides it); a plain cmake build, as a
# packager runs it, leaves them as warnings.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DLLMGW_WERROR=ON "$@" >/dev/null
ninja -C "$BUILD_DIR" -j"$(nproc)"
