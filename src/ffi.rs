//! The C ABI: opaque handles, fixed codes, out-parameters; `include/diffid.h` is generated
//! from this file by cbindgen (`make header`).
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

use std::ffi::{CStr, CString, c_char, c_int};
use std::io::{self, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Mutex;

use crate::{
    Algorithm, CancelHandle, DEFAULT_DECODER_MEMORY_LIMIT, Digester, Error, ErrorKind, Format,
    Options, Report, digest_bytes, digest_path, digest_reader,
};

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

/// What a function of this library returns: `DIFFID_OK` (0), or the kind of failure. The
/// numbers are stable and never reused; new kinds get new numbers. `diffid_code_name()`
/// gives each a short lowercase name.
/// cbindgen:rename-all=None
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum diffid_code {
    /// Success.
    DIFFID_OK = 0,
    /// An argument was invalid: a NULL pointer, an unknown algorithm, ...
    DIFFID_INVALID_ARGUMENT = 1,
    /// Reading the input failed (the file cannot be opened, read(2) failed, ...).
    DIFFID_IO = 2,
    /// The compressed data is corrupt: bad header, bad checksum, invalid coded data.
    DIFFID_CORRUPT = 3,
    /// The compressed data ended before the stream did.
    DIFFID_TRUNCATED = 4,
    /// Bytes follow the end of the compressed data (accepted for gzip with
    /// `diffid_options_set_lenient_gzip`).
    DIFFID_TRAILING_DATA = 5,
    /// Well-formed data using a feature containers/image does not accept by default: an xz
    /// filter chain other than LZMA2 (see `diffid_options_set_full_xz`), a zstd dictionary,
    /// an unknown check type.
    DIFFID_UNSUPPORTED = 6,
    /// A limit was exceeded: the maximum decoded size, the decoder memory limit, a zstd
    /// window larger than 512 MiB.
    DIFFID_LIMIT_EXCEEDED = 7,
    /// The stream was cancelled with `diffid_stream_cancel`.
    DIFFID_CANCELLED = 8,
    /// The decoded stream is not a valid tar archive and `require_tar` was set.
    DIFFID_INVALID_TAR = 9,
    /// A handle was used against its contract: written after it finished, finished twice.
    DIFFID_MISUSE = 10,
    /// A bug in this library (a panic was caught). Please report it.
    DIFFID_INTERNAL = 11,
}

/// The digest algorithm of both the blob digest and the DiffID. The numbers are stable.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum diffid_algorithm {
    /// SHA-256, what image configs and manifests use (the default).
    Sha256 = 0,
    /// SHA-512.
    Sha512 = 1,
    /// BLAKE3 (256-bit output).
    Blake3 = 2,
}

/// The compression of a layer blob, detected from its first bytes. The numbers are stable.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum diffid_format {
    /// Not compressed: the blob is the tar stream.
    None = 0,
    /// gzip (RFC 1952), possibly several members.
    Gzip = 1,
    /// bzip2.
    Bzip2 = 2,
    /// xz.
    Xz = 3,
    /// zstd.
    Zstd = 4,
}

