#!/usr/bin/env bash
# A /dev/shm smaller than the shared-memory object (Docker's default 64 MB): llmcd and
# llmgw refuse to start with a message saying what to do (`--shm-size`), instead of
# dying of SIGBUS under load once enough pages are touched (48 threads filled a 64 MB
# /dev/shm and killed both without a log line). A 256 MB /dev/shm starts. Each case runs
# in a private mount namespace with its own tmpfs on /dev/shm (unshare -m), so the host's
# /dev/shm is not touched.
# Usage: shm_size_test.sh BIN_DIR. Needs root (mount); exit 77 = skipped. About 5 s.
set -euo pipefail
BIN="${1:?usage: shm_size_test.sh BIN_DIR}"
[ "$(id -u)" -eq 0 ] || { echo "SKIPPED: needs root (mount namespaces)"; exit 77; }
unshare -m true 2>/dev/null || { echo "SKIPPED: cannot create mount namespaces here"; exit 77; }
DIR="$(mktemp -d /tmp/llmgw-shmsize-XXXXXX)"
trap 'rm -rf "$DIR"' EXIT
cat >"$DIR/c.yaml" <<Y
instance: shmsize$$
gateway: { listen: 127.0.0.1:0, threads: 1 }
admin: { grpc_listen: 127.0.0.1:0, metrics_listen: 127.0.0.1:0 }
models:
  - name: m
    backends: [ { url: "http://127.0.0.1:9" } ]
Y
FAILED=0
# $1: tmpfs size, $2: binary. Runs it for up to 2 s in its own mount namespace; prints its
# exit status (124 = still running after 2 s, i.e. it started).
run() {
  unshare -m bash -c "mount -t tmpfs -o size=$1 tmpfs /dev/shm && exec timeout 2 $BIN/$2 --config $DIR/c.yaml" \
    >"$DIR/$2-$1.out" 2>"$DIR/$2-$1.log" && echo 0 || echo $?
}
for b in llmcd llmgw; do
  rc=$(run 64m "$b")
  if [ "$rc" != 1 ] || ! grep -q 'MiB free, /llmgw-shmsize'"$$"' needs [0-9]* MiB: enlarge it (docker run --shm-size=256m)' "$DIR/$b-64m.log"; then
    echo "FAIL: $b on a 64 MB /dev/shm: exit $rc, expected 1 with the --shm-size message"; cat "$DIR/$b-64m.log"; FAILED=1
  else
    echo "ok: $b on a 64 MB /dev/shm refuses: $(grep -o '/dev/shm has[^"]*' "$DIR/$b-64m.log" | head -1)"
  fi
done
rc=$(run 256m llmcd)
if [ "$rc" != 124 ]; then
  echo "FAIL: llmcd on a 256 MB /dev/shm exited $rc"; cat "$DIR/llmcd-256m.log"; FAILED=1
else
  echo "ok: llmcd on a 256 MB /dev/shm starts"
fi
exit $FAILED
