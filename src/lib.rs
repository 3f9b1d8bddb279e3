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
pub use crate::pipeline::{
    CancelHandle, DecodingReader, Digester, PipeWriter, Report, decoding_pipe, decompress_path,
    decompress_reader,
};
pub use crate::tar::{TarError, TarVerdict};
pub use crate::warning::Warning;

/// The version of this library, as in `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Digests the file at `path`.
pub fn digest_path(path: impl AsRef<Path>, opts: &Options) -> Result<Report> {
    let path = path.as_ref();
    let mut file = File::open(path).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot open {}: {e}", path.display()),
        )
    })?;
    digest_reader(&mut file, opts)
}

/// Digests everything `reader` yields until its end.
pub fn digest_reader(mut reader: impl Read, opts: &Options) -> Result<Report> {
    let mut digester = Digester::new(opts)?;
    digester.read_from(&mut reader)?;
    digester.finish()
}

/// Digests a blob held in memory.
pub fn digest_bytes(data: &[u8], opts: &Options) -> Result<Report> {
    let mut digester = Digester::new(opts)?;
    digester.write(data)?;
    digester.finish()
}

/// The README's Rust examples, compiled by `cargo test` so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
