//! diffid: a container image layer's digests in one pass.
//!
//! For a layer blob — a tar stream, plain or compressed with gzip, bzip2, xz or zstd — one
//! call computes what an image importer records: the format, the **blob digest** and size
//! (over the raw bytes), the **DiffID** and size (over the decompressed stream), and whether
//! the stream is a valid tar archive. The answers are bit for bit those of containers/image
//! (Podman, Skopeo, Buildah), including which inputs are errors; reading, hashing, decoding
//! and tar parsing run as a pipeline on worker threads.
//!
//! ```no_run
//! let report = diffid::digest_path("layer.tar.xz", &diffid::Options::default())?;
//! println!("{} {}", report.blob_digest, report.diff_id);
//! # Ok::<(), diffid::Error>(())
//! ```
//!
//! Bad input is an [`Error`] naming what was wrong and where; no digest is ever computed
//! over a corrupt or truncated stream.

#![deny(unsafe_op_in_unsafe_fn)]

mod budget;
mod decode;
mod detect;
mod error;
pub mod ffi;
mod hash;
#[cfg(feature = "image")]
pub mod image;
mod options;
mod pipeline;
mod pool;
mod tar;
mod warning;

use std::fs::File;
use std::io::Read;
use std::path::Path;

pub use crate::budget::{WORKERS_ENV, set_workers, workers};
pub use crate::detect::{DETECT_LEN, Format, detect};
pub use crate::error::{Error, ErrorKind, Result};
pub use crate::hash::{Algorithm, Digest};
pub use crate::options::{DEFAULT_DECODER_MEMORY_LIMIT, Options};
#[doc(hidden)]
pub use crate::pipeline::gzip_par::{GzipParallel, last_gzip_parallel};
pub use crate::pipeline::{
    CancelHandle, DecodingReader, Digester, PipeWriter, Report, decoding_pipe, decompress_path,
    decompress_reader,
};
pub use crate::tar::{TarError, TarVerdict};
pub use crate::warning::Warning;

/// The version of this library, as in `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Digests the file at `path` (see [`digest_file`]). Fails with [`ErrorKind::Io`] when it
/// cannot be opened.
pub fn digest_path(path: impl AsRef<Path>, opts: &Options) -> Result<Report> {
    let path = path.as_ref();
    let mut file = File::open(path).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot open {}: {e}", path.display()),
        )
    })?;
    digest_file(&mut file, opts)
}

/// Digests an open file from its current position to its end, as [`digest_reader`] does.
///
/// A regular file read from its start may have one gzip member decoded on several workers
/// (large members, enough free worker threads; the README's performance section says when);
/// the report and every error are those of the sequential path. The file must not change
/// while it is digested. Other files (pipes, devices) are read as a stream.
pub fn digest_file(file: &mut File, opts: &Options) -> Result<Report> {
    use std::io::Seek;
    opts.validate()?;
    let regular = file.metadata().is_ok_and(|m| m.is_file());
    if regular && file.stream_position().is_ok_and(|p| p == 0) {
        let normalized = opts.normalized();
        if let Some(result) =
            pipeline::gzip_par::digest(pipeline::gzip_par::Source::File(file), &normalized)
        {
            return result;
        }
    }
    digest_reader(file, opts)
}

/// Digests everything `reader` yields until its end.
pub fn digest_reader(mut reader: impl Read, opts: &Options) -> Result<Report> {
    let mut digester = Digester::new(opts)?;
    digester.read_from(&mut reader)?;
    digester.finish()
}

/// Digests a blob held in memory. One gzip member may be decoded on several workers, as
/// [`digest_file`] says.
pub fn digest_bytes(data: &[u8], opts: &Options) -> Result<Report> {
    opts.validate()?;
    let normalized = opts.normalized();
    if let Some(result) =
        pipeline::gzip_par::digest(pipeline::gzip_par::Source::Bytes(data), &normalized)
    {
        return result;
    }
    let mut digester = Digester::new(opts)?;
    digester.write(data)?;
    digester.finish()
}

/// The README's Rust examples, compiled by `cargo test` so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
