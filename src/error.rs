//! The one error type of the library.
//!
//! Every failure carries a stable [`ErrorKind`] (which the C ABI and the Go package map to
//! fixed codes), the format being decoded when it happened, where it happened when that is
//! known, and a message meant for a person.

use std::fmt;

use crate::detect::Format;

/// What went wrong, stable across releases. The numbers are the C ABI's `diffid_code`
/// values and are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ErrorKind {
    /// An argument was invalid (a bad option value, a null pointer across the C ABI, ...).
    InvalidArgument = 1,
    /// Reading the input failed.
    Io = 2,
    /// The compressed data is corrupt: bad header, bad checksum, invalid coded data.
    Corrupt = 3,
    /// The compressed data ended before the stream did.
    Truncated = 4,
    /// Bytes follow the end of the compressed data.
    TrailingData = 5,
    /// The data is well formed but uses a feature this library (or containers/image) does not
    /// accept by default: an xz filter chain other than LZMA2, a zstd dictionary, an unknown
    /// check type.
    Unsupported = 6,
    /// A configured limit was exceeded: the maximum decoded size, a decoder's memory limit,
    /// a zstd window larger than 512 MiB.
    LimitExceeded = 7,
    /// The caller cancelled the operation.
    Cancelled = 8,
    /// The decoded stream is not a valid tar archive and the caller asked for one.
    InvalidTar = 9,
    /// The object was used in a way its contract forbids (written after finish, ...).
    Misuse = 10,
    /// A bug in this library (a worker thread panicked). Please report it.
    Internal = 11,
    /// The blob digest or DiffID differs from the one the caller said to expect
    /// ([`Options::expect_blob_digest`](crate::Options::expect_blob_digest),
    /// [`Options::expect_diff_id`](crate::Options::expect_diff_id)).
    DigestMismatch = 12,
}

impl ErrorKind {
    /// A short, stable, lowercase name of the kind (used in the CLI's JSON output).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Io => "io",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Truncated => "truncated",
            ErrorKind::TrailingData => "trailing_data",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::LimitExceeded => "limit_exceeded",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::InvalidTar => "invalid_tar",
            ErrorKind::Misuse => "misuse",
            ErrorKind::Internal => "internal",
            ErrorKind::DigestMismatch => "digest_mismatch",
        }
    }
}

/// An error of this library: a kind, the format it concerns, and a message that says what
/// was wrong and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    format: Option<Format>,
    offset: Option<u64>,
    message: String,
}

impl Error {
    /// A new error of `kind` with a human-readable `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            format: None,
            offset: None,
            message: message.into(),
        }
    }

    /// The same error, noting which format's data it concerns ([`Format::None`] too: an
    /// uncompressed blob is a known format). The first format given sticks.
    pub fn in_format(mut self, format: Format) -> Self {
        if self.format.is_none() {
            self.format = Some(format);
        }
        self
    }

    /// The same error, noting the byte offset (of the compressed input) where it was found.
    /// The first offset given sticks: the innermost code, which knows best, sets it first.
    pub fn at(mut self, offset: u64) -> Self {
        if self.offset.is_none() {
            self.offset = Some(offset);
        }
        self
    }

    pub(crate) fn io(err: &std::io::Error) -> Self {
        Error::new(ErrorKind::Io, format!("reading input: {err}"))
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The format of the blob, `Some` as soon as its first bytes were read
    /// ([`Format::None`] for an uncompressed blob); `None` only when the input could not be
    /// read at all (an unopenable file, a read error before the first byte, a bad option).
    pub fn format(&self) -> Option<Format> {
        self.format
    }

    /// Byte offset in the blob (the compressed input, counted from 0) of the fault: the
    /// exact byte when the decoder knows it (a non-zero xz block padding byte, a gzip
    /// trailer, the end of a truncated input), else the start of the smallest unit that
    /// holds it (a zstd block or frame checksum, a bzip2 block, a gzip member), which the
    /// message names. `None` when the error concerns no place in the input (an option, a
    /// cancel, a limit on the decoded size, an invalid tar stream).
    pub fn offset(&self) -> Option<u64> {
        self.offset
    }

    /// The message alone, without format and offset.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(format) = self.format.filter(|&f| f != Format::None) {
            write!(f, "{}: ", format.name())?;
        }
        f.write_str(&self.message)?;
        if let Some(offset) = self.offset {
            write!(f, " (at compressed byte {offset})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
