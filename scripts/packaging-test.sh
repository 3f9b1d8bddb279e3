#!/bin/sh
# The packaging tests of `make test` (make test-packaging): what an importer gets from
# `make install` into a temporary prefix. Needs `make` to have run (the Makefile sees to it).
#
#   - what is installed: every file, stripped, the tool with its man page and completions;
#     make install refuses an unbuilt tree
#   - both libraries export only diffid_* (nm), the functions include/diffid.h declares
#   - C through pkg-config: dynamic (diffid), fully static (cc -static, pkg-config --static
#     diffid) and libdiffid.a in a dynamic program (diffid-static); each run digests a layer
#   - libdiffid.a beside the system's liblzma: the program's lzma_* calls reach the system's
#     liblzma, diffid still decodes xz with its own
#   - Go: a throwaway module imports a copy of go/ through a replace, `go mod vendor`, the
#     copy removed, `go build -mod=vendor` links the installed library (shared, through
#     LD_LIBRARY_PATH and through an rpath, and with the diffid_static tag); each program
#     runs. CGO_ENABLED=0 fails naming cgo.
#   - make uninstall leaves nothing behind
#
# Expected digests come from `openssl dgst` over the files and the tar the system's tar made,
# never from diffid. Prints PASS/FAIL per check and "N passed, M failed"; exits 1 on failure.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
RELEASE=$TOP/target/release
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$TOP/Cargo.toml" | head -n 1)
GO=${GO:-go}
CC=${CC:-cc}
export GOTOOLCHAIN=local
unset GOFLAGS

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
P=$W/prefix
D=$W/data
LOGS=$W/logs
mkdir -p "$D/tree/etc" "$LOGS"
passed=0
failed=0
check() {
    name=$1
    shift
    if "$@" >"$LOGS/$name.log" 2>&1; then
        passed=$((passed + 1))
        echo "PASS $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
        sed 's/^/    /' "$LOGS/$name.log"
    fi
}
for tool in openssl tar xz gzip nm readelf pkg-config "$CC" "$GO" make; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool"; echo "0 passed, 1 failed"; exit 1; }
done

# --- Inputs and their digests ------------------------------------------------------------------
seq 1 200000 >"$D/tree/numbers.txt"
echo packaging >"$D/tree/etc/hostname"
tar --format=gnu --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    -C "$D/tree" -cf "$D/layer.tar" .
xz -T1 -c "$D/layer.tar" >"$D/layer.tar.xz"
gzip -n -c "$D/layer.tar" >"$D/layer.tar.gz"
sha() { echo "sha256:$(openssl dgst -sha256 -r "$1" | cut -d' ' -f1)"; }
want_xz="$(sha "$D/layer.tar.xz") $(sha "$D/layer.tar")"
want_gz="$(sha "$D/layer.tar.gz") $(sha "$D/layer.tar")"
media_gz=application/vnd.oci.image.layer.v1.tar+gzip

# --- make install -------------------------------------------------------------------------------
install_refuses_unbuilt() {
    # A tree make has not built: install must say so, not build.
    mkdir -p "$W/unbuilt" && cp "$TOP/Makefile" "$W/unbuilt/" &&
        cp -r "$TOP/scripts" "$W/unbuilt/" && touch "$W/unbuilt/Cargo.toml" || return 1
    if make -s -C "$W/unbuilt" install PREFIX="$W/never" CARGO=false >"$W/unbuilt.out" 2>&1; then
        echo "make install succeeded in an unbuilt tree"; return 1
    fi
    cat "$W/unbuilt.out"
    grep -q "missing: run 'make' first" "$W/unbuilt.out" && [ ! -e "$W/never" ]
}
check install-refuses-unbuilt install_refuses_unbuilt

installed() {
    make -s -C "$TOP" install PREFIX="$P" || return 1
    for f in lib/libdiffid.so "lib/libdiffid.so.${VERSION%%.*}" "lib/libdiffid.so.$VERSION" \
        lib/libdiffid.a include/diffid.h lib/pkgconfig/diffid.pc lib/pkgconfig/diffid-static.pc \
        bin/diffid share/man/man1/diffid.1 share/bash-completion/completions/diffid \
        share/zsh/site-functions/_diffid share/fish/vendor_completions.d/diffid.fish; do
        [ -e "$P/$f" ] || { echo "missing $P/$f"; return 1; }
    done
    cmp "$TOP/include/diffid.h" "$P/include/diffid.h" || return 1
    # The installed tool runs, and its man page and bash completion load.
    "$P/bin/diffid" --version | grep -q "^xz: *liblzma " || return 1
    grep -q '^\.TH diffid 1' "$P/share/man/man1/diffid.1" || return 1
    if command -v man >/dev/null; then
        MANWIDTH=80 man -l "$P/share/man/man1/diffid.1" 2>/dev/null | grep -q -- '--lenient-gzip' || return 1
    fi
    bash -c ". '$P/share/bash-completion/completions/diffid' && complete -p diffid" || return 1
}
check make-install installed

