//! Where the stages run: all on the caller's thread ([`Inline`]), or on worker threads
//! ([`Workers`], [`decode_worker`]) laid out as the module documentation of the pipeline says.

use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded};

use super::stages::{DecodeStage, DiffStage, Tap, report};
use super::{Chunk, DEPTH, Report, Shared};
use crate::budget::Permit;
use crate::decode::Helpers;
use crate::detect::Format;
use crate::error::{Error, ErrorKind, Result};
use crate::hash::Hasher;
use crate::options::Options;

/// All stages on the caller's thread.
pub(super) struct Inline {
    blob: Hasher,
    decode: DecodeStage,
    diff: DiffStage,
    /// Checked between decoded chunks: one input chunk can decode to gigabytes, and a
    /// cancel from another thread must not wait for all of them.
    shared: Arc<Shared>,
}

/// The recorded error, if any: how a stage running on the caller's thread sees a cancel.
pub(super) fn stop_if_failed(shared: &Shared) -> Result<()> {
    if shared.failed() {
        return Err(shared.error_or(|| Error::new(ErrorKind::Internal, "stopped")));
    }
    Ok(())
}

impl Inline {
    /// `helpers`: for an input that decodes in parallel, the helper threads its decoder may
    /// take from the budget later (a call that found the budget spent starts inline).
    pub(super) fn new(
        opts: &Options,
        shared: &Arc<Shared>,
        helpers: Helpers,
        tap: Option<Tap>,
    ) -> Self {
        Inline {
            blob: Hasher::new(opts.algorithm),
            decode: DecodeStage::new(opts, helpers),
            diff: DiffStage::new(opts, tap),
            shared: Arc::clone(shared),
        }
    }

    pub(super) fn push(&mut self, chunk: Chunk) -> Result<()> {
        self.blob.update(chunk.bytes());
        let hash = self.decode.detect(chunk.bytes())? != Format::None;
        let (diff, shared) = (&mut self.diff, &self.shared);
        self.decode.push(&chunk, &mut |c| {
            stop_if_failed(shared)?;
            diff.push(&c, hash)
        })
    }

    pub(super) fn finish(mut self, opts: &Options) -> Result<Report> {
        let format = self.decode.format();
        let (diff, shared) = (&mut self.diff, &self.shared);
        self.decode.finish(&mut |c| {
            stop_if_failed(shared)?;
            diff.push(&c, format != Format::None)
        })?;
        report(opts, format, self.blob, self.diff)
    }
}

/// The worker threads of one computation, and the budget tokens they hold.
pub(super) struct Workers {
    /// The blob hash: on a worker of its own, or on the caller's thread.
    blob: BlobStage,
    decode_tx: Sender<Chunk>,
    /// Returns the DiffID stage when it ran on the decoding thread too.
    decode: JoinHandle<Option<DiffStage>>,
    /// The DiffID worker, when it has a thread of its own.
    diff: Option<JoinHandle<Option<DiffStage>>>,
    format: Arc<OnceLock<Format>>,
    _tokens: Permit,
}

pub(super) enum BlobStage {
    Caller(Hasher),
    Worker(Sender<Chunk>, JoinHandle<Hasher>),
}