// The C numbers are the Rust library's numbers; these fail to compile if either side moves.
const _: () = {
    use diffid_code as C;
    assert!(C::DIFFID_INVALID_ARGUMENT as u32 == ErrorKind::InvalidArgument as u32);
    assert!(C::DIFFID_IO as u32 == ErrorKind::Io as u32);
    assert!(C::DIFFID_CORRUPT as u32 == ErrorKind::Corrupt as u32);
    assert!(C::DIFFID_TRUNCATED as u32 == ErrorKind::Truncated as u32);
    assert!(C::DIFFID_TRAILING_DATA as u32 == ErrorKind::TrailingData as u32);
    assert!(C::DIFFID_UNSUPPORTED as u32 == ErrorKind::Unsupported as u32);
    assert!(C::DIFFID_LIMIT_EXCEEDED as u32 == ErrorKind::LimitExceeded as u32);
    assert!(C::DIFFID_CANCELLED as u32 == ErrorKind::Cancelled as u32);
    assert!(C::DIFFID_INVALID_TAR as u32 == ErrorKind::InvalidTar as u32);
    assert!(C::DIFFID_MISUSE as u32 == ErrorKind::Misuse as u32);
    assert!(C::DIFFID_INTERNAL as u32 == ErrorKind::Internal as u32);
    assert!(diffid_algorithm::Sha256 as u32 == Algorithm::Sha256 as u32);
    assert!(diffid_algorithm::Sha512 as u32 == Algorithm::Sha512 as u32);
    assert!(diffid_algorithm::Blake3 as u32 == Algorithm::Blake3 as u32);
    assert!(diffid_format::None as u32 == Format::None as u32);
    assert!(diffid_format::Gzip as u32 == Format::Gzip as u32);
    assert!(diffid_format::Bzip2 as u32 == Format::Bzip2 as u32);
    assert!(diffid_format::Xz as u32 == Format::Xz as u32);
    assert!(diffid_format::Zstd as u32 == Format::Zstd as u32);
};

/// Every kind, in code order.
#[cfg(test)]
const KINDS: [ErrorKind; 11] = [
    ErrorKind::InvalidArgument,
    ErrorKind::Io,
    ErrorKind::Corrupt,
    ErrorKind::Truncated,
    ErrorKind::TrailingData,
    ErrorKind::Unsupported,
    ErrorKind::LimitExceeded,
    ErrorKind::Cancelled,
    ErrorKind::InvalidTar,
    ErrorKind::Misuse,
    ErrorKind::Internal,
];

fn code_of(kind: ErrorKind) -> diffid_code {
    use diffid_code as C;
    match kind {
        ErrorKind::InvalidArgument => C::DIFFID_INVALID_ARGUMENT,
        ErrorKind::Io => C::DIFFID_IO,
        ErrorKind::Corrupt => C::DIFFID_CORRUPT,
        ErrorKind::Truncated => C::DIFFID_TRUNCATED,
        ErrorKind::TrailingData => C::DIFFID_TRAILING_DATA,
        ErrorKind::Unsupported => C::DIFFID_UNSUPPORTED,
        ErrorKind::LimitExceeded => C::DIFFID_LIMIT_EXCEEDED,
        ErrorKind::Cancelled => C::DIFFID_CANCELLED,
        ErrorKind::InvalidTar => C::DIFFID_INVALID_TAR,
        ErrorKind::Misuse => C::DIFFID_MISUSE,
        ErrorKind::Internal => C::DIFFID_INTERNAL,
    }
}

fn format_of(format: Format) -> diffid_format {
    match format {
        Format::None => diffid_format::None,
        Format::Gzip => diffid_format::Gzip,
        Format::Bzip2 => diffid_format::Bzip2,
        Format::Xz => diffid_format::Xz,
        Format::Zstd => diffid_format::Zstd,
    }
}

/// A C string of `s`; the messages never hold a NUL, but a file name could.
fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).expect("no NUL left")
}

fn invalid(what: &str) -> Error {
    Error::new(ErrorKind::InvalidArgument, format!("{what} is NULL"))
}

// ---------------------------------------------------------------------------------------
// The panic guard.

/// What an exported function returns when its body panicked.
trait OnPanic {
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
fn guard<T: OnPanic>(body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| T::on_panic())
}

/// Computes a result under the guard, stores it in `*out` and returns its code. A panic
/// becomes a `DIFFID_INTERNAL` result, so `*out` is set whatever happens.
fn deliver(
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
    // SAFETY: `out` is non-NULL and, by the contract in the header, points to writable
    // storage for one pointer.
    unsafe { out.write(Box::into_raw(result)) };
    code
}

// ---------------------------------------------------------------------------------------
// Version and codes.

