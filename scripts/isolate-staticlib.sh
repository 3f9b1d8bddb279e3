#!/bin/sh
# Makes the static library cargo built expose only the C ABI (diffid_*), as the shared
# library does. `make` runs it after `cargo build`.
#
#   isolate-staticlib.sh LIB.a
#
# A Rust staticlib is an archive of every object of the crate, of std and of the bundled C
# libraries (liblzma, zstd, ISA-L), all with their symbols global: a program that also links
# the system's liblzma would have its own lzma_* calls bound to diffid's copy, or diffid's
# to the system's, whichever the linker meets first. So the archive's members are linked into
# one relocatable object (`ld -r --whole-archive`), every defined symbol but diffid_* is made
# local to that object (`objcopy --keep-global-symbol`), and the object becomes the archive's
# only member. The references between the bundled libraries are resolved inside the object;
# what it still needs from outside (libc, libm, libpthread, libdl, libgcc's unwinder) stays
# undefined, as before. The LLVM bitcode rustc embeds (.llvmbc, .llvmcmd) is dropped: no C
# linker uses it, and binutils' LLVM plugin stops nm on it.
#
# Idempotent: an archive that already exports only diffid_* is left as it is. The result
# replaces LIB.a by a rename, so cargo's own copy (a hard link in deps/) is not modified.
set -eu
lib=$1
LD=${LD:-ld}
OBJCOPY=${OBJCOPY:-objcopy}
AR=${AR:-ar}
NM=${NM:-nm}

others() { "$NM" -g --defined-only "$1" 2>/dev/null | awk 'NF == 3 && $3 !~ /^diffid_/'; }

members=$("$AR" t "$lib")
if [ "$members" = "diffid.o" ] && [ -z "$(others "$lib")" ]; then
    exit 0
fi
tmp=$(mktemp -d "${lib%/*}/.isolate.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$LD" -r --whole-archive "$lib" -o "$tmp/whole.o"
"$OBJCOPY" --wildcard --keep-global-symbol='diffid_*' \
    --remove-section=.llvmbc --remove-section=.llvmcmd "$tmp/whole.o" "$tmp/diffid.o"
"$AR" rcsD "$tmp/lib.a" "$tmp/diffid.o"
bad=$(others "$tmp/lib.a")
if [ -n "$bad" ]; then
    echo "isolate-staticlib: still global after objcopy:" >&2
    echo "$bad" | head -n 20 >&2
    exit 1
fi
[ -n "$("$NM" -g --defined-only "$tmp/lib.a" | awk '$3 ~ /^diffid_/')" ] || {
    echo "isolate-staticlib: no diffid_* symbol left in $lib" >&2
    exit 1
}
mv -f "$tmp/lib.a" "$lib"
echo "isolate-staticlib: $lib exports only diffid_*"
