//! Build script: gives the shared library its SONAME, the `diffid` tool the versions of the
//! decoder crates for `diffid --version`, and (feature `isal`) compiles the patched copy of
//! ISA-L's inflate in `vendor/isa-l` (see its README).

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // `libdiffid.so.0`: programs linked against the shared library record this name, so an
    // ABI-compatible update (same major version) can replace the file under them.
    // `make install` installs `libdiffid.so.<version>` with the `libdiffid.so.0` and
    // `libdiffid.so` links.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("set by cargo");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libdiffid.so.{major}");
    }
    crate_versions();
    if std::env::var_os("CARGO_FEATURE_ISAL").is_some() {
        strict_isal();
    }
}

/// Compiles `vendor/isa-l/igzip/igzip_inflate.c`: ISA-L's inflate with the check that a
/// dynamic block's Huffman codes are complete, its names prefixed `isal_strict_`. The rest of
/// ISA-L (the assembly block decoders it calls, the CRC32) comes from isal-sys's `libisal`,
/// which is linked after this library.
fn strict_isal() {
    let vendor = Path::new("vendor/isa-l");
    for file in ["igzip/igzip_inflate.c", "igzip", "include"] {
        println!("cargo:rerun-if-changed={}", vendor.join(file).display());
    }
    cc::Build::new()
        .file(vendor.join("igzip/igzip_inflate.c"))
        .include(vendor.join("include"))
        .include(vendor.join("igzip"))
        // ISA-L's own flags (its configure): -O3 on top of the profile's, and it is
        // compiled without -Werror; its unused-parameter warnings are upstream's.
        .opt_level(3)
        .warnings(false)
        .compile("isal_strict");
}

/// Sets `DIFFID_VERSION_<CRATE>` for each decoder crate to the version Cargo.lock resolved
/// ("unknown" without a Cargo.lock, e.g. built as another package's dependency: the tool is
/// not built then). liblzma and libzstd also report their own versions at run time; ISA-L
/// (inside isal-sys), zlib-rs and the bzip2 crates have no such call.
fn crate_versions() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    let lock_path = Path::new(&dir).join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path).unwrap_or_default();
    if !lock.is_empty() {
        println!("cargo:rerun-if-changed={}", lock_path.display());
    }
    for name in [
        "isal-sys",
        "zlib-rs",
        "rapidgzip-core",
        "liblzma-sys",
        "zstd-sys",
        "bzip2",
        "libbz2-rs-sys",
    ] {
        let version = locked_version(&lock, name).unwrap_or("unknown");
        let var = name.to_uppercase().replace('-', "_");
        println!("cargo:rustc-env=DIFFID_VERSION_{var}={version}");
    }
}

/// The version of the first `[[package]]` named `name` in a Cargo.lock.
fn locked_version<'a>(lock: &'a str, name: &str) -> Option<&'a str> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let version = lines.next()?.trim().strip_prefix("version = \"")?;
            return version.strip_suffix('"');
        }
    }
    None
}
