//! What a caller can choose. Every interface (Rust, C, Go, CLI) exposes the same set.

use crate::hash::Algorithm;

/// Options of one digest computation. `Options::default()` is what Podman would compute,
/// with every safety limit on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Digest algorithm of the blob digest and the DiffID. Default: SHA-256.
    pub algorithm: Algorithm,
    /// Accept (and ignore) bytes after the last gzip member, as pigz, igzip and moby do.
    /// Off by default: containers/image rejects them.
    pub lenient_gzip: bool,
    /// Accept xz filter chains other than a lone LZMA2 (BCJ, delta, ARM64, ...) and decode
    /// them, as the `xz` program does. Off by default: containers/image rejects them.
    pub full_xz: bool,
    /// Fail with [`ErrorKind::LimitExceeded`](crate::ErrorKind::LimitExceeded) once the
    /// decoded stream exceeds this many bytes. `None` (the default) or `Some(0)`: no limit
    /// (memory stays bounded anyway). 0 means "no limit" in every interface: C's
    /// `diffid_options_set_max_size(o, 0)`, Go's `WithMaxSize(0)`, the CLI's `--max-size 0`.
    pub max_size: Option<u64>,
    /// Memory a decoder may allocate for its window or dictionary, in bytes. An xz block
    /// needing more fails with `LimitExceeded` instead of allocating. Default: 1 GiB; 0 means
    /// the default, in every interface (C, Go, the CLI's `--memory-limit 0`).
    /// (zstd windows are limited to 512 MiB regardless, as containers/image does.)
    pub decoder_memory_limit: u64,
    /// The most worker threads this computation may use; 1 runs everything on the caller's
    /// thread. 0 (the default) means the process-wide worker budget ([`crate::workers`]: one
    /// per core unless set otherwise). Whatever this says, a computation takes only the
    /// threads the budget has free when it starts (and, for parallel decoding, later), so
    /// concurrent computations share the cores instead of each starting its own set.
    pub threads: usize,
    /// Treat a decoded stream that is not a valid tar archive as an error
    /// ([`ErrorKind::InvalidTar`](crate::ErrorKind::InvalidTar)) rather than a verdict.
    pub require_tar: bool,
}

/// The default decoder memory limit: 1 GiB.
pub const DEFAULT_DECODER_MEMORY_LIMIT: u64 = 1 << 30;

impl Default for Options {
    fn default() -> Self {
        Options {
            algorithm: Algorithm::Sha256,
            lenient_gzip: false,
            full_xz: false,
            max_size: None,
            decoder_memory_limit: DEFAULT_DECODER_MEMORY_LIMIT,
            threads: 0,
            require_tar: false,
        }
    }
}

impl Options {
    /// The options as the computation applies them: 0 read as documented on each field
    /// (`max_size: Some(0)` is no limit, `decoder_memory_limit: 0` is the default).
    pub(crate) fn normalized(&self) -> Options {
        let mut o = self.clone();
        o.max_size = o.max_size.filter(|&n| n > 0);
        if o.decoder_memory_limit == 0 {
            o.decoder_memory_limit = DEFAULT_DECODER_MEMORY_LIMIT;
        }
        o
    }

    /// The most worker threads these options allow: `threads`, or the worker budget when
    /// `threads` is 0.
    pub fn resolved_threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            crate::budget::workers()
        }
    }
}