/// The version of the library, e.g. `"0.1.0"`: a static NUL-terminated string, never NULL.
/// Its numbers equal `DIFFID_VERSION_MAJOR`, `_MINOR` and `_PATCH` when the header and the
/// library come from the same release. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_version() -> *const c_char {
    guard(|| concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast())
}

/// The short, stable, lowercase name of `code`: `"ok"`, `"invalid_argument"`, `"io"`,
/// `"corrupt"`, `"truncated"`, `"trailing_data"`, `"unsupported"`, `"limit_exceeded"`,
/// `"cancelled"`, `"invalid_tar"`, `"misuse"`, `"internal"`; NULL for a number that is no
/// code. The string is static: never free it. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_code_name(code: diffid_code_value) -> *const c_char {
    guard(|| code_name(code).map_or(std::ptr::null(), CStr::as_ptr))
}

/// `ErrorKind::name()` as static C strings (a test checks they agree): a table built at run
/// time would be memory that leak checkers report at exit.
fn code_name(code: u32) -> Option<&'static CStr> {
    Some(match code {
        0 => c"ok",
        1 => c"invalid_argument",
        2 => c"io",
        3 => c"corrupt",
        4 => c"truncated",
        5 => c"trailing_data",
        6 => c"unsupported",
        7 => c"limit_exceeded",
        8 => c"cancelled",
        9 => c"invalid_tar",
        10 => c"misuse",
        11 => c"internal",
        _ => return None,
    })
}

/// A `diffid_code` received from C: any 32-bit number, checked before use (a Rust enum
/// holding an undefined value would be undefined behaviour). The header spells it
/// `diffid_code`.
pub type diffid_code_value = u32;

/// A `diffid_algorithm` received from C, checked before use. The header spells it
/// `diffid_algorithm`.
pub type diffid_algorithm_value = u32;

// ---------------------------------------------------------------------------------------
// Options.

/// Options of a digest computation: an opaque, growable set of settings made with
/// `diffid_options_new`, changed with the `diffid_options_set_*` functions and freed with
/// `diffid_options_free`. Every function that takes options accepts NULL for the defaults,
/// which compute exactly what Podman (containers/image) computes, with every safety limit
/// on. A function that takes options copies them: the options may be changed or freed as
/// soon as it returns.
///
/// Thread-safety: not safe to change from several threads at once, nor while another thread
/// reads them; reading the same options from several threads concurrently (passing them to
/// `diffid_digest_*` or `diffid_stream_new`) is safe.
pub struct diffid_options {
    opts: Options,
}

/// Makes options holding the defaults and stores them in `*out`; free them with
/// `diffid_options_free`. Returns `DIFFID_INVALID_ARGUMENT` when `out` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_options_new(out: *mut *mut diffid_options) -> diffid_code {
    guard(|| {
        if out.is_null() {
            return diffid_code::DIFFID_INVALID_ARGUMENT;
        }
        let opts = Box::new(diffid_options {
            opts: Options::default(),
        });
        // SAFETY: `out` is non-NULL and points to storage for one pointer (the contract).
        unsafe { out.write(Box::into_raw(opts)) };
        diffid_code::DIFFID_OK
    })
}

/// Frees options made by `diffid_options_new`. NULL is a no-op. Handles made with the
/// options are not affected.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_options_free(opts: *mut diffid_options) {
    guard(|| {
        if !opts.is_null() {
            // SAFETY: `opts` came from `diffid_options_new` and is freed once (the contract).
            drop(unsafe { Box::from_raw(opts) });
        }
    })
}

/// Applies `set` to the options behind `o`; `DIFFID_INVALID_ARGUMENT` when `o` is NULL.
fn set_option(o: *mut diffid_options, set: impl FnOnce(&mut Options) -> bool) -> diffid_code {
    guard(|| {
        // SAFETY: a non-NULL `o` came from `diffid_options_new`, and nobody else uses it
        // during this call (the contract).
        match unsafe { o.as_mut() }.map(|o| set(&mut o.opts)) {
            Some(true) => diffid_code::DIFFID_OK,
            _ => diffid_code::DIFFID_INVALID_ARGUMENT,
        }
    })
}

