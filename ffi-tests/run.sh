#!/bin/sh
# Runs the C ABI tests; `make -C ffi-tests` builds the programs first and calls this.
#
#   run.sh OUT      OUT: the directory holding the built test programs
#
# The inputs are made here, at run time, with the system's tar, gzip, bzip2, xz and zstd,
# and the expected digests come from `openssl dgst`, a reference independent of diffid.
# Prints PASS/FAIL per test and ends with "N passed, M failed"; exits 1 if any failed.
set -u
OUT=$1
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
RELEASE=$TOP/target/release
D=$OUT/data
LOGS=$OUT/logs
passed=0
failed=0

pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }

# check NAME CMD...: one test, its output shown only when it fails.
check() {
    name=$1
    shift
    if "$@" >"$LOGS/$name.log" 2>&1; then
        pass "$name"
    else
        fail "$name"
        sed 's/^/    /' "$LOGS/$name.log"
    fi
}

# program NAME CMD...: a test program that prints its own PASS/FAIL lines; each counts.
# A program that hangs is killed after PROGRAM_TIMEOUT seconds and fails (status 124).
PROGRAM_TIMEOUT=${PROGRAM_TIMEOUT:-900}
program() {
    name=$1
    shift
    timeout "$PROGRAM_TIMEOUT" "$@" >"$LOGS/$name.log" 2>&1
    status=$?
    p=$(grep -c '^PASS ' "$LOGS/$name.log")
    f=$(grep -c '^FAIL ' "$LOGS/$name.log")
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$status" -ne 0 ] || [ "$f" -ne 0 ]; then
        if [ "$f" -eq 0 ]; then
            failed=$((failed + 1))
            echo "FAIL $name (exit status $status)"
        fi
        sed 's/^/    /' "$LOGS/$name.log"
    else
        echo "PASS $name ($p tests)"
    fi
}

# What the tests need besides the compilers (Debian: apt-get install valgrind pkg-config
# openssl gzip bzip2 xz-utils zstd binutils).
for tool in tar gzip bzip2 xz zstd openssl valgrind pkg-config nm readelf; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool"; echo "0 passed, 1 failed"; exit 1; }
done

rm -rf "$D" "$LOGS"
mkdir -p "$D/tree/dir/sub" "$LOGS"

# --- Inputs -------------------------------------------------------------------------------
# A ~4 MiB layer (several 512 KiB chunks, so the worker threads run) of incompressible and
# compressible data, and a small one (digested inline on the caller's thread).
openssl enc -aes-128-ctr -nosalt -K 000102030405060708090a0b0c0d0e0f \
    -iv 00000000000000000000000000000000 -in /dev/zero 2>/dev/null |
    head -c 2097152 >"$D/tree/random.bin"
seq 1 300000 >"$D/tree/dir/numbers.txt"
echo hello >"$D/tree/dir/sub/hello.txt"
ln -s ../random.bin "$D/tree/dir/link"
TAR="tar --format=gnu --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner"
$TAR -C "$D/tree" -cf "$D/layer.tar" .
$TAR -C "$D/tree/dir/sub" -cf "$D/small.tar" .
: >"$D/empty"
for t in layer small; do
    gzip -n -c "$D/$t.tar" >"$D/$t.tar.gz"
    bzip2 -c "$D/$t.tar" >"$D/$t.tar.bz2"
    xz -T1 -c "$D/$t.tar" >"$D/$t.tar.xz"
    zstd -q -c "$D/$t.tar" >"$D/$t.tar.zst"
done

# Inputs that must fail, or pass only with an option.
size=$(wc -c <"$D/layer.tar.gz")
cp "$D/layer.tar.gz" "$D/corrupt.gz"          # CRC32 in the trailer flipped
printf '\377' | dd of="$D/corrupt.gz" bs=1 seek=$((size - 8)) conv=notrunc 2>/dev/null
size=$(wc -c <"$D/layer.tar.xz")
head -c $((size / 2)) "$D/layer.tar.xz" >"$D/truncated.xz"
{ cat "$D/small.tar.gz"; printf 'garbage after the last member\n'; } >"$D/trailing.gz"
size=$(wc -c <"$D/layer.tar.zst")
head -c $((size - 3)) "$D/layer.tar.zst" >"$D/truncated.zst"
cp "$D/layer.tar.zst" "$D/corrupt.zst"        # the content checksum flipped
last=$(tail -c 1 "$D/layer.tar.zst" | od -An -tu1 | tr -d ' ')
printf "\\$(printf %03o $(((last + 1) % 256)))" |
    dd of="$D/corrupt.zst" bs=1 seek=$((size - 1)) conv=notrunc 2>/dev/null
