//! The C ABI: opaque handles, fixed codes, out-parameters; `include/diffid.h` is generated
//! from this folder by cbindgen (`make header`).
//!
//! Thin on purpose: every function checks its pointers, converts them to Rust values, calls
//! the same API the CLI and the tests call ([`digest_path`], [`Digester`], ...) and converts
//! the answer back. Nothing here that a Rust caller would also need.
//!
//! Conventions (rustls-ffi, libdeflate):
//! - every exported function is a literal `extern "C" fn` whose body runs inside
//!   [`guard`], which turns a panic into `DIFFID_INTERNAL` (or NULL, 0, false): an unwinding
//!   panic out of `extern "C"` would abort the caller's process;
//! - every pointer is checked for NULL before use;
//! - error details travel in the `diffid_result`, never in thread-local storage, because a
//!   goroutine may change OS threads between two cgo calls;
//! - the library frees what it allocates (`_free`), and `_free(NULL)` is a no-op.

// The pointers come from C: the functions cannot be `unsafe fn` to the C caller, and every
// dereference below is preceded by a NULL check and documented in the header's contract.
#![allow(clippy::not_unsafe_ptr_arg_deref)]
// The C names are the Rust names: cbindgen copies them into the header unchanged.
#![allow(non_camel_case_types)]

// One module per C type. They are declared in the order the header lists their functions
// (cbindgen follows the declarations in order).

// The codes, algorithms and formats, and the names of the codes.
mod codes;

// The panic guard and the helpers that turn C pointers into Rust values.
mod guard;

// `diffid_options`.
mod options;

// `diffid_digest_file`, `diffid_digest_fd`, `diffid_digest_buffer`.
mod digest;

// `diffid_stream`.
mod stream;

// `diffid_reader`: the decoded stream out.
mod reader;

// `diffid_result` and its accessors.
mod result;

pub use codes::*;
pub use digest::*;
pub use options::*;
pub use reader::*;
pub use result::*;
pub use stream::*;

use std::ffi::c_char;

use guard::guard;

/// The major version of the library these declarations come from.
pub const DIFFID_VERSION_MAJOR: u32 = 0;
/// The minor version of the library these declarations come from.
pub const DIFFID_VERSION_MINOR: u32 = 1;
/// The patch version of the library these declarations come from.
pub const DIFFID_VERSION_PATCH: u32 = 0;

// cbindgen cannot read Cargo.toml, so the numbers above are written out; these assertions
// make a version bump that forgets them fail to compile.
const _: () = {
    assert!(DIFFID_VERSION_MAJOR == parse_u32(env!("CARGO_PKG_VERSION_MAJOR")));
    assert!(DIFFID_VERSION_MINOR == parse_u32(env!("CARGO_PKG_VERSION_MINOR")));
    assert!(DIFFID_VERSION_PATCH == parse_u32(env!("CARGO_PKG_VERSION_PATCH")));
};

const fn parse_u32(s: &str) -> u32 {
    let (b, mut i, mut n) = (s.as_bytes(), 0, 0u32);
    while i < b.len() {
        assert!(b[i].is_ascii_digit());
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}

/// The version of the library, e.g. `"0.1.0"`: a static NUL-terminated string, never NULL.
/// Its numbers equal `DIFFID_VERSION_MAJOR`, `_MINOR` and `_PATCH` when the header and the
/// library come from the same release. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_version() -> *const c_char {
    guard(|| concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast())
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    #[test]
    fn version_is_cargo_version() {
        let v = unsafe { CStr::from_ptr(diffid_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
        let macros =
            format!("{DIFFID_VERSION_MAJOR}.{DIFFID_VERSION_MINOR}.{DIFFID_VERSION_PATCH}");
        assert_eq!(macros, crate::VERSION);
    }
}