/// Sets the digest algorithm of both digests: `DIFFID_ALGORITHM_SHA256` (the default),
/// `DIFFID_ALGORITHM_SHA512` or `DIFFID_ALGORITHM_BLAKE3`. Returns
/// `DIFFID_INVALID_ARGUMENT`, changing nothing, for any other value or a NULL `o`.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_options_set_algorithm(
    o: *mut diffid_options,
    alg: diffid_algorithm_value,
) -> diffid_code {
    set_option(o, |opts| {
        let algorithm = match alg {
            0 => Algorithm::Sha256,
            1 => Algorithm::Sha512,
            2 => Algorithm::Blake3,
            _ => return false,
        };
        opts.algorithm = algorithm;
        true
    })
}

/// Accepts (and ignores) bytes after the last gzip member, as pigz, igzip and moby do, when
/// `on`. Off by default: containers/image rejects them (`DIFFID_TRAILING_DATA`).
#[unsafe(no_mangle)]
pub extern "C" fn diffid_options_set_lenient_gzip(o: *mut diffid_options, on: bool) -> diffid_code {
    set_option(o, |opts| {
        opts.lenient_gzip = on;
        true
    })
}

/// Accepts xz filter chains other than a lone LZMA2 (BCJ, delta, ARM64, ...) and decodes
/// them as the `xz` program does, when `on`. Off by default: containers/image rejects them
/// (`DIFFID_UNSUPPORTED`).
#[unsafe(no_mangle)]
pub extern "C" fn diffid_options_set_full_xz(o: *mut diffid_options, on: bool) -> diffid_code {
    set_option(o, |opts| {
        opts.full_xz = on;
        true
    })
}

/// Fails with `DIFFID_LIMIT_EXCEEDED` once the decoded stream exceeds `max` bytes; 0 (the
/// default) means no limit. Memory use is bounded either way.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_options_set_max_size(o: *mut diffid_options, max: u64) -> diffid_code {
    set_option(o, |opts| {
        opts.max_size = (max > 0).then_some(max);
        true
    })
}

/// Sets the memory a decoder may allocate for its window or dictionary, in bytes; an xz
/// block needing more fails with `DIFFID_LIMIT_EXCEEDED`. 0 means the default, 1 GiB. (zstd
/// windows are limited to 512 MiB regardless, as in containers/image.)
#[unsafe(no_mangle)]
pub extern "C" fn diffid_options_set_memory_limit(
    o: *mut diffid_options,
    bytes: u64,
) -> diffid_code {
    set_option(o, |opts| {
        opts.decoder_memory_limit = if bytes == 0 {
            DEFAULT_DECODER_MEMORY_LIMIT
        } else {
            bytes
        };
        true
    })
}

/// Sets the number of worker threads: 0 (the default) means one per core, 1 runs every
/// stage on the calling thread. Blobs smaller than 512 KiB never start a thread.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_options_set_threads(o: *mut diffid_options, n: u32) -> diffid_code {
    set_option(o, |opts| {
        opts.threads = n as usize;
        true
    })
}

/// When `on`, a decoded stream that is not a valid tar archive is an error
/// (`DIFFID_INVALID_TAR`) instead of a verdict in the result. Off by default.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_options_set_require_tar(o: *mut diffid_options, on: bool) -> diffid_code {
    set_option(o, |opts| {
        opts.require_tar = on;
        true
    })
}

/// The options behind `opts`, or the defaults for NULL.
fn options(opts: *const diffid_options) -> Options {
    // SAFETY: a non-NULL `opts` came from `diffid_options_new` and is not being changed
    // during this call (the contract).
    unsafe { opts.as_ref() }.map_or_else(Options::default, |o| o.opts.clone())
}

// ---------------------------------------------------------------------------------------
// One-call digests.

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
struct FdReader(c_int);

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

