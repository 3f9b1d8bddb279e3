//! What a caller can choose. Every interface (Rust, C, Go, CLI) exposes the same set.

use crate::error::{Error, ErrorKind, Result};
use crate::hash::{Algorithm, Digest};
use crate::pipeline::Report;

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
    /// Memory a decoder may allocate for its window or dictionary, in bytes: what an input
    /// may make a decoder allocate, checked before it does. Default: 1 GiB; 0 means the
    /// default, in every interface (C, Go, the CLI's `--memory-limit 0`).
    /// - xz: liblzma's memory use for a block (mostly the LZMA2 dictionary, as the block
    ///   header declares it), plus, on the parallel path, the blocks in flight; a block
    ///   needing more fails with [`ErrorKind::LimitExceeded`](crate::ErrorKind::LimitExceeded).
    /// - zstd: the frame's window (the largest back-reference distance, from its header),
    ///   which must be at most the largest power of two within the limit (and at most 512 MiB
    ///   whatever the limit, containers/image's own limit; at least 1 KiB is always allowed);
    ///   a frame with a larger window fails with `LimitExceeded`, as `zstd -d --memory=LIMIT`
    ///   refuses it. The decoder also keeps ~130 KiB of block buffers per frame decoding.
    /// - gzip (32 KiB window) and bzip2 (at most 900 kB blocks, ~4.5 MB of state) allocate
    ///   a fixed amount that this does not limit.
    ///
    /// Buffers between the stages are bounded separately (see the README's memory bound).
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
    /// The blob digest the blob must have: any other is an error of kind
    /// [`ErrorKind::DigestMismatch`], never a report. Its algorithm must be `algorithm`
    /// (else [`ErrorKind::InvalidArgument`] when the computation starts). `None`: no check.
    pub expect_blob_digest: Option<Digest>,
    /// The DiffID the blob must have (the image config's `rootfs.diff_ids` entry), checked
    /// like `expect_blob_digest`.
    pub expect_diff_id: Option<Digest>,
    /// Internal, for tests and benchmarks; not part of the stable interface (no C, Go or CLI
    /// counterpart). 0 (the default): the measured rule decides whether a gzip file or
    /// buffer is decoded on several workers ([`crate::pipeline`]'s `gzip_parallel`).
    /// `n > 0`: every gzip file or buffer (without `lenient_gzip`) takes the parallel path
    /// with exactly `n` decode workers when the worker budget grants their tokens (one more
    /// for the blob hash), whatever its size; the answers and errors are the same either way.
    #[doc(hidden)]
    pub gzip_parallel_workers: usize,
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
            expect_blob_digest: None,
            expect_diff_id: None,
            gzip_parallel_workers: 0,
        }
    }
}

impl Options {
    /// Fails with [`ErrorKind::InvalidArgument`] when an expected digest is of another
    /// algorithm than the one computed.
    pub(crate) fn validate(&self) -> Result<()> {
        for (what, d) in [
            ("blob digest", &self.expect_blob_digest),
            ("DiffID", &self.expect_diff_id),
        ] {
            if let Some(d) = d
                && d.algorithm() != self.algorithm
            {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "the expected {what} {d} is not a {} digest, the algorithm computed",
                        self.algorithm.name()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `report`, or [`ErrorKind::DigestMismatch`] when it differs from an expected digest.
    pub(crate) fn check_expected(&self, report: Report) -> Result<Report> {
        let checks = [
            ("blob digest", &self.expect_blob_digest, &report.blob_digest),
            ("DiffID", &self.expect_diff_id, &report.diff_id),
        ];
        for (what, want, got) in checks {
            if let Some(want) = want
                && want != got
            {
                return Err(Error::new(
                    ErrorKind::DigestMismatch,
                    format!("the {what} is {got}, not the expected {want}"),
                )
                .in_format(report.format));
            }
        }
        Ok(report)
    }

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
