#!/usr/bin/env bash
# Real tarballs nobody here made — Debian packages' data.tar.xz, npm .tgz, PyPI sdists, and
# the same payloads recompressed with zstd and bzip2 — must give the DiffID that
# `DECODER -dc | openssl dgst -sha256` gives, and the answer of containers/image's own code.
# Usage: scripts/real-tarballs.sh DIFFID ORACLE   (downloads into target/real, cached)
set -euo pipefail
diffid=$(realpath "$1") oracle=$(realpath "$2")
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$top/target/real
mkdir -p "$dir/dl" && cd "$dir"

fetch() {  # best effort per registry: each is reachable in CI, but a failure here is reported
  (cd dl && apt-get download -qq hostname sed less >/dev/null 2>&1) || echo "real: apt-get download failed" >&2
  (cd dl && npm pack --silent is-number@7.0.0 left-pad@1.3.0 >/dev/null 2>&1) || echo "real: npm pack failed" >&2
  (cd dl && python3 -m pip download -q --no-deps --no-binary :all: six==1.16.0 idna==3.4 -d . >/dev/null 2>&1) \
    || echo "real: pip download failed" >&2
}
[ -n "$(ls dl 2>/dev/null)" ] || fetch

rm -rf blobs && mkdir blobs
for deb in dl/*.deb; do
  [ -e "$deb" ] || continue
  name=$(basename "$deb" .deb)
  member=$(ar t "$deb" | grep '^data\.tar')
  ar p "$deb" "$member" > "blobs/$name.$member"
done
cp dl/*.tgz dl/*.tar.gz blobs/ 2>/dev/null || true
count=$(ls blobs | wc -l)
[ "$count" -ge 3 ] || { echo "real: only $count tarballs could be fetched" >&2; exit 1; }
# The same payloads recompressed.
for f in blobs/*; do
  case $f in *.xz) d="xz -dc" ;; *.zst) d="zstd -dcq" ;; *) d="gzip -dc" ;; esac
  $d "$f" | zstd -q -c > "$f.re.zst"
  $d "$f" | bzip2 -c > "$f.re.bz2"
done

fail=0 n=0
for f in blobs/*; do
  case $f in *.xz) d="xz -dc" ;; *.zst) d="zstd -dcq" ;; *.bz2) d="bzip2 -dc" ;; *) d="gzip -dc" ;; esac
  ref=sha256:$($d "$f" | openssl dgst -sha256 -r | cut -d' ' -f1)
  ours=$("$diffid" -q --json "$f" | sed -n 's/.*"diff_id":"\([^"]*\)".*/\1/p')
  go=$("$oracle" "$f" | sed -n 's/.*"diff_id":"\([^"]*\)".*/\1/p')
  n=$((n + 1))
  if [ "$ours" = "$ref" ] && [ "$ours" = "$go" ]; then
    printf 'same  %s\n' "${f#blobs/}"
  else
    printf 'DIFF  %s: diffid=%s reference=%s containers/image=%s\n' "${f#blobs/}" "$ours" "$ref" "$go"
    fail=1
  fi
done
echo "real tarballs: $n checked, $([ $fail = 0 ] && echo all agree || echo SOME DIFFER)"
exit $fail