/// The `len` bytes at `data`; `None` when `data` is NULL and `len` is not 0.
fn bytes<'a>(data: *const u8, len: usize) -> Option<&'a [u8]> {
    if len == 0 {
        Some(&[])
    } else if data.is_null() {
        None
    } else {
        // SAFETY: `data` is non-NULL and valid for reads of `len` bytes during the call
        // (the contract).
        Some(unsafe { std::slice::from_raw_parts(data, len) })
    }
}

// ---------------------------------------------------------------------------------------
// Streams.

/// A digest computation fed piece by piece: `diffid_stream_new`, any number of
/// `diffid_stream_write`, one `diffid_stream_finish`, then `diffid_stream_free`. Blobs of
/// 512 KiB or more are decoded and hashed on worker threads while the caller writes.
///
/// Thread-safety: `diffid_stream_cancel` may be called from any thread at any time, also
/// while another thread is inside `diffid_stream_write` or `diffid_stream_finish`. Writes
/// and finish are serialized by a lock inside the stream, so calls from several threads are
/// safe but their order is whatever the threads make it; use one thread (or your own
/// ordering) for them. `diffid_stream_free` must not run concurrently with any other call
/// on the same stream. Different streams are independent.
pub struct diffid_stream {
    digester: Mutex<Digester>,
    /// Outside the lock, so that cancelling never waits for a write.
    cancel: CancelHandle,
}

// The contract above relies on this.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<diffid_stream>();
};

/// Starts a stream with the options `opts` (NULL for the defaults, copied) and stores it in
/// `*out`; free it with `diffid_stream_free`. No thread starts before the first 512 KiB
/// have been written. Returns `DIFFID_INVALID_ARGUMENT` when `out` is NULL; on failure
/// `*out` is set to NULL.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_stream_new(
    opts: *const diffid_options,
    out: *mut *mut diffid_stream,
) -> diffid_code {
    guard(|| {
        if out.is_null() {
            return diffid_code::DIFFID_INVALID_ARGUMENT;
        }
        let (stream, code) = match Digester::new(&options(opts)) {
            Ok(digester) => {
                let stream = Box::new(diffid_stream {
                    cancel: digester.cancel_handle(),
                    digester: Mutex::new(digester),
                });
                (Box::into_raw(stream), diffid_code::DIFFID_OK)
            }
            Err(e) => (std::ptr::null_mut(), code_of(e.kind())),
        };
        // SAFETY: `out` is non-NULL and points to storage for one pointer (the contract).
        unsafe { out.write(stream) };
        code
    })
}

/// Runs `f` on the stream's digester under its lock.
fn with_digester<T>(
    s: *const diffid_stream,
    f: impl FnOnce(&mut Digester) -> crate::Result<T>,
) -> crate::Result<T> {
    // SAFETY: a non-NULL `s` came from `diffid_stream_new` and is not being freed (the
    // contract); only shared references to the stream are ever made.
    let s = unsafe { s.as_ref() }.ok_or_else(|| invalid("stream"))?;
    // A poisoned lock means a panic inside a previous call: the digester's state is unknown.
    let mut digester = s.digester.lock().map_err(|_| {
        Error::new(
            ErrorKind::Internal,
            "the stream is unusable after a panic inside diffid",
        )
    })?;
    f(&mut digester)
}

/// Feeds the next `len` bytes at `data` to the stream. The bytes are copied before the call
/// returns; `data` may be NULL when `len` is 0. Blocks while the worker threads are behind
/// (memory stays bounded).
///
/// Returns `DIFFID_OK`, or the first error of the computation (`DIFFID_CORRUPT`,
/// `DIFFID_CANCELLED`, ...), after which every further write fails the same way: call
/// `diffid_stream_finish` for a result holding the message. Writing after
/// `diffid_stream_finish` gives `DIFFID_MISUSE`.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_stream_write(
    s: *mut diffid_stream,
    data: *const u8,
    len: usize,
) -> diffid_code {
    guard(|| {
        let result = with_digester(s, |d| {
            let data = bytes(data, len).ok_or_else(|| invalid("data"))?;
            d.write(data)
        });
        match result {
            Ok(()) => diffid_code::DIFFID_OK,
            Err(e) => code_of(e.kind()),
        }
    })
}

