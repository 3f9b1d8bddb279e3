#!/usr/bin/env bash
# make bench, second half: diffid against the peers on a realistic layer, in one run.
#
#   scripts/compare.sh [-n RUNS] [-s MIB] [-f FORMATS] [--no-mem] [--regen]
#
#   -n RUNS      rounds; the best (least) wall time of each command counts (default 3, or
#                $BENCH_RUNS)
#   -s MIB       layer size in MiB (default 512, or $BENCH_LAYER_MIB)
#   -f FORMATS   only these rows, comma-separated: gz,zst,zst-frames,xz,xz-1,bz2,tar
#   --no-mem     skip the peak-RSS runs on a 4 GiB stream (digest, and -d into a slow reader)
#   BENCH_ROWS=decompress   only the `diffid -d FILE > /dev/null` rows, their decoders and diffid
#   --regen      build the layer and its compressed forms again
#
# 1. Installs the peer tools that are missing (igzip from Debian's isal, pigz, GNU time) with
#    apt-get when it can; a tool that stays missing is left out of the table.
# 2. Builds diffid, the naive sequential Rust baseline (bench/baseline/naive.rs) and the Go
#    path (bench/go-path: containers/image's pkg/compression + go-digest, serial).
# 3. Makes target/bench/layer.tar once: a deterministic tar (sorted names, mtime 0, owner 0)
#    of files installed under /usr/share, /usr/lib and /usr/bin, picked by a hash of their
#    path, about 512 MiB: text, binaries and already-compressed files. Compresses it with
#    pigz -6, zstd -3 (one frame), zstd -3 per 8 MiB (several frames), xz -6 -T2 (blocks),
#    xz -6 -T1 (one block) and bzip2 -9. All cached until --regen.
# 4. bench/compare.py times every tool on every file, best of RUNS, checks that diffid, Go and
#    the baseline agree on the digests, and writes target/bench/results.md, results.json and
#    throughput.svg.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
out=$top/target/bench
runs=${BENCH_RUNS:-3}
mib=${BENCH_LAYER_MIB:-512}
formats=${BENCH_FORMATS:-}
no_mem=${BENCH_SKIP_MEM:-0}
regen=0
while [ $# -gt 0 ]; do
  case $1 in
    -n) runs=$2; shift 2 ;;
    -s) mib=$2; shift 2 ;;
    -f) formats=$2; shift 2 ;;
    --no-mem) no_mem=1; shift ;;
    --regen) regen=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
say() { printf '\033[1mcompare:\033[0m %s\n' "$*" >&2; }
mkdir -p "$out"

# --- 1. peer tools ------------------------------------------------------------------------
need=()
command -v igzip >/dev/null || need+=(isal)
command -v pigz >/dev/null || need+=(pigz)
[ -x /usr/bin/time ] || need+=(time)
for t in zstd xz bzip2 openssl python3 go; do
  command -v $t >/dev/null || { echo "compare.sh: $t is required" >&2; exit 1; }
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  { $sudo apt-get install -y --no-install-recommends "${need[@]}" ||
    { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${need[@]}"; }
  } >&2 || say "could not install ${need[*]}: those peers are left out"
fi
command -v pigz >/dev/null || { echo "compare.sh: pigz (or the layer.tar.gz) is needed" >&2; exit 1; }

# --- 2. the programs ------------------------------------------------------------------------
say "building diffid, the naive baseline and the Go path"
cargo build --release --locked --features cli --bin diffid --example naive >&2
diffid=$top/target/release/diffid
naive=$top/target/release/examples/naive
(cd bench/go-path && GOTOOLCHAIN=local GOFLAGS=-mod=mod go build -o "$out/gopath" .) >&2
gopath=$out/gopath

# --- 3. the layer ------------------------------------------------------------------------
layer=$out/layer.tar
if [ $regen = 1 ] || [ ! -s "$layer" ] || [ "$(cat "$out/layer.mib" 2>/dev/null)" != "$mib" ]; then
  say "choosing about $mib MiB of installed files"
  rm -f "$out"/layer*
  python3 bench/compare.py select "$out/layer.list" "$mib"
  say "writing $layer ($(tr -cd '\0' < "$out/layer.list" | wc -c) entries)"
  # Exit status 1 means a file changed while it was read (a package being installed): the
  # tar is still complete and the same bytes are used for every tool.
  tar -C / --null --no-recursion -T "$out/layer.list" --sort=name --mtime=@0 --owner=0 \
      --group=0 --numeric-owner --format=pax --pax-option=delete=atime,delete=ctime \
      -cf "$layer.tmp" || [ $? = 1 ]
  mv "$layer.tmp" "$layer"
  echo "$mib" > "$out/layer.mib"
fi
compress() { # FILE COMMAND...: make FILE from the layer unless it is there and newer
  local file=$1; shift
  if [ ! -s "$file" ] || [ "$file" -ot "$layer" ]; then
    say "compressing: $* > ${file#$top/}"
    "$@" < "$layer" > "$file.tmp" && mv "$file.tmp" "$file"
  fi
}
compress "$out/layer.tar.gz" pigz -6 -n -c
compress "$out/layer.tar.zst" zstd -3 -T2 -q -c
# Several frames, as zstd:chunked and pzstd write them (pzstd itself is no good here: its
# leading skippable frame makes containers/image see an uncompressed blob).
compress "$out/layer-frames.tar.zst" split -b 8M --filter='zstd -3 -q -c'

compress "$out/layer.tar.xz" xz -6 -T2 -c
# The two slow single-threaded ones side by side on two cores.
compress "$out/layer-1block.tar.xz" xz -6 -T1 -c &
pid=$!
compress "$out/layer.tar.bz2" bzip2 -9 -c
wait $pid
if [ ! -s "$out/layer.info" ] || [ "$out/layer.info" -ot "$layer" ]; then
  entries=$(tr -cd '\0' < "$out/layer.list" | wc -c)
  sum=$(openssl dgst -sha256 -r "$layer" | cut -d' ' -f1)
  printf '{"layer_entries": %s, "layer_diffid": "sha256:%s"}\n' "$entries" "$sum" > "$out/layer.info"
fi
ls -l "$out"/layer* >&2

# --- 4. the timing ---------------------------------------------------------------------
BENCH_RUNS=$runs BENCH_FORMATS=$formats BENCH_SKIP_MEM=$no_mem \
  python3 bench/compare.py run "$out" "$diffid" "$gopath" "$naive"
say "wrote ${out#$top/}/results.md, results.json and throughput.svg"
