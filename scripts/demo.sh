#!/usr/bin/env bash
# make demo: pack this repository's own sources as a layer, compress it in every format,
# and print each blob's digests from diffid beside what `DECODER -dc | openssl dgst -sha256`
# says the DiffID is.
set -euo pipefail
diffid=${1:-target/release/diffid}
top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/target/demo
rm -rf "$out" && mkdir -p "$out"

# A deterministic tar of the tracked files (the same bytes on every machine for a commit).
(cd "$top" && git ls-files -z 2>/dev/null || find . -path ./target -prune -o -type f -print0) |
  tar -C "$top" --null -T - --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
      --format=pax --pax-option=delete=atime,delete=ctime -cf "$out/layer.tar"

gzip   -9 -n -c "$out/layer.tar" > "$out/layer.tar.gz"
bzip2  -9    -c "$out/layer.tar" > "$out/layer.tar.bz2"
xz     -6 -T2 --block-size=256KiB -c "$out/layer.tar" > "$out/layer.tar.xz"
zstd   -q -3 -c "$out/layer.tar" > "$out/layer.tar.zst"

status=0
for f in layer.tar layer.tar.gz layer.tar.bz2 layer.tar.xz layer.tar.zst; do
  path=$out/$f
  case $f in
    *.gz) dec="gzip -dc" ;; *.bz2) dec="bzip2 -dc" ;; *.xz) dec="xz -dc" ;;
    *.zst) dec="zstd -dcq" ;; *) dec="cat" ;;
  esac
  "$diffid" -q "$path" | sed "s|$out/||"
  ours=$("$diffid" -q --json "$path" | sed -n 's/.*"diff_id":"\([^"]*\)".*/\1/p')
  ref=sha256:$($dec "$path" | openssl dgst -sha256 -r | cut -d' ' -f1)
  if [ "$ours" = "$ref" ]; then verdict="same"; else verdict="DIFFERENT"; status=1; fi
  printf '  reference  %s  (%s | openssl dgst -sha256): %s\n\n' "$ref" "$dec" "$verdict"
done
exit $status