/// Ends the blob: waits for the worker threads, stores a new result in `*out` (digests, or
/// the first error of the computation with its message) and returns its code; free the
/// result with `diffid_result_free`, the stream with `diffid_stream_free`. Returns
/// `DIFFID_INVALID_ARGUMENT` without a result when `out` is NULL (the stream is left as it
/// was), and a result holding `DIFFID_MISUSE` when the stream has already finished.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_stream_finish(
    s: *mut diffid_stream,
    out: *mut *mut diffid_result,
) -> diffid_code {
    guard(|| deliver(out, || with_digester(s, Digester::finish)))
}

/// Cancels the stream from any thread, at any time, also while another thread is inside
/// `diffid_stream_write` or `diffid_stream_finish`: the worker threads stop, a write in
/// progress returns `DIFFID_CANCELLED` at its next 512 KiB chunk (or, if none is left,
/// completes), and every later write and finish gives `DIFFID_CANCELLED`. It does not wait
/// for the write (the stream's lock is not taken). Cancelling twice, or after finish, does
/// nothing. Returns `DIFFID_INVALID_ARGUMENT` when `s` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_stream_cancel(s: *const diffid_stream) -> diffid_code {
    guard(|| {
        // SAFETY: a non-NULL `s` came from `diffid_stream_new` and is not being freed (the
        // contract).
        match unsafe { s.as_ref() } {
            Some(s) => {
                s.cancel.cancel();
                diffid_code::DIFFID_OK
            }
            None => diffid_code::DIFFID_INVALID_ARGUMENT,
        }
    })
}

/// Frees a stream, finished or not; an unfinished stream is cancelled and its worker
/// threads are joined before this returns. NULL is a no-op. Must not run concurrently with
/// any other call on the same stream.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_stream_free(s: *mut diffid_stream) {
    guard(|| {
        if !s.is_null() {
            // SAFETY: `s` came from `diffid_stream_new`, is freed once, and no other call
            // on it is running (the contract).
            drop(unsafe { Box::from_raw(s) });
        }
    })
}

// ---------------------------------------------------------------------------------------
// Results.

/// The outcome of one digest computation: the digests, sizes, format and tar verdict, or
/// the error that replaced them (its code and message). Made by `diffid_digest_file`,
/// `diffid_digest_fd`, `diffid_digest_buffer` and `diffid_stream_finish`; freed with
/// `diffid_result_free`. Every string it returns is NUL-terminated, owned by the result and
/// valid until it is freed.
///
/// Thread-safety: a result never changes; any number of threads may read it at once. Free
/// it once, after every reader is done.
pub struct diffid_result {
    code: diffid_code,
    format: Option<Format>,
    format_name: Option<CString>,
    media_type: Option<CString>,
    blob_digest: Option<CString>,
    blob_size: u64,
    diff_id: Option<CString>,
    diff_size: u64,
    tar_valid: bool,
    tar_entries: u64,
    tar_end_marker: bool,
    tar_error: Option<CString>,
    error: Option<CString>,
}

impl diffid_result {
    fn new(result: crate::Result<Report>) -> Self {
        match result {
            Ok(r) => diffid_result {
                code: diffid_code::DIFFID_OK,
                format: Some(r.format),
                format_name: Some(c_string(r.format.name())),
                media_type: Some(c_string(r.media_type())),
                blob_digest: Some(c_string(&r.blob_digest.to_string())),
                blob_size: r.blob_size,
                diff_id: Some(c_string(&r.diff_id.to_string())),
                diff_size: r.diff_size,
                tar_valid: r.tar.valid,
                tar_entries: r.tar.entries,
                tar_end_marker: r.tar.end_marker,
                tar_error: r.tar.to_error().map(|e| c_string(&e.to_string())),
                error: None,
            },
            Err(e) => diffid_result {
                code: code_of(e.kind()),
                format: e.format(),
                format_name: e.format().map(|f| c_string(f.name())),
                media_type: None,
                blob_digest: None,
                blob_size: 0,
                diff_id: None,
                diff_size: 0,
                tar_valid: false,
                tar_entries: 0,
                tar_end_marker: false,
                tar_error: None,
                error: Some(c_string(&e.to_string())),
            },
        }
    }
}

