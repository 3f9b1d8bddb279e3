//! Build script: gives the shared library its SONAME.

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
}
