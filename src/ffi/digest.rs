//! The one-call digests: `diffid_digest_file`, `diffid_digest_fd`, `diffid_digest_buffer`.

use std::ffi::{CStr, c_char, c_int};
use std::io::{self, Read};
use std::path::PathBuf;

use super::codes::diffid_code;
use super::guard::{bytes, deliver, guard, invalid};
use super::options::{diffid_options, options};
use super::result::diffid_result;
use crate::{Error, ErrorKind, digest_bytes, digest_path, digest_reader};

/// Digests the layer blob in the file at `path` (a NUL-terminated file name): format,
/// blob digest, DiffID, sizes and tar verdict in one multi-threaded pass. `opts` may be
/// NULL for the defaults.
///
/// Stores a new result in `*out` whatever happens, on failure too (then it holds the error
/// code and message), and returns its code; free it with `diffid_result_free`. Returns
/// `DIFFID_INVALID_ARGUMENT` without a result when `out` is NULL, and with one when `path`
/// is NULL. A file that cannot be opened or read gives `DIFFID_IO`.
///
/// Thread-safe: any number of threads may digest at once.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_digest_file(
    path: *const c_char,
    opts: *const diffid_options,
    out: *mut *mut diffid_result,
) -> diffid_code {
    guard(|| {
        deliver(out, || {
            if path.is_null() {
                return Err(invalid("path"));
            }
            // SAFETY: `path` is non-NULL and NUL-terminated (the contract).
            let path = unsafe { CStr::from_ptr(path) };
            digest_path(path_of(path), &options(opts))
        })
    })
}

#[cfg(unix)]
fn path_of(path: &CStr) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(path.to_bytes()).into()
}

#[cfg(not(unix))]
fn path_of(path: &CStr) -> PathBuf {
    path.to_string_lossy().into_owned().into()
}

/// Reads a file descriptor with read(2), leaving it open: no ownership is taken.
pub(super) struct FdReader(pub(super) c_int);

impl Read for FdReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes; a bad descriptor makes
        // read(2) fail with EBADF, which is reported, not undefined.
        let n = unsafe { libc::read(self.0, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

/// Digests everything that can be read from the file descriptor `fd` (a file, a pipe, a
/// socket) until end of file, from its current position. The descriptor stays open and
/// belongs to the caller; it is read with read(2) on the calling thread, so a blocking
/// descriptor blocks the call. `opts` may be NULL for the defaults.
///
/// Stores a new result in `*out` whatever happens, and returns its code, as
/// `diffid_digest_file` does. A negative `fd` gives `DIFFID_INVALID_ARGUMENT`; a failing
/// read(2) gives `DIFFID_IO`.
///
/// Thread-safe for different descriptors.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_digest_fd(
    fd: c_int,
    opts: *const diffid_options,
    out: *mut *mut diffid_result,
) -> diffid_code {
    guard(|| {
        deliver(out, || {
            if fd < 0 {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!("{fd} is not a file descriptor"),
                ));
            }
            digest_reader(FdReader(fd), &options(opts))
        })
    })
}

/// Digests the `len` bytes at `data`, a whole layer blob held in memory. The bytes are only
/// read during the call. `data` may be NULL when `len` is 0 (the empty blob). `opts` may be
/// NULL for the defaults.
///
/// Stores a new result in `*out` whatever happens, and returns its code, as
/// `diffid_digest_file` does.
///
/// Thread-safe: any number of threads may digest at once, the same buffer too.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_digest_buffer(
    data: *const u8,
    len: usize,
    opts: *const diffid_options,
    out: *mut *mut diffid_result,
) -> diffid_code {
    guard(|| {
        deliver(out, || {
            let data = bytes(data, len).ok_or_else(|| invalid("data"))?;
            digest_bytes(data, &options(opts))
        })
    })
}
