#!/usr/bin/env bash
# The Debian package and the systemd units (issue 15): builds the .deb from build/ with
# scripts/package.sh --no-build, then checks its control fields, its contents (every
# binary, the units, the conffiles), that the packaged binaries run, that the packaged
# config passes `llmctl config check`, that `systemd-analyze verify` accepts the units
# without a single warning and rates their exposure "OK", and what the maintainer scripts
# do, run against stub commands that record every call: the system user is created and
# nothing is started or enabled.
# Usage: tests/deploy/package_test.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR="${1:-build}"
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp="$(mktemp -d /tmp/llmgw-pkgtest-XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

deb="$(BUILD_DIR="$BUILD_DIR" scripts/package.sh --no-build)"
[ -f "$deb" ] || fail "package.sh printed '$deb', not a file"
version="$(sed -n 's/^project(llmgw VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)"
[ "$(basename "$deb")" = "llmgw_${version}_$(dpkg --print-architecture).deb" ] || fail "name $(basename "$deb")"

# Control fields.
[ "$(dpkg-deb -f "$deb" Package)" = llmgw ] || fail "Package field"
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "Version field"
dpkg-deb -f "$deb" Depends | grep -q 'adduser' || fail "Depends lacks adduser"
for lib in libgrpc++ liburing libyaml-cpp libsystemd0; do
  dpkg-deb -f "$deb" Depends | grep -q "$lib" || fail "Depends lacks $lib: $(dpkg-deb -f "$deb" Depends)"
done

# Contents.
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$tmp/contents"
for p in /usr/bin/llmgw /usr/bin/llmcd /usr/bin/llmctl /usr/bin/llmgw-mock /usr/bin/llmgw-bench \
  /lib/systemd/system/llmgw@.service /lib/systemd/system/llmcd@.service \
  /etc/llmgw/llmgw.yaml /etc/logrotate.d/llmgw /usr/share/bash-completion/completions/llmctl \
  /usr/share/doc/llmgw/OPERATIONS.md; do
  grep -qx "$p" "$tmp/contents" || fail "$p missing from the package"
done
dpkg-deb -c "$deb" | awk '$2 != "root/root" {bad=1} END {exit bad}' || fail "files not owned by root"
mkdir "$tmp/ctl"
dpkg-deb -e "$deb" "$tmp/ctl"
grep -qx /etc/llmgw/llmgw.yaml "$tmp/ctl/conffiles" || fail "llmgw.yaml is not a conffile"
grep -qx /etc/logrotate.d/llmgw "$tmp/ctl/conffiles" || fail "logrotate rule is not a conffile"
for s in postinst prerm postrm; do
  [ -x "$tmp/ctl/$s" ] || fail "$s missing or not executable"
  sh -n "$tmp/ctl/$s" || fail "$s: syntax"
  if command -v shellcheck >/dev/null; then shellcheck -s sh "$tmp/ctl/$s" || fail "$s: shellcheck"; fi
done

# The packaged binaries and config.
dpkg-deb -x "$deb" "$tmp/root"
for b in llmgw llmcd llmctl; do
  out="$("$tmp/root/usr/bin/$b" --version)"
  [ "$out" = "$b $version" ] || fail "$b --version printed '$out'"
done
"$tmp/root/usr/bin/llmctl" config check "$tmp/root/etc/llmgw/llmgw.yaml" >/dev/null || fail "packaged config invalid"

# Units: verify (with ExecStart pointing at the extracted binaries) must say nothing.
mkdir "$tmp/units"
for u in llmgw llmcd; do
  sed "s|/usr/bin/$u|$tmp/root/usr/bin/$u|" "$tmp/root/lib/systemd/system/$u@.service" >"$tmp/units/$u@.service"
  grep -q '^Type=notify$' "$tmp/units/$u@.service" || fail "$u@: not Type=notify"
  grep -q "^ExecStart=.*--config /etc/llmgw/%i.yaml$" "$tmp/units/$u@.service" || fail "$u@: config path"
  grep -q '^User=llmgw$' "$tmp/units/$u@.service" || fail "$u@: user"
  for k in ExecReload LimitNOFILE ProtectSystem=strict NoNewPrivileges=yes SystemCallFilter; do
    grep -q "^$k" "$tmp/units/$u@.service" || fail "$u@: no $k"
  done
