#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for SECONDS seconds (default 60), one after the
# other, and fails if any of them finds a crash, a hang or a leak.
#
#   scripts/fuzz.sh [SECONDS]            all targets
#   FUZZ_TARGETS="digest_xz tar" scripts/fuzz.sh 600
#   FUZZ_ISAL=0 scripts/fuzz.sh 60      (skip the extra ISA-L build and run of digest_gzip)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). Only stable Rust is installed:
# RUSTC_BOOTSTRAP=1 lets it use the nightly flags it needs (sanitizer, coverage).
#
# Seeds are made at run time (nothing binary is committed): small layers made by tar and
# compressed by the system's gzip, bzip2, xz and zstd in several shapes (members, blocks,
# streams, checks, skippable frames), plus the peers' test files in tests/data/peers.
# The corpus grows in fuzz/corpus/TARGET, crashes land in fuzz/artifacts/TARGET (both are
# ignored by git). Every crash found must become a regression test in tests/.
set -euo pipefail

secs=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export RUSTC_BOOTSTRAP=1
targets=${FUZZ_TARGETS:-"digest_gzip digest_bzip2 digest_xz digest_zstd tar ffi_stream image_archive"}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz --locked" >&2
    exit 2
fi

seeds=fuzz/seeds
rm -rf "$seeds"
for t in $targets; do mkdir -p "$seeds/$t" "fuzz/corpus/$t"; done
mkdir -p "$seeds/digest_gzip" "$seeds/digest_bzip2" "$seeds/digest_xz" "$seeds/digest_zstd" "$seeds/tar"

# Small layers: a tar of a few source files, a tar with long names and a PAX header, an
# empty archive.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -c --sort=name --mtime=@0 --owner=0 --group=0 -f "$work/src.tar" Cargo.toml src/detect.rs src/options.rs
mkdir -p "$work/t/$(printf 'd%.0s' {1..120})"
printf 'hello\n' >"$work/t/$(printf 'd%.0s' {1..120})/file-with-a-long-name.txt"
ln -s target "$work/t/link"
# Link targets over 100 bytes: GNU writes them in a 'K' long-link header, PAX in a linkpath
# record (a symbolic link, and a hard link to the long-named file).
ln -s "$(printf 't%.0s' {1..150})" "$work/t/long-symlink"
ln "$work/t/$(printf 'd%.0s' {1..120})/file-with-a-long-name.txt" "$work/t/hardlink"
tar -c --format=pax --mtime=@0 -C "$work/t" -f "$work/pax.tar" .
tar -c --format=gnu --mtime=@0 -C "$work/t" -f "$work/gnu.tar" .
tar -c --format=gnu -f "$work/empty.tar" -T /dev/null
# Sparse files in every encoding Go reads: old GNU (with extension blocks: more than four
# holes), PAX 0.0, 0.1 and 1.0; and PAX records of several kinds.
mkdir -p "$work/s"
for i in 1 2 3 4 5 6; do printf 'data%s' "$i" | dd of="$work/s/holes" bs=1 seek=$((i * 8192)) conv=notrunc status=none; done
tar -c --format=gnu --sparse --mtime=@0 -C "$work/s" -f "$work/sparse-gnu.tar" holes
for v in 0.0 0.1 1.0; do
    tar -c --format=pax --sparse --sparse-version=$v --mtime=@0 -C "$work/s" -f "$work/sparse-pax$v.tar" holes
done
tar -c --format=pax --pax-option='comment=fuzz,mtime:=1700000000.123456789' --mtime=@0 \
    --owner=123456789 --group=0 -C "$work/t" -f "$work/pax-records.tar" .
layers="src pax gnu empty sparse-gnu sparse-pax0.0 sparse-pax0.1 sparse-pax1.0 pax-records"

# A seed of the digest targets: two control bytes (0: whole, one thread) then the blob.
seed() { # target name < blob
    { printf '\0\0'; cat; } >"$seeds/$1/$2"
}
for l in $layers; do
    f="$work/$l.tar"
    # The tar target's first byte: 1 = fix every block's checksum, 0 = take the bytes as
    # they are (see fuzz/src/lib.rs).
    { printf '\1'; cat "$f"; } >"$seeds/tar/$l"
    { printf '\0'; cat "$f"; } >"$seeds/tar/$l-raw"
    gzip -c -n "$f" | seed digest_gzip "$l"
    { gzip -c -n "$f"; gzip -c -n </dev/null; gzip -c "$f"; } | seed digest_gzip "$l-members"
    bzip2 -c "$f" | seed digest_bzip2 "$l"
    { bzip2 -c "$f"; bzip2 -c -1 "$f"; } | seed digest_bzip2 "$l-streams"
    xz -c -T1 "$f" | seed digest_xz "$l"
    xz -c -T1 --check=none "$f" | seed digest_xz "$l-nocheck"
    xz -c -T1 --check=sha256 --block-size=2000 "$f" | seed digest_xz "$l-blocks"
    { xz -c -T1 --check=crc32 "$f"; printf '\0\0\0\0'; xz -c -T1 -0 "$f"; } | seed digest_xz "$l-streams"
    zstd -c -q "$f" | seed digest_zstd "$l"
    zstd -c -q --no-check -19 "$f" | seed digest_zstd "$l-nocheck"
    { zstd -c -q "$f"; printf 'P*M\030\004\0\0\0toc!'; zstd -c -q --no-check "$f"; } | seed digest_zstd "$l-frames"
