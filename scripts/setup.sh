#!/usr/bin/env bash
# Installs what the build and the tests need and a fresh machine may lack: Debian packages
# (decoders the tests use as references, valgrind, pkg-config) and ISA-L's build tools. Quick no-op when all is there.
# Rust crates and Go modules are fetched by cargo and go themselves; cbindgen by the Makefile.
set -euo pipefail

# command that must exist -> Debian package that provides it
declare -A want=(
  [xz]=xz-utils [zstd]=zstd [bzip2]=bzip2 [gzip]=gzip
  # containers/storage runs pigz for gzip when it is on PATH, as Podman does: the Go
  # drop-in benchmark (go/dropin) measures against that.
  [pigz]=pigz [openssl]=openssl [tar]=tar
  [valgrind]=valgrind [pkg-config]=pkg-config [g++]=g++ [gcc]=gcc [make]=make
  # The static build of ISA-L (gzip inflate) runs autotools and nasm.
  [nasm]=nasm [autoconf]=autoconf [automake]=automake [libtoolize]=libtool
)
# `make lint` runs clippy, a rustup component (the toolchain may come without it).
if ! cargo clippy --version >/dev/null 2>&1 && command -v rustup >/dev/null 2>&1; then
  rustup component add clippy
fi

missing=()
for cmd in "${!want[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
done
# Libraries checked by package name: liblzma-dev for make test-packaging's program that
# links the system's liblzma beside libdiffid.a; any named in DIFFID_EXTRA_PACKAGES.
for pkg in liblzma-dev ${DIFFID_EXTRA_PACKAGES:-}; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
((${#missing[@]})) || exit 0

echo "setup: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null || true
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
