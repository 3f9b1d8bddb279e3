#!/bin/sh
# Writes the pkg-config files of libdiffid. `make` writes uninstalled ones into
# target/pkgconfig (the checkout's own build, for its tests); `make install` writes the
# installed ones into PREFIX/lib/pkgconfig.
#
#   pkgconfig.sh OUTDIR PREFIX LIBDIR INCLUDEDIR VERSION [uninstalled]
#
# LIBDIR and INCLUDEDIR are written relative to ${prefix} when they are under PREFIX.
#
#   diffid.pc         the shared library: `cc x.c $(pkg-config --cflags --libs diffid)`.
#                     `pkg-config --static` adds the system libraries libdiffid.a needs, for a
#                     fully static program: `cc -static x.c $(pkg-config --static --cflags
#                     --libs diffid)` (with -static the linker takes libdiffid.a for -ldiffid).
#   diffid-static.pc  libdiffid.a linked into an otherwise dynamic program (no libdiffid.so at
#                     run time): `cc x.c $(pkg-config --cflags --libs diffid-static)`. Its Libs
#                     name the archive by path and carry the system libraries, because `go
#                     build` asks pkg-config for --libs without --static (the Go package's
#                     diffid_static build tag selects this file).
#
# The uninstalled diffid.pc also records LIBDIR as the rpath, so the checkout's programs and
# tests find target/release/libdiffid.so.0 without LD_LIBRARY_PATH; the installed one does
# not (see the README for running against a non-system prefix).
set -eu
out=$1 prefix=$2 libdir=$3 includedir=$4 version=$5 kind=${6:-installed}

# What libdiffid.a needs from the system: `rustc --print native-static-libs` minus -lgcc_s
# (the C compiler driver adds libgcc's unwinder itself: libgcc_s when linking dynamically,
# libgcc_eh with -static, where -lgcc_s does not exist).
sys_libs="-lutil -lrt -lpthread -lm -ldl"

rel() {
    case $1 in
    "$prefix") echo '${prefix}' ;;
    "$prefix"/*) echo '${prefix}'"${1#"$prefix"}" ;;
    *) echo "$1" ;;
    esac
}
rpath=""
[ "$kind" = uninstalled ] && rpath=' -Wl,-rpath,${libdir}'

header() {
    printf '%s\n' \
        "prefix=$prefix" \
        "libdir=$(rel "$libdir")" \
        "includedir=$(rel "$includedir")" \
        '' \
        "Name: $1" \
        "Description: $2" \
        "Version: $version" \
        'Cflags: -I${includedir}'
}

mkdir -p "$out"
{
    header diffid 'Blob digest, DiffID and tar verdict of a container image layer in one pass'
    echo "Libs: -L\${libdir} -ldiffid$rpath"
    echo "Libs.private: $sys_libs"
} >"$out/diffid.pc"
{
    header diffid-static 'libdiffid linked statically (libdiffid.a exports only diffid_*)'
    echo "Libs: \${libdir}/libdiffid.a $sys_libs"
} >"$out/diffid-static.pc"
