#!/usr/bin/env bash
# make bench, third part: the thread sweep and the cost model, on two corpora and three sizes.
#
#   scripts/sweep.sh [-n RUNS] [-t THREADS] [-f FORMATS] [--regen]
#
#   -n RUNS      rounds; the best (least) wall time of each command counts (default 3, or
#                $BENCH_RUNS)
#   -t THREADS   thread counts, comma-separated (default 1, 2, 4, ... up to the cores, or
#                $BENCH_THREADS); -j1 is always run
#   -f FORMATS   only these formats: gz,zst,zst-frames,xz,xz-1,bz2,tar (or $BENCH_FORMATS)
#   --regen      build the layers and their compressed forms again
#
# Layers (target/bench/sweep/CORPUS-MIB/, each cached until --regen):
#   installed   files installed under /usr/share, /usr/lib and /usr/bin, as compare.sh picks
#               them, at each size of $BENCH_SIZES (MiB, default 4,40,400)
#   small       files of at most 64 KiB under /usr/share and /usr/lib that are not already
#               compressed: many small, highly compressible files, $BENCH_SMALL_MIB (300)
#   $BENCH_LAYER_MIB, when set, is the one size of both (a quick check: BENCH_LAYER_MIB=8).
# Each is a deterministic tar (sorted names, mtime 0, owner 0) compressed as compare.sh does.
#
# Peers: a missing lbzip2 (and pzstd, in Debian's zstd) is installed with apt-get when it can;
# rapidgzip (PyPI) into target/bench/venv with pip when it can; a peer still missing is left
# out with a note in the table.
#
# bench/sweep.py then times `diffid -jN` for each N beside the decoder alone and the peer at
# N threads, checks that every run on a layer gives one DiffID, and writes
# target/bench/sweep.md, sweep.json, sweep.svg and model.md (the per-stage CPU cost per GB
# and the predicted wall time on 4, 16 and 64 cores).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
out=$top/target/bench
runs=${BENCH_RUNS:-3}
threads=${BENCH_THREADS:-}
formats=${BENCH_FORMATS:-gz,zst,zst-frames,xz,xz-1,bz2,tar}
sizes=${BENCH_SIZES:-4,40,400}
small=${BENCH_SMALL_MIB:-300}
if [ -n "${BENCH_LAYER_MIB:-}" ]; then sizes=$BENCH_LAYER_MIB; small=$BENCH_LAYER_MIB; fi
regen=0
while [ $# -gt 0 ]; do
  case $1 in
    -n) runs=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    -f) formats=$2; shift 2 ;;
    --regen) regen=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "sweep.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
say() { printf '\033[1msweep:\033[0m %s\n' "$*" >&2; }
wants() { [[ ",$formats," == *",$1,"* ]]; }
mkdir -p "$out/sweep"

# --- 1. peer tools ------------------------------------------------------------------------
install_peers() {
  local need=()
  command -v lbzip2 >/dev/null || need+=(lbzip2)
  command -v pzstd >/dev/null || need+=(zstd)
  command -v pigz >/dev/null || need+=(pigz)
  command -v igzip >/dev/null || need+=(isal)
  [ -x /usr/bin/time ] || need+=(time)
  if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    local sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    { $sudo apt-get install -y --no-install-recommends "${need[@]}" ||
      { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${need[@]}"; }
    } >&2 || say "could not install ${need[*]}: those peers are left out"
  fi
  if ! command -v rapidgzip >/dev/null && [ ! -x "$out/venv/bin/rapidgzip" ]; then
    say "installing rapidgzip (PyPI) into ${out#$top/}/venv"
    { python3 -m venv "$out/venv" && "$out/venv/bin/pip" install -q rapidgzip; } >&2 ||
      say "could not install rapidgzip: the gzip peer is left out"
  fi
  [ -x "$out/venv/bin/rapidgzip" ] && export PATH=$PATH:$out/venv/bin
  for t in pigz zstd xz bzip2 openssl python3; do
    command -v $t >/dev/null || { echo "sweep.sh: $t is required" >&2; exit 1; }
  done
}
install_peers

# --- 2. diffid ------------------------------------------------------------------------------
say "building diffid"
cargo build --release --locked --features cli --bin diffid >&2
diffid=$top/target/release/diffid

# --- 3. the layers --------------------------------------------------------------------------
make_layer() { # CORPUS MIB: target/bench/sweep/CORPUS-MIB with layer.tar and its forms
  local corpus=$1 mib=$2 dir=$out/sweep/$1-$2
  local layer=$dir/layer.tar
  if [ $regen = 1 ] || [ ! -s "$layer" ] || [ ! -s "$dir/layer.info" ]; then
    rm -rf "$dir"; mkdir -p "$dir"
    say "choosing about $mib MiB of $corpus files"
    if [ "$corpus" = small ]; then
      python3 bench/sweep.py select-small "$dir/layer.list" "$mib"
    else
      python3 bench/compare.py select "$dir/layer.list" "$mib"
    fi
    # Exit status 1: a file changed while it was read; the tar is complete all the same.
    tar -C / --null --no-recursion -T "$dir/layer.list" --sort=name --mtime=@0 --owner=0 \
        --group=0 --numeric-owner --format=pax --pax-option=delete=atime,delete=ctime \
        -cf "$layer.tmp" || [ $? = 1 ]
    mv "$layer.tmp" "$layer"
    local entries sum
    entries=$(tr -cd '\0' < "$dir/layer.list" | wc -c)
    sum=$(openssl dgst -sha256 -r "$layer" | cut -d' ' -f1)
    printf '{"corpus": "%s", "mib": %s, "layer_entries": %s, "layer_diffid": "sha256:%s"}\n' \
      "$corpus" "$mib" "$entries" "$sum" > "$dir/layer.info"
  fi
  sweep_compress "$dir"
  echo "$dir"
}
sweep_compress() { # DIR: the compressed forms of DIR/layer.tar that are asked for, as compare.sh
  local dir=$1 layer=$1/layer.tar
  one() { # KEY FILE COMMAND...
    local key=$1 file=$dir/$2; shift 2
    wants "$key" || return 0
    if [ ! -s "$file" ] || [ "$file" -ot "$layer" ]; then
      say "compressing: $* > ${file#$top/}"
      "$@" < "$layer" > "$file.tmp" && mv "$file.tmp" "$file"
    fi
  }
  one gz layer.tar.gz pigz -6 -n -c
  one zst layer.tar.zst zstd -3 -T2 -q -c
  one zst-frames layer-frames.tar.zst split -b 8M --filter='zstd -3 -q -c'
  one xz layer.tar.xz xz -6 -T2 -c
  one xz-1 layer-1block.tar.xz xz -6 -T1 -c
  one bz2 layer.tar.bz2 bzip2 -9 -c
}
dirs=()
for mib in ${sizes//,/ }; do dirs+=("$(make_layer installed "$mib")"); done
for mib in ${small//,/ }; do dirs+=("$(make_layer small "$mib")"); done

# --- 4. the timing and the model ----------------------------------------------------------
BENCH_RUNS=$runs BENCH_THREADS=$threads BENCH_FORMATS=$formats \
  python3 bench/sweep.py run "$out" "$diffid" "${dirs[@]}"
say "wrote ${out#$top/}/sweep.md, sweep.json, sweep.svg and model.md"
