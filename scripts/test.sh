#!/usr/bin/env bash
# The README's test command: installs dependencies, builds, runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
# The OpenAI SDK compatibility test drives llmgw with the official Node package, pinned
# by tests/dataplane/sdk/package-lock.json (from the npm registry).
if command -v npm >/dev/null; then
  (cd tests/dataplane/sdk && npm ci --no-audit --no-fund --loglevel=error)
  (cd tests/deploy/k8s && npm ci --no-audit --no-fund --loglevel=error)
else
  echo "test.sh: npm not found; the OpenAI SDK and Kubernetes schema tests will report SKIPPED" >&2
fi
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j"$(nproc)" --timeout 300 "$@"
