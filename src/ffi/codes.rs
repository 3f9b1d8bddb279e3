//! The codes, algorithms and formats of the C API, and the names of the codes.

use std::ffi::{CStr, c_char};

use super::guard::guard;
use crate::{Algorithm, ErrorKind, Format};

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
    /// The computation was cancelled: `diffid_stream_cancel`, `diffid_reader_cancel`, or a
    /// reader freed (or a pipe reader's input given up) before its end.
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

pub(super) fn code_of(kind: ErrorKind) -> diffid_code {
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

pub(super) fn format_of(format: Format) -> diffid_format {
    match format {
        Format::None => diffid_format::None,
        Format::Gzip => diffid_format::Gzip,
        Format::Bzip2 => diffid_format::Bzip2,
        Format::Xz => diffid_format::Xz,
        Format::Zstd => diffid_format::Zstd,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::diffid_code_name;

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
}
