#!/usr/bin/env bash
# Installs every Debian 12 package llmgw needs to build, test and benchmark. Idempotent;
# works as root or through sudo. Nothing is vendored and nothing is downloaded at build time.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  SUDO="sudo"
fi

PACKAGES=(
  # build
  cmake ninja-build g++ ccache pkg-config
  # libraries
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  liburing-dev node-llhttp rapidjson-dev libyaml-cpp-dev prometheus-cpp-dev
  # upstream TLS (data plane), probes over http(s) and etcd (libcurl), test certificates
  libssl-dev libcurl4-openssl-dev openssl ca-certificates
  googletest libgmock-dev libsystemd-dev python3-seccomp
  # packaging and operations kit: .deb, unit checks, Prometheus rule tests
  dpkg-dev fakeroot shellcheck systemd prometheus
  # tests and benchmarks
  curl wrk nginx-light haproxy gnuplot-nox python3 python3-yaml bc procps
  # chaos suite (scripts/chaos.sh): packet loss and the NFQUEUE delay where there is no netem
  iptables
  # the HA fleet's tests: a real etcd on loopback (fleet.etcd), etcdctl to look inside
  etcd-server etcd-client
  # observability tests: the dashboard in a real headless browser, an OTLP/HTTP receiver
  # decoding protobuf; libcurl posts llmcd's OTLP exports
  chromium python3-protobuf libcurl4-openssl-dev
  # fuzzing and sanitizers
  clang libclang-rt-14-dev
)

# The official OpenAI Node SDK test (tests/dataplane/sdk) needs node and npm; Debian's
# packages unless a node is installed already (a NodeSource node brings its own npm).
command -v node >/dev/null || PACKAGES+=(nodejs)
command -v npm >/dev/null || PACKAGES+=(npm)

# The SDK itself, at the version package-lock.json pins, from the npm registry.
install_sdk() {
  local sdk
  sdk="$(cd "$(dirname "$0")/.." && pwd)/tests/dataplane/sdk"
  if [ ! -f "$sdk/node_modules/openai/package.json" ]; then
    echo "install-deps: npm ci in $sdk"
    (cd "$sdk" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  install_sdk
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -q
# Several of these packages ship daemons (prometheus on :9090, nginx, haproxy). The tests
# start their own on free loopback ports; a daemon started by the install would take ports
# llmgw's defaults use. policy-rc.d tells invoke-rc.d not to start anything meanwhile.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# install-deps.sh: no service starts during this install\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  trap '$SUDO rm -f "$policy"' EXIT
fi
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
install_sdk