/// Reads a field of the result behind `r`, or gives `none` when `r` is NULL.
fn read<T: OnPanic>(r: *const diffid_result, none: T, f: impl FnOnce(&diffid_result) -> T) -> T {
    guard(|| {
        // SAFETY: a non-NULL `r` came from this library and is not freed yet (the contract).
        unsafe { r.as_ref() }.map_or(none, f)
    })
}

fn c_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

/// The code of the result: `DIFFID_OK`, or the kind of error it holds.
/// `DIFFID_INVALID_ARGUMENT` when `r` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_result_code(r: *const diffid_result) -> diffid_code {
    read(r, diffid_code::DIFFID_INVALID_ARGUMENT, |r| r.code)
}

/// The message of the error the result holds, naming what was wrong and where, e.g.
/// `"gzip: invalid checksum (at compressed byte 1234)"`; NULL on success or when `r` is
/// NULL.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_result_error(r: *const diffid_result) -> *const c_char {
    read(r, std::ptr::null(), |r| c_ptr(&r.error))
}

/// The blob digest (over the raw bytes), as `"sha256:<64 hex digits>"` (or `sha512:`,
/// `blake3:`): the layer descriptor's digest. NULL when the result holds an error or `r` is
/// NULL.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_result_blob_digest(r: *const diffid_result) -> *const c_char {
    read(r, std::ptr::null(), |r| c_ptr(&r.blob_digest))
}

/// The size of the blob in bytes; 0 when the result holds an error or `r` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_result_blob_size(r: *const diffid_result) -> u64 {
    read(r, 0, |r| r.blob_size)
}

/// The DiffID (the digest of the decompressed stream), as `"sha256:<64 hex digits>"`: the
/// image config's `rootfs.diff_ids` entry. Equal to the blob digest for an uncompressed
/// blob. NULL when the result holds an error or `r` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_result_diff_id(r: *const diffid_result) -> *const c_char {
    read(r, std::ptr::null(), |r| c_ptr(&r.diff_id))
}

/// The size of the decompressed stream in bytes; 0 when the result holds an error or `r` is
/// NULL.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_result_diff_size(r: *const diffid_result) -> u64 {
    read(r, 0, |r| r.diff_size)
}

/// The detected compression. `DIFFID_FORMAT_NONE` also when the format is not known (an
/// error result from a file that could not be read, NULL `r`): `diffid_result_format_name`
/// tells the two apart.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_result_format(r: *const diffid_result) -> diffid_format {
    read(r, diffid_format::None, |r| {
        r.format.map_or(diffid_format::None, format_of)
    })
}

/// The name of the detected compression: `"none"`, `"gzip"`, `"bzip2"`, `"xz"` or
/// `"zstd"`; NULL when it is not known (an error before or outside decoding, NULL `r`).
#[unsafe(no_mangle)]
pub extern "C" fn diffid_result_format_name(r: *const diffid_result) -> *const c_char {
    read(r, std::ptr::null(), |r| c_ptr(&r.format_name))
}

/// The layer media type containers/image records for the blob, e.g.
/// `"application/vnd.oci.image.layer.v1.tar+zstd"` (bzip2 and xz, which have no OCI media
/// type, get `+gzip` as there). NULL when the result holds an error or `r` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_result_media_type(r: *const diffid_result) -> *const c_char {
    read(r, std::ptr::null(), |r| c_ptr(&r.media_type))
}

