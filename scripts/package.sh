#!/usr/bin/env bash
# Builds the Debian package build/pkg/llmgw_<version>_<arch>.deb with dpkg-deb from a
# `cmake --install` into a staging root: binaries in /usr/bin, units in
# /lib/systemd/system, /etc/llmgw/llmgw.yaml and /etc/logrotate.d/llmgw as conffiles,
# the maintainer scripts of deploy/debian/ (llmgw system user; nothing started unasked).
# Library dependencies come from dpkg-shlibdeps, so the package installs with apt on the
# Debian release it was built on.
#   scripts/package.sh              builds first (scripts/build.sh), then packages
#   scripts/package.sh --no-build   packages what build/ holds (tests, CI after a build)
# BUILD_DIR overrides build/.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
build=1
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package.sh: unknown argument '$a'" >&2; exit 2 ;;
  esac
done
for tool in dpkg-deb dpkg-shlibdeps fakeroot; do
  command -v "$tool" >/dev/null || { echo "package.sh: $tool is missing (apt install dpkg-dev fakeroot)" >&2; exit 1; }
done
[ "$build" = 1 ] && scripts/build.sh
[ -x "$BUILD_DIR/bin/llmgw" ] || { echo "package.sh: $BUILD_DIR/bin/llmgw missing: build first" >&2; exit 1; }

version="$(sed -n 's/^project(llmgw VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)"
arch="$(dpkg --print-architecture)"
pkgdir="$BUILD_DIR/pkg"
root="$pkgdir/root"
rm -rf "$root"
mkdir -p "$root"
root="$(cd "$root" && pwd)"

# Stage: prefix /usr, then Debian's places for what is not under /usr.
DESTDIR="$root" cmake --install "$BUILD_DIR" --prefix /usr >/dev/null
mv "$root/usr/etc" "$root/etc"
mkdir -p "$root/lib"
mv "$root/usr/lib/systemd" "$root/lib/systemd"
rmdir "$root/usr/lib" 2>/dev/null || true
strip --strip-unneeded "$root"/usr/bin/*

# Library dependencies of the binaries, from the installed libraries' shlibs/symbols.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/debian"
printf 'Source: llmgw\n\nPackage: llmgw\nArchitecture: any\n' >"$tmp/debian/control"
bins=()
for b in "$root"/usr/bin/*; do bins+=("-e$b"); done
shlibs="$(cd "$tmp" && dpkg-shlibdeps -O "${bins[@]}" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')"
[ -n "$shlibs" ] || { echo "package.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

mkdir -p "$root/DEBIAN"
size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@SHLIBS@/$shlibs/" \
  deploy/debian/control.in >"$root/DEBIAN/control"
install -m 0644 deploy/debian/conffiles "$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "deploy/debian/$s" "$root/DEBIAN/$s"; done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | sort | xargs md5sum >DEBIAN/md5sums)

deb="$pkgdir/llmgw_${version}_${arch}.deb"
fakeroot dpkg-deb --build -Zxz --root-owner-group "$root" "$deb" >/dev/null
echo "$deb"