done
grep -q '^SystemCallFilter=.*io_uring_setup io_uring_enter io_uring_register' "$tmp/units/llmgw@.service" ||
  fail "llmgw@: SystemCallFilter drops io_uring"
out="$(cd "$tmp/units" && systemd-analyze verify --man=no ./llmgw@test.service ./llmcd@test.service 2>&1)" ||
  fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify warned: $out"
for u in llmgw llmcd; do
  level="$(cd "$tmp/units" && systemd-analyze security --offline=true "./$u@test.service" 2>&1 | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) \([A-Z]*\).*/\2/p')"
  [ "$level" = OK ] || fail "$u@: exposure level '$level', expected OK"
done

# Maintainer scripts against stubs: each stub appends its argv to calls.log.
mkdir "$tmp/stubs"
for c in getent addgroup adduser chown chmod install systemctl deb-systemd-invoke; do
  printf '#!/bin/sh\necho "%s $*" >>"%s/calls.log"\n%s\n' "$c" "$tmp" \
    "$([ "$c" = getent ] && echo 'exit 2' || echo 'exit 0')" >"$tmp/stubs/$c"
  chmod +x "$tmp/stubs/$c"
done
# The scripts talk to systemd only when it runs (/run/systemd/system): pretend it does.
mkdir "$tmp/run-systemd"
for s in postinst prerm postrm; do sed -i "s|/run/systemd/system|$tmp/run-systemd|" "$tmp/ctl/$s"; done
run() { PATH="$tmp/stubs:/usr/bin:/bin" sh "$tmp/ctl/$1" "${@:2}"; }
: >"$tmp/calls.log"
run postinst configure >/dev/null
grep -q '^addgroup --system.* llmgw$' "$tmp/calls.log" || fail "postinst: no system group: $(cat "$tmp/calls.log")"
grep -q '^adduser --system.*--ingroup llmgw.* llmgw$' "$tmp/calls.log" || fail "postinst: no system user"
grep -q '^chown root:llmgw /etc/llmgw /etc/llmgw/llmgw.yaml$' "$tmp/calls.log" || fail "postinst: config owner"
grep -q '^systemctl daemon-reload' "$tmp/calls.log" || fail "postinst: no daemon-reload: $(cat "$tmp/calls.log")"
if grep -Eq '^(systemctl|deb-systemd-invoke) .*(start|enable|restart)' "$tmp/calls.log"; then
  fail "postinst starts or enables something on install: $(cat "$tmp/calls.log")"
fi
# An upgrade (configure OLD-VERSION) never touches the config's owner and never starts,
# enables or restarts a data plane.
: >"$tmp/calls.log"
run postinst configure 0.0.9 >/dev/null
if grep -q '^chown' "$tmp/calls.log"; then fail "postinst: chown on upgrade"; fi
grep -q "^systemctl try-restart llmcd@\\*.service" "$tmp/calls.log" || fail "postinst: control planes not restarted on upgrade"
if grep -Eq '^systemctl (start|enable)|llmgw@\*.service.*restart|restart.*llmgw@' "$tmp/calls.log"; then
  fail "postinst: upgrade touched data planes: $(cat "$tmp/calls.log")"
fi
: >"$tmp/calls.log"
run prerm upgrade
[ ! -s "$tmp/calls.log" ] || fail "prerm upgrade stopped something: $(cat "$tmp/calls.log")"
: >"$tmp/calls.log"
run prerm remove
grep -q "^systemctl stop llmgw@\\*.service" "$tmp/calls.log" || fail "prerm remove: data planes not stopped"
echo "package_test: ok ($deb)"