/// Whether the decompressed stream is a tar archive Go's `archive/tar` reads to its end
/// without error. false when the result holds an error or `r` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_result_tar_valid(r: *const diffid_result) -> bool {
    read(r, false, |r| r.tar_valid)
}

/// The number of tar entries read (up to the first tar error); 0 when the result holds an
/// error or `r` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_result_tar_entries(r: *const diffid_result) -> u64 {
    read(r, 0, |r| r.tar_entries)
}

/// Whether the tar end-of-archive marker (two zero blocks) was seen. false when the result
/// holds an error or `r` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_result_tar_end_marker(r: *const diffid_result) -> bool {
    read(r, false, |r| r.tar_end_marker)
}

/// Why the decompressed stream is not a valid tar archive, with the offset in the decoded
/// stream; NULL when it is valid, when the result holds an error, or when `r` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_result_tar_error(r: *const diffid_result) -> *const c_char {
    read(r, std::ptr::null(), |r| c_ptr(&r.tar_error))
}

/// Frees a result and every string it returned. NULL is a no-op.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_result_free(r: *mut diffid_result) {
    guard(|| {
        if !r.is_null() {
            // SAFETY: `r` came from this library and is freed once (the contract).
            drop(unsafe { Box::from_raw(r) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names_are_the_kind_names() {
        for kind in KINDS {
            let code = code_of(kind) as u32;
            assert_eq!(code, kind as u32);
            let name = unsafe { CStr::from_ptr(diffid_code_name(code)) };
            assert_eq!(name.to_str().unwrap(), kind.name());
        }
        let ok = unsafe { CStr::from_ptr(diffid_code_name(0)) };
        assert_eq!(ok.to_str().unwrap(), "ok");
        assert!(diffid_code_name(12).is_null());
        assert!(diffid_code_name(u32::MAX).is_null());
    }

    #[test]
    fn panics_become_internal() {
        assert_eq!(
            guard(|| -> diffid_code { panic!("a test panic") }),
            diffid_code::DIFFID_INTERNAL
        );
        assert!(guard(|| -> *const c_char { panic!("a test panic") }).is_null());
        // A result-making function still delivers a result, holding the error.
        let mut out = std::ptr::null_mut();
        let code = deliver(&mut out, || panic!("a test panic"));
        assert_eq!(code, diffid_code::DIFFID_INTERNAL);
        assert_eq!(diffid_result_code(out), diffid_code::DIFFID_INTERNAL);
        assert!(!diffid_result_error(out).is_null());
        assert!(diffid_result_blob_digest(out).is_null());
        diffid_result_free(out);
    }

    #[test]
    fn a_stream_poisoned_by_a_panic_reports_internal() {
        let mut s = std::ptr::null_mut();
        assert_eq!(
            diffid_stream_new(std::ptr::null(), &mut s),
            diffid_code::DIFFID_OK
        );
        let stream = unsafe { &*s };
        let poisoner = std::thread::spawn(move || {
            let _held = stream.digester.lock().unwrap();
            panic!("a test panic while holding the lock");
        });
        assert!(poisoner.join().is_err());
        assert_eq!(
            diffid_stream_write(s, b"x".as_ptr(), 1),
            diffid_code::DIFFID_INTERNAL
        );
        let mut r = std::ptr::null_mut();
        assert_eq!(
            diffid_stream_finish(s, &mut r),
            diffid_code::DIFFID_INTERNAL
        );
        assert_eq!(diffid_stream_cancel(s), diffid_code::DIFFID_OK);
        diffid_result_free(r);
        diffid_stream_free(s);
    }

    #[test]
    fn version_is_cargo_version() {
        let v = unsafe { CStr::from_ptr(diffid_version()) };
        assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
        let macros =
            format!("{DIFFID_VERSION_MAJOR}.{DIFFID_VERSION_MINOR}.{DIFFID_VERSION_PATCH}");
        assert_eq!(macros, crate::VERSION);
    }
}