size=$(wc -c <"$D/layer.tar.bz2")
head -c $((size - 6)) "$D/layer.tar.bz2" >"$D/truncated.bz2"
seq 1 1000 | gzip -n >"$D/notar.gz"          # valid gzip, not a tar archive
xz --x86 --lzma2 -c "$D/small.tar" >"$D/bcj.xz"  # a filter chain containers/image refuses
xz --lzma2=preset=6,dict=64MiB <"$D/small.tar" >"$D/bigdict.xz"

# --- Expected values, from openssl and tar ------------------------------------------------
hex() { openssl dgst "-$1" -r "$2" | cut -d' ' -f1; }
# name file format media_type blob256 blob512 blob_size diff256 diff512 diff_size entries tar
row() {
    name=$1 file=$2 format=$3 tarfile=$4
    case $format in
    none) media=application/vnd.oci.image.layer.v1.tar ;;
    zstd) media=application/vnd.oci.image.layer.v1.tar+zstd ;;
    *) media=application/vnd.oci.image.layer.v1.tar+gzip ;;
    esac
    if [ -s "$tarfile" ]; then
        entries=$(tar -tf "$tarfile" | wc -l) istar=1
    else
        entries=0 istar=0
    fi
    echo "$name $file $format $media" \
        "sha256:$(hex sha256 "$file") sha512:$(hex sha512 "$file") $(wc -c <"$file")" \
        "sha256:$(hex sha256 "$tarfile") sha512:$(hex sha512 "$tarfile") $(wc -c <"$tarfile")" \
        "$entries $istar"
}
{
    for t in layer small; do
        row "$t.tar" "$D/$t.tar" none "$D/$t.tar"
        row "$t.tar.gz" "$D/$t.tar.gz" gzip "$D/$t.tar"
        row "$t.tar.bz2" "$D/$t.tar.bz2" bzip2 "$D/$t.tar"
        row "$t.tar.xz" "$D/$t.tar.xz" xz "$D/$t.tar"
        row "$t.tar.zst" "$D/$t.tar.zst" zstd "$D/$t.tar"
    done
    row empty "$D/empty" none "$D/empty"
} >"$D/expected.txt"
# Decoded with an option: the blob is the file, the DiffID is the tar's.
{
    row trailing.gz "$D/trailing.gz" gzip "$D/small.tar"
    row bcj.xz "$D/bcj.xz" xz "$D/small.tar"
    row bigdict.xz "$D/bigdict.xz" xz "$D/small.tar"
} >"$D/options.txt"

# --- The library itself ---------------------------------------------------------------------
prefix_only() {
    bad=$(nm -D --defined-only "$RELEASE/libdiffid.so" | awk '{print $3}' | grep -v '^diffid_')
    [ -z "$bad" ] || { echo "exported without the diffid_ prefix:"; echo "$bad"; return 1; }
}
check symbols-prefixed prefix_only

header_matches_exports() {
    nm -D --defined-only "$RELEASE/libdiffid.so" | awk '{print $3}' | sort >"$OUT/exported.txt"
    grep -o '\bdiffid_[a-z0-9_]*(' "$TOP/include/diffid.h" | tr -d '(' | sort -u >"$OUT/declared.txt"
    diff -u "$OUT/declared.txt" "$OUT/exported.txt"
}
check header-declares-every-export header_matches_exports

soname() {
    readelf -d "$RELEASE/libdiffid.so" | grep -q 'Library soname: \[libdiffid.so.0\]'
}
check soname-libdiffid.so.0 soname

# --- C tests --------------------------------------------------------------------------------
program c-tests-asan-ubsan "$OUT/test_ffi_asan" "$D"
# A budget of 4 whatever the cores: the stage layouts of 2, 3 and 4 tokens, among them the
# one with the blob hash on its own thread.
program c-tests-layouts env DIFFID_WORKERS=4 "$OUT/test_ffi" "$D" --layouts
# One run under valgrind, of a build without sanitizers, leaks counted as errors.
# --fair-sched=yes: valgrind runs one thread at a time, and its default lock lets a thread
# that never blocks (the cancel tests' writer) starve the others for hours.
program c-tests-valgrind valgrind -q --fair-sched=yes --error-exitcode=1 --leak-check=full \
    --errors-for-leak-kinds=all --show-leak-kinds=all --suppressions="$HERE/valgrind.supp" \
    "$OUT/test_ffi" "$D" --quick
check header-in-two-units "$OUT/two_units" "$D/small.tar.gz"
check header-as-cxx "$OUT/cxx_test" "$D/small.tar.xz"
check header-strict-c99 "$OUT/c99_test"