done

# The peers' test files, by magic.
peers=tests/data/peers
if [ -d "$peers" ]; then
    find "$peers" -type f -not -path '*/licenses/*' -not -name '*.md' | while read -r f; do
        name=peer-$(basename "$f")
        case $(head -c 6 "$f" | od -An -tx1 | tr -d ' \n') in
            1f8b08*) seed digest_gzip "$name" <"$f" ;;
            425a68*) seed digest_bzip2 "$name" <"$f" ;;
            fd377a585a00) seed digest_xz "$name" <"$f" ;;
            28b52ffd*) seed digest_zstd "$name" <"$f" ;;
            *) { printf '\0'; cat "$f"; } >"$seeds/tar/$name" ;;
        esac
    done
fi
for t in $targets; do
    case $t in
        image_archive)
            # Tiny image archives: an oci-archive and a docker save tar of one layer, written
            # here with sha256sum (the fuzzer mutates their JSON, names and members).
            img="$work/img"
            mkdir -p "$img/oci/blobs/sha256" "$img/docker"
            blob() { # file -> digest hex, stored in the layout
                local h; h=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$img/oci/blobs/sha256/$h"; echo "$h"
            }
            printf 'x\n' >"$img/x"
            tar -c --format=gnu --mtime=@0 -C "$img" -f "$img/layer.tar" x
            gzip -c -n "$img/layer.tar" >"$img/layer.tar.gz"
            diff=$(sha256sum "$img/layer.tar" | cut -d' ' -f1)
            printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
                "$diff" >"$img/config.json"
            cfg=$(blob "$img/config.json"); lay=$(blob "$img/layer.tar.gz")
            printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
                "$cfg" "$(stat -c %s "$img/config.json")" "$lay" "$(stat -c %s "$img/layer.tar.gz")" >"$img/manifest"
            man=$(blob "$img/manifest")
            printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"platform":{"os":"linux","architecture":"amd64"}}]}' \
                "$man" "$(stat -c %s "$img/manifest")" >"$img/oci/index.json"
            printf '{"imageLayoutVersion":"1.0.0"}' >"$img/oci/oci-layout"
            tar -c --format=gnu --mtime=@0 -C "$img/oci" -f "$seeds/image_archive/oci" .
            cp "$img/config.json" "$img/docker/$cfg.json"
            mkdir -p "$img/docker/l"; cp "$img/layer.tar" "$img/docker/l/layer.tar"
            printf '[{"Config":"%s.json","RepoTags":["x:1"],"Layers":["l/layer.tar"]}]' "$cfg" >"$img/docker/manifest.json"
            tar -c --format=gnu --mtime=@0 -C "$img/docker" -f "$seeds/image_archive/docker" .
            ;;
        ffi_stream)
            # threads, max size, then write records [op, len_lo, len_hi] + data.
            for l in $layers; do
                f="$work/$l.tar"
                n=$(stat -c %s "$f")
                { printf '\0\0\0'; printf "\\x$(printf %02x $((n & 255)))\\x$(printf %02x $((n >> 8 & 255)))"; cat "$f"; } \
                    >"$seeds/ffi_stream/$l"
                { printf '\2\0\0'; printf "\\x$(printf %02x $((n & 255)))\\x$(printf %02x $((n >> 8 & 255)))"; gzip -c "$f" ; printf '\7\361\0'; } \
                    >"$seeds/ffi_stream/$l-gzip-finish"
            done
            ;;
    esac
done

# ISA-L (the default gzip inflate) cannot be built under ASan (see fuzz/Cargo.toml): the
# targets run with ASan on zlib-rs, and digest_gzip once more on ISA-L without a sanitizer.
runs=""
for t in $targets; do
    runs="$runs $t"
    if [ "$t" = digest_gzip ] && [ "${FUZZ_ISAL:-1}" = 1 ]; then runs="$runs digest_gzip+isal"; fi
done
for r in $runs; do
    case $r in
        *+isal) cargo fuzz build -O --sanitizer none --features isal --target-dir fuzz/target-isal \
            "${r%+isal}" 2>&1 | tail -n 1 ;;
        *) cargo fuzz build -O "$r" 2>&1 | tail -n 1 ;;
    esac
done

status=0
for r in $runs; do
    t=${r%+isal}
    flags=(-O)
    # A target dir of its own: other flags would rebuild everything in fuzz/target.
    if [ "$r" != "$t" ]; then flags+=(--sanitizer none --features isal --target-dir fuzz/target-isal); fi
    log=fuzz/last-$r.log
    echo "== $r: ${secs}s, $(ls "$seeds/$t" | wc -l) seeds, $(ls "fuzz/corpus/$t" | wc -l) in corpus"
    # -rss_limit_mb: a run needing more than 2 GiB is a finding (a bomb got through).
    if ! cargo fuzz run "${flags[@]}" "$t" "fuzz/corpus/$t" "$seeds/$t" -- \
        -max_total_time="$secs" -max_len=65536 -timeout=30 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1; then
        echo "!! $t found something: see $log and fuzz/artifacts/$t/"
        grep -E 'ERROR|panicked|SUMMARY|Test unit written' "$log" | head -n 20 || true
        status=1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)
    echo "   $execs executions, $cov, corpus $(ls "fuzz/corpus/$t" | wc -l)"
done
exit $status