impl Workers {
    /// Starts the workers `tokens` pay for (at least one), laid out for an input that decodes
    /// in parallel or not (`splits`; see the module documentation).
    pub(super) fn start(
        opts: &Options,
        shared: &Arc<Shared>,
        splits: bool,
        mut tokens: Permit,
        mut tap: Option<Tap>,
    ) -> Result<Self> {
        let (decode_tx, decode_rx) = bounded::<Chunk>(DEPTH);
        let format = Arc::new(OnceLock::new());
        let spawn_err = |e: std::io::Error| {
            Error::new(
                ErrorKind::Internal,
                format!("cannot start a worker thread: {e}"),
            )
        };
        let k = tokens.count();
        // The DiffID stage runs on the decoding thread with one token, or when the other
        // tokens go to decoding. A decoder that splits its input gets the other tokens (maybe
        // none) and may take more from the budget as other calls give theirs back.
        let fold = k == 1 || splits;
        let helpers = if splits {
            Helpers::up_to(opts, tokens.split(k - 1))
        } else {
            Helpers::none()
        };
        let blob = if !fold && k >= 3 {
            let (blob_tx, blob_rx) = bounded::<Chunk>(DEPTH);
            let (shared, algorithm) = (Arc::clone(shared), opts.algorithm);
            let handle = std::thread::Builder::new()
                .name("diffid-blob".into())
                .spawn(move || {
                    let mut hasher = Hasher::new(algorithm);
                    for chunk in blob_rx {
                        if shared.failed() {
                            break;
                        }
                        hasher.update(chunk.bytes());
                    }
                    hasher
                })
                .map_err(spawn_err)?;
            BlobStage::Worker(blob_tx, handle)
        } else {
            BlobStage::Caller(Hasher::new(opts.algorithm))
        };

        let (diff_tx, diff) = if fold {
            (None, None)
        } else {
            let (diff_tx, diff_rx) = bounded::<Chunk>(DEPTH);
            let (shared, format, mut stage) = (
                Arc::clone(shared),
                Arc::clone(&format),
                DiffStage::new(opts, tap.take()),
            );
            let handle = std::thread::Builder::new()
                .name("diffid-diff".into())
                .spawn(move || {
                    let mut hash = None;
                    for chunk in diff_rx {
                        if shared.failed() {
                            return None;
                        }
                        let hash = *hash.get_or_insert_with(|| {
                            format.get().copied().unwrap_or(Format::None) != Format::None
                        });
                        if let Err(e) = stage.push(&chunk, hash) {
                            shared.fail(e);
                            return None;
                        }
                    }
                    Some(stage)
                })
                .map_err(spawn_err)?;
            (Some(diff_tx), Some(handle))
        };
        let decode = {
            let (shared, format, stage) = (
                Arc::clone(shared),
                Arc::clone(&format),
                DecodeStage::new(opts, helpers),
            );
            let diff = fold.then(|| DiffStage::new(opts, tap.take()));
            std::thread::Builder::new()
                .name("diffid-decode".into())
                .spawn(move || decode_worker(stage, diff, &decode_rx, diff_tx, &format, &shared))
                .map_err(spawn_err)?
        };
        Ok(Workers {
            blob,
            decode_tx,
            decode,
            diff,
            format,
            _tokens: tokens,
        })
    }

    pub(super) fn send(&mut self, chunk: Chunk) -> std::result::Result<(), ()> {
        match &mut self.blob {
            BlobStage::Caller(hasher) => hasher.update(chunk.bytes()),
            BlobStage::Worker(tx, _) => tx.send(Arc::clone(&chunk)).map_err(drop)?,
        }
        self.decode_tx.send(chunk).map_err(drop)
    }

    /// Closes the input and joins every worker.
    pub(super) fn join(self) -> (Option<Hasher>, Option<DiffStage>, Format) {
        let Workers {
            blob,
            decode_tx,
            decode,
            diff,
            format,
            _tokens,
        } = self;
        drop(decode_tx);
        let blob = match blob {
            BlobStage::Caller(hasher) => Some(hasher),
            BlobStage::Worker(tx, handle) => {
                drop(tx);
                handle.join().ok()
            }
        };
        let decoded = decode.join();
        let diff = match diff {
            Some(handle) => handle.join().ok().flatten().filter(|_| decoded.is_ok()),
            None => decoded.ok().flatten(),
        };
        (blob, diff, format.get().copied().unwrap_or(Format::None))
    }
}

/// The decoding thread: decodes, and hands the decoded chunks to the DiffID worker through
/// `tx`, or to `diff` on this thread. Returns `diff` when it ran here and nothing failed.
pub(super) fn decode_worker(
    mut stage: DecodeStage,
    mut diff: Option<DiffStage>,
    rx: &Receiver<Chunk>,
    tx: Option<Sender<Chunk>>,
    format: &OnceLock<Format>,
    shared: &Shared,
) -> Option<DiffStage> {
    let mut emit = |c: Chunk| match (&tx, &mut diff) {
        (Some(tx), _) => tx.send(c).map_err(|_| {
            shared.error_or(|| Error::new(ErrorKind::Internal, "DiffID worker stopped"))
        }),
        (None, Some(diff)) => {
            if shared.failed() {
                return Err(shared.error_or(|| Error::new(ErrorKind::Internal, "stopped")));
            }
            let hash = format.get().copied().unwrap_or(Format::None) != Format::None;
            diff.push(&c, hash)
        }
        (None, None) => unreachable!("decoded chunks go to a thread or to this one"),
    };
    for chunk in rx {
        if shared.failed() {
            return None;
        }
        // The DiffID stage reads the format when the first decoded chunk reaches it.
        let result = stage.detect(chunk.bytes()).and_then(|f| {
            let _ = format.set(f);
            stage.push(&chunk, &mut emit)
        });
        if let Err(e) = result {
            shared.fail(e);
            return None;
        }
    }
    let _ = format.set(stage.format());
    if let Err(e) = stage.finish(&mut emit) {
        shared.fail(e);
        return None;
    }
    drop(emit);
    // Stop the decoder's helpers before the caller goes on.
    drop(stage);
    diff
}