stripped() {
    for f in "lib/libdiffid.so.$VERSION:libdiffid.so" lib/libdiffid.a:libdiffid.a bin/diffid:diffid; do
        built=$RELEASE/${f#*:} f=${f%%:*}
        # (.debug_gdb_scripts is loaded with the program and stays; it holds no debug info.)
        if readelf -SW "$P/$f" | grep -E '\.debug_(info|line|str|abbrev|aranges|ranges|loc)'; then
            echo "$f keeps debug info"; return 1
        fi
        echo "$f: $(wc -c <"$P/$f") bytes (built: $(wc -c <"$built"))"
    done
    # Stripping left the libraries usable: the symbol tables stay.
    [ -n "$(nm -D --defined-only "$P/lib/libdiffid.so.$VERSION" | grep diffid_version)" ] &&
        [ -n "$(nm -g --defined-only "$P/lib/libdiffid.a" | grep diffid_version)" ]
}
check installed-stripped stripped

debug_files() {
    # DEBUGDIR: the debug info beside, linked from the stripped files by .gnu_debuglink.
    q=$W/prefix-debug
    make -s -C "$TOP" install PREFIX="$q" DEBUGDIR="$q/lib/debug" || return 1
    for f in "lib/libdiffid.so.$VERSION" bin/diffid; do
        dbg=$q/lib/debug/${f##*/}.debug
        readelf -SW "$dbg" | grep -q '\.debug_info' || { echo "$dbg has no debug info"; return 1; }
        readelf -SW "$q/$f" | grep -q '\.debug_info' && { echo "$f is not stripped"; return 1; }
        readelf -p .gnu_debuglink "$q/$f" | grep -q "${f##*/}.debug" || { echo "$f: no debuglink"; return 1; }
    done
    make -s -C "$TOP" uninstall PREFIX="$q" DEBUGDIR="$q/lib/debug" || return 1
    left=$(find "$q" ! -type d)
    [ -z "$left" ] || { echo "left behind:"; echo "$left"; return 1; }
}
check install-debug-info-apart debug_files

# --- Symbols ------------------------------------------------------------------------------------
declared() { grep -o '\bdiffid_[a-z0-9_]*(' "$TOP/include/diffid.h" | tr -d '(' | sort -u; }
only_declared() { # NAME SYMBOLS...: the exported names are exactly the declared functions
    what=$1
    shift
    printf '%s\n' "$@" | sort -u >"$W/exported.txt"
    declared >"$W/declared.txt"
    diff -u "$W/declared.txt" "$W/exported.txt" || { echo "$what exports other names"; return 1; }
}
static_symbols() {
    only_declared libdiffid.a $(nm -g --defined-only "$P/lib/libdiffid.a" | awk 'NF == 3 {print $3}')
}
check static-lib-exports-only-diffid static_symbols
shared_symbols() {
    only_declared libdiffid.so $(nm -D --defined-only "$P/lib/libdiffid.so" | awk 'NF == 3 {print $3}')
}
check shared-lib-exports-only-diffid shared_symbols

# --- C through pkg-config -----------------------------------------------------------------------
export PKG_CONFIG_PATH=$P/lib/pkgconfig
INSTALLED_C=$TOP/ffi-tests/installed.c
runs_right() { # PROGRAM: digests the gzip layer as openssl says, with the right version
    out=$("$@" "$D/layer.tar.gz" "$VERSION") || return 1
    [ "$out" = "$media_gz $want_gz" ] || { echo "got  $out"; echo "want $media_gz $want_gz"; return 1; }
}
c_dynamic() {
    $CC -o "$W/dyn" "$INSTALLED_C" $(pkg-config --cflags --libs diffid) || return 1
    readelf -d "$W/dyn" | grep 'NEEDED.*\[libdiffid.so.0\]' || return 1
    # Not found without help: the prefix is not a system directory...
    "$W/dyn" "$D/layer.tar.gz" "$VERSION" 2>/dev/null && { echo "ran without the library path"; return 1; }
    # ...then with LD_LIBRARY_PATH, and with an rpath, as the README says.
    LD_LIBRARY_PATH=$P/lib runs_right "$W/dyn" || return 1
    $CC -o "$W/dyn-rpath" "$INSTALLED_C" $(pkg-config --cflags --libs diffid) \
        -Wl,-rpath,"$(pkg-config --variable=libdir diffid)" && runs_right "$W/dyn-rpath"
}
check c-pkg-config-dynamic c_dynamic
c_full_static() {
    # glibc warns that getaddrinfo/getpwuid_r in std would need its shared libraries.
    $CC -static -o "$W/static" "$INSTALLED_C" $(pkg-config --static --cflags --libs diffid) || return 1
    readelf -d "$W/static" | grep NEEDED && { echo "not static"; return 1; }
    runs_right "$W/static"
}
check c-pkg-config-static c_full_static
c_static_lib() {
    $CC -o "$W/static-lib" "$INSTALLED_C" $(pkg-config --cflags --libs diffid-static) || return 1
    readelf -d "$W/static-lib" | grep libdiffid && { echo "needs libdiffid.so"; return 1; }
    runs_right "$W/static-lib"
}
check c-pkg-config-diffid-static c_static_lib

beside_liblzma() {
    pkg-config --exists liblzma || { echo "liblzma-dev is not installed (scripts/setup.sh installs it)"; return 1; }
    system=$(pkg-config --modversion liblzma)
    # Both orders: libdiffid.a before -llzma made the program's lzma_* calls reach diffid's
    # bundled liblzma before the symbols were made local; -llzma first bound diffid's.
    for order in a-first lzma-first; do
        if [ $order = a-first ]; then
            libs="$(pkg-config --libs diffid-static) $(pkg-config --libs liblzma)"
        else
            libs="$(pkg-config --libs liblzma) $(pkg-config --libs diffid-static)"
        fi
        $CC -o "$W/lzma-$order" "$TOP/ffi-tests/beside_liblzma.c" $(pkg-config --cflags diffid liblzma) $libs ||
            return 1
        "$W/lzma-$order" "$D/layer.tar.xz" >"$W/lzma.out" || return 1
        got_version=$(sed -n 1p "$W/lzma.out") got=$(sed -n 2p "$W/lzma.out")
        echo "$order: lzma_version_string() = $got_version, system liblzma $system"
        [ "$got_version" = "$system" ] || { echo "the program's liblzma is not the system's"; return 1; }
        [ "$got" = "$want_xz" ] || { echo "got $got, want $want_xz"; return 1; }
    done
}
check static-lib-beside-system-liblzma beside_liblzma

# --- Go, vendored -------------------------------------------------------------------------------
go_vendored() {
    src=$W/diffid-go app=$W/app
    mkdir -p "$src" "$app" || return 1
    # A copy of go/ on its own: nothing outside it is reachable from the build.
    (cd "$TOP/go" && tar --exclude=./compat -cf - .) | tar -C "$src" -xf - || return 1
    cat >"$app/go.mod" <<EOF
module example.com/app

go 1.26

require diffid.dev/go/diffid v0.0.0

replace diffid.dev/go/diffid => $src
EOF
    cat >"$app/main.go" <<'EOF'
package main

import (
	"fmt"
	"os"

	"diffid.dev/go/diffid"
)

func main() {
	res, err := diffid.DigestFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(res.BlobDigest, res.DiffID)
}
EOF
    cd "$app" || return 1
    # go-digest, the package's only requirement, comes from the module cache; its checksum
    # from the package's go.sum.
    cp "$src/go.sum" go.sum || return 1
    GOFLAGS=-mod=mod GOPROXY=off $GO mod tidy || return 1
    cat go.mod
    $GO mod vendor || return 1
    rm -rf "$src"
    ls vendor/diffid.dev/go/diffid
    CGO_ENABLED=1 $GO build -mod=vendor -o app-shared . || return 1
    out=$(LD_LIBRARY_PATH=$P/lib ./app-shared "$D/layer.tar.xz") || return 1
    [ "$out" = "$want_xz" ] || { echo "shared: got $out, want $want_xz"; return 1; }
    # The rpath recorded by the Go linker (go/README): runs without LD_LIBRARY_PATH.
    CGO_ENABLED=1 $GO build -mod=vendor -ldflags="-r $P/lib" -o app-rpath . || return 1
    out=$(./app-rpath "$D/layer.tar.xz") || return 1
    [ "$out" = "$want_xz" ] || { echo "rpath: got $out, want $want_xz"; return 1; }
    CGO_ENABLED=1 $GO build -mod=vendor -tags diffid_static -o app-static . || return 1
    readelf -d app-static | grep libdiffid && { echo "diffid_static still needs libdiffid.so"; return 1; }
    out=$(./app-static "$D/layer.tar.xz") || return 1
    [ "$out" = "$want_xz" ] || { echo "static: got $out, want $want_xz"; return 1; }
    # Without cgo: a build error that names it.
    if CGO_ENABLED=0 $GO build -mod=vendor -o app-nocgo . >"$W/nocgo.out" 2>&1; then
        echo "CGO_ENABLED=0 built"; return 1
    fi
    cat "$W/nocgo.out"
    grep -q 'undefined: diffid_requires_cgo__build_with_CGO_ENABLED_1' "$W/nocgo.out"
}
check go-vendored-build go_vendored

# --- make uninstall -----------------------------------------------------------------------------
uninstalled() {
    make -s -C "$TOP" uninstall PREFIX="$P" || return 1
    left=$(find "$P" ! -type d)
    [ -z "$left" ] || { echo "left behind:"; echo "$left"; return 1; }
}
check make-uninstall uninstalled

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
