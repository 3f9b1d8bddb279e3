//! Where the stages run: all on the caller's thread ([`Inline`]), or on worker threads
//! ([`Workers`], [`decode_worker`]) laid out as the module documentation of the pipeline says.

use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded, select};

use super::stages::{DecodeStage, DiffStage, Tap, report};
use super::{Chunk, DEPTH, Report, Shared};
use crate::budget::Permit;
use crate::decode::Helpers;
use crate::detect::Format;
use crate::error::{Error, ErrorKind, Result};
use crate::hash::{Algorithm, Hasher};
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
    /// The blob hash: on the caller's thread, on a worker of its own, or on the DiffID worker.
    blob: BlobStage,
    decode_tx: Sender<Chunk>,
    /// Returns the DiffID stage when it ran on the decoding thread too.
    decode: JoinHandle<Option<DiffStage>>,
    /// The DiffID worker, when it has a thread of its own; it returns the blob hash too when
    /// it ran it ([`BlobStage::Hashes`]).
    diff: Option<JoinHandle<Hashed>>,
    format: Arc<OnceLock<Format>>,
    _tokens: Permit,
}

/// What the DiffID worker returns: the blob hash when it ran it, and its stage unless it
/// stopped early.
type Hashed = (Option<Hasher>, Option<DiffStage>);

pub(super) enum BlobStage {
    // Boxed: a hasher's state (256 bytes or more) would make every `Workers` that large.
    Caller(Box<Hasher>),
    Worker(Sender<Chunk>, JoinHandle<Hasher>),
    /// On the DiffID worker, beside the DiffID hash: the two hashes share one thread so that
    /// the decoder has the other core to itself.
    Hashes(Sender<Chunk>),
}

/// How the stages of one computation sit on its threads (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Caller: read, blob hash. One worker: decode + DiffID/tar (and, for an input that
    /// splits, the decoder's helpers on the other tokens).
    Fold,
    /// Caller: read. Workers: decode alone; blob hash + DiffID/tar.
    Hashes,
    /// Caller: read. Workers: blob hash; decode; DiffID/tar.
    Three,
}

impl Plan {
    fn of(tokens: usize, splits: bool) -> Plan {
        match (tokens, splits) {
            (1, _) | (_, true) => Plan::Fold,
            (2, false) => Plan::Hashes,
            _ => Plan::Three,
        }
    }
}

/// The most threads the stages of an input that does not split run on: blob hash, decode,
/// DiffID/tar.
const STAGE_THREADS: usize = 3;

impl Workers {
    /// The most budget tokens worth taking for an input that decodes in parallel or not
    /// (`splits`): a decoder that splits puts every token to work, the stages of any other
    /// input use at most [`STAGE_THREADS`]. A token taken beyond that would sit idle while
    /// concurrent calls go without (issue 14).
    pub(super) fn tokens_wanted(opts: &Options, splits: bool) -> usize {
        match splits {
            true => opts.resolved_threads(),
            false => opts.resolved_threads().min(STAGE_THREADS),
        }
    }

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
        // Whoever took `tokens` asked for no more than this; tokens past it would be idle.
        let idle = tokens
            .count()
            .saturating_sub(Self::tokens_wanted(opts, splits));
        drop(tokens.split(idle));
        let k = tokens.count();
        let plan = Plan::of(k, splits);
        // A decoder that splits its input gets the other tokens (maybe none) and may take
        // more from the budget as other calls give theirs back.
        let helpers = if splits {
            Helpers::up_to(opts, tokens.split(k - 1))
        } else {
            Helpers::none()
        };
        let (blob, blob_rx) = match plan {
            Plan::Three => {
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
                (BlobStage::Worker(blob_tx, handle), None)
            }
            Plan::Hashes => {
                let (blob_tx, blob_rx) = bounded::<Chunk>(DEPTH);
                (BlobStage::Hashes(blob_tx), Some(blob_rx))
            }
            Plan::Fold => (
                BlobStage::Caller(Box::new(Hasher::new(opts.algorithm))),
                None,
            ),
        };

