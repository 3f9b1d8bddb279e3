#!/usr/bin/env bash
# make bench, whole images (issue 12): `diffid image` on a 6-layer image of mixed formats,
# beside go-containerregistry's validate.Image (what `crane validate` runs) and beside diffid
# digesting the same layer blobs one after another.
#
#   scripts/image-bench.sh [-n RUNS] [-s MIB] [--regen]
#
#   -n RUNS   rounds; the best (least) wall time of each command counts (default 3, or
#             $BENCH_RUNS)
#   -s MIB    the six layers' tar size in all, MiB (default 300, or $BENCH_IMAGE_MIB)
#   --regen   build the layers and images again
#
# 1. Builds diffid and bench/image-validate (validate.Image, go-containerregistry pinned in
#    its go.mod).
# 2. bench/image.py build: six layer tars cut from one deterministic choice of installed
#    files; the "mixed" image (gzip, zstd, xz, bzip2, plain tar, gzip) and the "gzip" image
#    (all six gzip, the only kind validate.Image reads), each as an OCI image layout and as
#    a `docker save` archive, in target/bench/image-*. Cached until --regen or another -s.
# 3. bench/image.py run: times the three on the four images, checks what each reports
#    (diffid's DiffIDs against the tars' SHA-256 by Python's hashlib), and writes
#    target/bench/image.md and image.json.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
out=$top/target/bench
runs=${BENCH_RUNS:-3}
mib=${BENCH_IMAGE_MIB:-300}
regen=0
while [ $# -gt 0 ]; do
  case $1 in
    -n) runs=$2; shift 2 ;;
    -s) mib=$2; shift 2 ;;
    --regen) regen=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "image-bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
say() { printf '\033[1mimage-bench:\033[0m %s\n' "$*" >&2; }
for t in pigz zstd xz bzip2 tar python3 go; do
  command -v $t >/dev/null || { echo "image-bench.sh: $t is required (scripts/setup.sh)" >&2; exit 1; }
done
mkdir -p "$out"
# What a failed or interrupted run leaves half-written (the finished layers and images stay,
# cached for the next run).
cleanup() { rm -f "$out"/image.list "$out"/image-layer*.list "$out"/image-*.tmp; }
trap cleanup EXIT

say "building diffid and bench/image-validate"
cargo build --release --locked --features cli --bin diffid >&2
(cd bench/image-validate && GOTOOLCHAIN=local GOFLAGS=-mod=mod go build -o "$out/image-validate" .) >&2

[ $regen = 0 ] || rm -f "$out"/image-layer* "$out/image.mib"
python3 bench/image.py build "$out" "$mib"
BENCH_RUNS=$runs python3 bench/image.py run "$out" "$top/target/release/diffid" "$out/image-validate"
say "wrote ${out#"$top"/}/image.md and image.json"