# --- Against the installed library ------------------------------------------------------------
installed() {
    make -s -C "$TOP" install PREFIX="$prefix" || return 1
    lib=$prefix/lib
    for f in libdiffid.so libdiffid.so.0 "libdiffid.so.$VERSION" libdiffid.a; do
        [ -e "$lib/$f" ] || { echo "missing $lib/$f"; return 1; }
    done
    [ -x "$prefix/bin/diffid" ] || { echo "missing bin/diffid"; return 1; }
    export PKG_CONFIG_PATH=$lib/pkgconfig
    [ "$(pkg-config --modversion diffid)" = "$VERSION" ] || { echo "pc version"; return 1; }
    # Dynamically linked, found through the rpath the .pc's libdir gives.
    gcc -std=c11 -Wall -Wextra -Werror -o "$OUT/installed" "$HERE/installed.c" \
        $(pkg-config --cflags --libs diffid) -Wl,-rpath,"$(pkg-config --variable=libdir diffid)" &&
        readelf -d "$OUT/installed" | grep -q 'NEEDED.*\[libdiffid.so.0\]' &&
        "$OUT/installed" "$D/layer.tar.zst" "$VERSION" >"$OUT/installed.out" &&
        want=$(awk '$1 == "layer.tar.zst" {print $4, $5, $8}' "$D/expected.txt") &&
        [ "$(cat "$OUT/installed.out")" = "$want" ] || { echo "want $want"; return 1; }
    # Statically linked with the private libraries of the .pc: runs without the .so.
    gcc -std=c11 -Wall -Wextra -Werror -o "$OUT/installed-static" "$HERE/installed.c" \
        $(pkg-config --cflags diffid) "$lib/libdiffid.a" \
        $(pkg-config --libs --static diffid | sed 's/-ldiffid//') &&
        ! readelf -d "$OUT/installed-static" | grep -q libdiffid &&
        "$OUT/installed-static" "$D/layer.tar.zst" "$VERSION" >"$OUT/installed.out" &&
        [ "$(cat "$OUT/installed.out")" = "$want" ]
}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$TOP/Cargo.toml" | head -n 1)
prefix=$(mktemp -d)
check installed-pkg-config installed

# --- The README's C examples, compiled as written against the installed library ---------------
# readme_c N: the README's N-th C code block.
readme_c() {
    awk -v n="$1" '/^```c$/ {k++; if (k == n) {f = 1; next}} /^```$/ {if (f) exit} f' "$TOP/README.md"
}

# The first: the decoding reader, decoded stream to stdout, digests to stderr.
readme_reader_example() {
    readme_c 1 >"$OUT/readme_reader.c"
    grep -q diffid_reader_read "$OUT/readme_reader.c" || { echo "no reader example in README.md"; return 1; }
    export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
    cc -Wall -Werror -o "$OUT/readme_reader" "$OUT/readme_reader.c" \
        $(pkg-config --cflags --libs diffid) -Wl,-rpath,"$prefix/lib" || return 1
    "$OUT/readme_reader" "$D/layer.tar.xz" >"$OUT/readme_reader.tar" 2>"$OUT/readme_reader.err" || return 1
    cmp "$OUT/readme_reader.tar" "$D/layer.tar" || return 1
    want=$(awk '$1 == "layer.tar.xz" {print $5, $8}' "$D/expected.txt")
    [ "$(cat "$OUT/readme_reader.err")" = "$want" ] || { echo "want $want"; cat "$OUT/readme_reader.err"; return 1; }
    # A corrupt trailer: exit 1, the code's name and message, no digest.
    "$OUT/readme_reader" "$D/corrupt.gz" >/dev/null 2>"$OUT/readme_reader.err" && return 1
    grep -q '^corrupt: gzip: ' "$OUT/readme_reader.err" || { cat "$OUT/readme_reader.err"; return 1; }
}
check readme-c-reader-example readme_reader_example

# The second: the one-call digest.
readme_example() {
    readme_c 2 >"$OUT/readme_example.c"
    [ -s "$OUT/readme_example.c" ] || { echo "no C example in README.md"; return 1; }
    export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
    cc -Wall -Werror -o "$OUT/readme_example" "$OUT/readme_example.c" \
        $(pkg-config --cflags --libs diffid) -Wl,-rpath,"$prefix/lib" || return 1
    "$OUT/readme_example" "$D/layer.tar.xz" >"$OUT/readme.out" || return 1
    want=$(awk '$1 == "layer.tar.xz" {print $5, $8}' "$D/expected.txt")
    [ "$(cat "$OUT/readme.out")" = "$want" ] || { echo "want $want, got $(cat "$OUT/readme.out")"; return 1; }
    # A failure prints the code's name and the message, and exits 1.
    "$OUT/readme_example" "$D/no-such-file" 2>"$OUT/readme.err" && return 1
    grep -q '^io: cannot open' "$OUT/readme.err" || { cat "$OUT/readme.err"; return 1; }
}
check readme-c-example readme_example
rm -rf "$prefix"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
