//! The panic guard every exported function runs in, and the helpers that turn C pointers
//! into Rust values.

use std::ffi::CString;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::codes::{diffid_code, diffid_format};
use super::result::diffid_result;
use crate::{Error, ErrorKind, Report};

/// A C string of `s`; the messages never hold a NUL, but a file name could.
pub(super) fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).expect("no NUL left")
}

pub(super) fn invalid(what: &str) -> Error {
    Error::new(ErrorKind::InvalidArgument, format!("{what} is NULL"))
}

/// What an exported function returns when its body panicked.
pub(super) trait OnPanic {
    fn on_panic() -> Self;
}

impl OnPanic for diffid_code {
    fn on_panic() -> Self {
        diffid_code::DIFFID_INTERNAL
    }
}

impl<T> OnPanic for *const T {
    fn on_panic() -> Self {
        std::ptr::null()
    }
}

impl OnPanic for () {
    fn on_panic() {}
}

impl OnPanic for u64 {
    fn on_panic() -> Self {
        0
    }
}

impl OnPanic for usize {
    fn on_panic() -> Self {
        0
    }
}

impl OnPanic for bool {
    fn on_panic() -> Self {
        false
    }
}

impl OnPanic for diffid_format {
    fn on_panic() -> Self {
        diffid_format::None
    }
}

/// Runs the body of an exported function; a panic becomes `T::on_panic()` instead of
/// unwinding into C (which aborts the process since Rust 1.81).
pub(super) fn guard<T: OnPanic>(body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| T::on_panic())
}

/// Computes a result under the guard, stores it in `*out` and returns its code. A panic
/// becomes a `DIFFID_INTERNAL` result, so `*out` is set whatever happens.
///
/// # Safety
///
/// `out` is NULL or valid for writing one pointer.
pub(super) unsafe fn deliver(
    out: *mut *mut diffid_result,
    body: impl FnOnce() -> crate::Result<Report>,
) -> diffid_code {
    if out.is_null() {
        return diffid_code::DIFFID_INVALID_ARGUMENT;
    }
    let result = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        Err(Error::new(
            ErrorKind::Internal,
            "a panic inside diffid (please report it)",
        ))
    });
    let result = Box::new(diffid_result::new(result));
    let code = result.code;
    // SAFETY: `out` is non-NULL, so valid for writing one pointer (this function's contract).
    unsafe { out.write(Box::into_raw(result)) };
    code
}

/// The `len` bytes at `data`; `None` when `data` is NULL and `len` is not 0.
///
/// # Safety
///
/// A non-NULL `data` is valid for reading `len` bytes, unchanged, for `'a`.
pub(super) unsafe fn bytes<'a>(data: *const u8, len: usize) -> Option<&'a [u8]> {
    if len == 0 {
        Some(&[])
    } else if data.is_null() {
        None
    } else {
        // SAFETY: `data` is non-NULL, so valid for reading `len` bytes for `'a` (this
        // function's contract).
        Some(unsafe { std::slice::from_raw_parts(data, len) })
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::c_char;

    use super::*;
    use crate::ffi::{
        diffid_result_blob_digest, diffid_result_code, diffid_result_error, diffid_result_free,
    };

    #[test]
    fn panics_become_internal() {
        assert_eq!(
            guard(|| -> diffid_code { panic!("a test panic") }),
            diffid_code::DIFFID_INTERNAL
        );
        assert!(guard(|| -> *const c_char { panic!("a test panic") }).is_null());
        // A result-making function still delivers a result, holding the error.
        let mut out = std::ptr::null_mut();
        // SAFETY: `out` is a local pointer; the result is read, then freed once.
        unsafe {
            let code = deliver(&mut out, || panic!("a test panic"));
            assert_eq!(code, diffid_code::DIFFID_INTERNAL);
            assert_eq!(diffid_result_code(out), diffid_code::DIFFID_INTERNAL);
            assert!(!diffid_result_error(out).is_null());
            assert!(diffid_result_blob_digest(out).is_null());
            diffid_result_free(out);
        }
    }
}