        let (diff_tx, diff) = if plan == Plan::Fold {
            (None, None)
        } else {
            let (diff_tx, diff_rx) = bounded::<Chunk>(DEPTH);
            let (shared, format, stage, algorithm) = (
                Arc::clone(shared),
                Arc::clone(&format),
                DiffStage::new(opts, tap.take()),
                opts.algorithm,
            );
            let name = match plan {
                Plan::Hashes => "diffid-hashes",
                _ => "diffid-diff",
            };
            let handle = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || diff_worker(stage, &diff_rx, blob_rx, algorithm, &format, &shared))
                .map_err(spawn_err)?;
            (Some(diff_tx), Some(handle))
        };
        let decode = {
            let (shared, format, stage) = (
                Arc::clone(shared),
                Arc::clone(&format),
                DecodeStage::new(opts, helpers),
            );
            let diff = (plan == Plan::Fold).then(|| DiffStage::new(opts, tap.take()));
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
            BlobStage::Worker(tx, _) | BlobStage::Hashes(tx) => {
                tx.send(Arc::clone(&chunk)).map_err(drop)?
            }
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
        // Close every input before joining anything: the DiffID worker that hashes the blob
        // too ends only when both its channels are closed.
        let blob = match blob {
            BlobStage::Caller(hasher) => Some(Some(*hasher)),
            BlobStage::Worker(tx, handle) => {
                drop(tx);
                Some(handle.join().ok())
            }
            BlobStage::Hashes(tx) => {
                drop(tx);
                None
            }
        };
        let decoded = decode.join();
        let (blob_there, diff) = match diff {
            Some(handle) => match handle.join() {
                Ok((blob, diff)) => (blob, diff.filter(|_| decoded.is_ok())),
                Err(_) => (None, None),
            },
            None => (None, decoded.ok().flatten()),
        };
        (
            blob.unwrap_or(blob_there),
            diff,
            format.get().copied().unwrap_or(Format::None),
        )
    }
}

/// The DiffID worker: hashes and parses the decoded chunks from `rx` and, given `blob`, hashes
/// the blob's chunks from it too, taking whichever comes first. Returns the blob hash (when
/// it ran it) and the stage, or no stage when it stopped early.
fn diff_worker(
    mut stage: DiffStage,
    rx: &Receiver<Chunk>,
    mut blob: Option<Receiver<Chunk>>,
    algorithm: Algorithm,
    format: &OnceLock<Format>,
    shared: &Shared,
) -> Hashed {
    let mut blob_hasher = blob.as_ref().map(|_| Hasher::new(algorithm));
    let mut hash = None;
    let mut decoded_open = true;
    loop {
        if shared.failed() {
            return (None, None);
        }
        // Which stream (decoded or blob) the chunk comes from; none: that stream ended.
        let (decoded, chunk) = match (&blob, decoded_open) {
            (Some(b), true) => select! {
                recv(rx) -> c => (true, c.ok()),
                recv(b) -> c => (false, c.ok()),
            },
            (Some(b), false) => (false, b.recv().ok()),
            (None, true) => (true, rx.recv().ok()),
            (None, false) => break,
        };
        match (decoded, chunk) {
            (true, Some(chunk)) => {
                let hash = *hash.get_or_insert_with(|| {
                    format.get().copied().unwrap_or(Format::None) != Format::None
                });
                if let Err(e) = stage.push(&chunk, hash) {
                    shared.fail(e);
                    return (None, None);
                }
            }
            (true, None) => decoded_open = false,
            (false, Some(chunk)) => {
                if let Some(h) = blob_hasher.as_mut() {
                    h.update(chunk.bytes());
                }
            }
            (false, None) => blob = None,
        }
    }
    (blob_hasher, Some(stage))
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
    // Stop the decoder's helpers before the caller goes on.
    drop(stage);
    diff
}
