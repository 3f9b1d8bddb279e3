//! The pipeline: the stages and the threads that join them.
//!
//! ```text
//!            ┌─> blob hash ───────────────────────────────> blob digest
//! caller ──> chunk (Arc, shared, not copied)
//!            └─> detect + decode ──> decoded chunk ──> DiffID hash + tar parse ──> tap
//! ```
//!
//! The tap exists only for a [`DecodingReader`]: the DiffID stage hands each decoded chunk,
//! once hashed and parsed, to the reader's bounded channel (see [`reader`]).
//!
//! The caller's thread reads (or receives `write`s) into recycled 512 KiB chunks and hands
//! each to the blob-hash stage and the decode worker; the decode worker hands decoded chunks
//! to the DiffID stage. Bounded channels give back-pressure, so memory stays bounded
//! whatever the input size. The first error of any stage is recorded once and stops every
//! stage; `finish` (or dropping the [`Digester`]) joins every worker.
//!
//! Which stage runs on which thread depends on the worker threads the call gets from the
//! process-wide budget ([`crate::budget`]; at most `Options::threads`), taken once the input's
//! first bytes tell whether it decodes in parallel: the first full chunk, or for a zstd frame
//! small enough to split that has not ended in it a few more (up to [`PEEK_MAX`], held back
//! until then):
//!
//! | tokens | caller's thread | worker threads |
//! |---|---|---|
//! | 0 | everything (inline) | — |
//! | 1 | read, blob hash | decode + DiffID/tar |
//! | 2 | read | decode; blob hash + DiffID/tar |
//! | 3 or more | read | blob hash; decode; DiffID/tar |
//! | 2 or more, input that decodes in parallel | read, blob hash | decode + DiffID/tar; the other tokens decode |
//!
//! An input that does not split never takes more than the three tokens its stages use: the
//! rest stay in the budget for concurrent calls.
//!
//! With two tokens the decoder, the critical path of every format that does not split, runs
//! alone on one worker and both hashes share the other, taking blob chunks and decoded chunks
//! as they come; the caller's thread only reads (for `digest_bytes`, a copy into the chunks).
//! Laid out as it was before (blob hash on the caller's thread, decoder and DiffID stage on a
//! worker each), three busy threads shared two cores and the decoder lost its core to the hashes
//! part of the time. The shared hash thread has less to do than the decoder: in the README's
//! profile of a one-frame zstd layer, SHA-256 of both streams took 0.64 s of CPU against
//! decoding's 0.88 s; gzip, whose inflate costs more per decoded byte, takes this layout too.
//! The criterion groups `sizes` and `sizes-cpu` (`benches/pipeline.rs`) time it against the
//! decoder alone at 4 and 40 MiB.
//!
//! Decoding is what costs the most wherever it splits (xz blocks, zstd frames, bzip2
//! blocks), so there every token but one goes to decoding, and the light DiffID hash shares
//! the thread that puts the decoded pieces back in order. Small inputs (less than one chunk in
//! all), uncompressed blobs (one hash: the DiffID is the blob digest) and `threads == 1` run
//! inline on the caller's thread, without starting any thread.

// The stages: decode, DiffID (hash and tar), and the report they make.
mod stages;

// The stages laid out on the caller's thread or on worker threads.
mod layout;

// The push `Digester` and its modes.
mod digester;

// The decoding reader: the decoded stream out, a tap on the DiffID stage.
mod reader;

// One gzip member decoded on several workers, for a file or a buffer.
pub(crate) mod gzip_par;

pub use digester::Digester;
pub use reader::{DecodingReader, PipeWriter, decoding_pipe, decompress_path, decompress_reader};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::detect::Format;
use crate::error::{Error, ErrorKind};
use crate::hash::Digest;
use crate::pool::{Buf, CHUNK};
use crate::tar::TarVerdict;
use crate::warning::Warning;

/// Chunks in flight on each channel.
const DEPTH: usize = 4;

/// The most input held back before the workers start, while its first bytes do not yet tell
/// whether it decodes in parallel (a zstd frame that has not ended: only a second frame after
/// it says the input splits):
/// the stages are laid out differently for the two cases. Zstd frames written in pieces of
/// up to several MiB (pzstd, per-chunk encoders) end within it.
const PEEK_MAX: usize = 8 * CHUNK;

type Chunk = Arc<Buf>;

/// Everything one pass computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The detected compression.
    pub format: Format,
    /// Digest of the blob's raw bytes.
    pub blob_digest: Digest,
    /// Size of the blob in bytes.
    pub blob_size: u64,
    /// Digest of the decompressed stream (equal to the blob digest when uncompressed).
    pub diff_id: Digest,
    /// Size of the decompressed stream in bytes.
    pub diff_size: u64,
    /// What the tar stage found.
    pub tar: TarVerdict,
    /// What is no error but an importer may want to know (an empty layer, compressed data
    /// behind a leading zstd skippable frame, entry types some extractors do not apply,
    /// data after the tar end marker), in the order found; empty for most layers.
    pub warnings: Vec<Warning>,
}

impl Report {
    /// The layer media type containers/image records for this blob.
    pub fn media_type(&self) -> &'static str {
        self.format.media_type()
    }
}

/// State shared by the caller and every worker: the first error, which also means "stop".
struct Shared {
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
    /// Dropped by the first `fail`: a thread blocked on a channel `select!`s on `stopped` to
    /// wake up when the computation fails or is cancelled (the decoding reader's tap).
    stop: Mutex<Option<Sender<()>>>,
    stopped: Receiver<()>,
}

impl Default for Shared {
    fn default() -> Self {
        let (stop, stopped) = bounded(0);
        Shared {
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            stop: Mutex::new(Some(stop)),
            stopped,
        }
    }
}

impl Shared {
    fn fail(&self, err: Error) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(err);
        }
        self.failed.store(true, Ordering::Release);
        drop(slot);
        // Wakes every `select!` on `stopped`.
        self.stop.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    fn error(&self) -> Option<Error> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The recorded error, or `fallback` when none was (a worker gave up for another reason).
    fn error_or(&self, fallback: impl FnOnce() -> Error) -> Error {
        self.error().unwrap_or_else(fallback)
    }
}

/// Stops a [`Digester`] from another thread.
#[derive(Clone)]
pub struct CancelHandle(Arc<Shared>);

impl CancelHandle {
    /// Cancels the computation: the digester's next (or current) call fails with
    /// [`ErrorKind::Cancelled`] and its workers stop. Safe to call from any thread, any
    /// number of times, also after it finished (then it does nothing).
    pub fn cancel(&self) {
        self.0
            .fail(Error::new(ErrorKind::Cancelled, "cancelled by the caller"));
    }
}
