//! The pipeline: the stages and the threads that join them.
//!
//! ```text
//!            ┌─> blob hash ───────────────────────────────> blob digest
//! caller ──> chunk (Arc, shared, not copied)
//!            └─> detect + decode ──> decoded chunk ──> DiffID hash + tar parse
//! ```
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
//! without a content size a few more (up to [`PEEK_MAX`], held back until then):
//!
//! | tokens | caller's thread | worker threads |
//! |---|---|---|
//! | 0 | everything (inline) | — |
//! | 1 | read, blob hash | decode + DiffID/tar |
//! | 2 | read, blob hash | decode; DiffID/tar |
//! | 3 or more | read | blob hash; decode; DiffID/tar |
//! | 2 or more, input that decodes in parallel | read, blob hash | decode + DiffID/tar; the other tokens decode |
//!
//! Decoding is what costs the most wherever it splits (xz blocks, zstd frames, bzip2
//! blocks), so there every token but one goes to decoding, and the light DiffID hash shares
//! the thread that puts the decoded pieces back in order. Small inputs (less than one chunk in
//! all), uncompressed blobs (one hash: the DiffID is the blob digest) and `threads == 1` run
//! inline on the caller's thread, without starting any thread.

use std::io::{ErrorKind as IoErrorKind, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::budget::{self, Permit};
use crate::decode::{Decode, Helpers, new_decoder, splits};
use crate::detect::{Format, detect};
use crate::error::{Error, ErrorKind, Result};
use crate::hash::{Digest, Hasher};
use crate::options::Options;
use crate::pool::{Buf, CHUNK, Pool};
use crate::tar::{TarParser, TarVerdict};

/// Chunks in flight on each channel.
const DEPTH: usize = 4;

/// The most input held back before the workers start, while its first bytes do not yet tell
/// whether it decodes in parallel (a zstd frame without a content size that has not ended):
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
}

impl Report {
    /// The layer media type containers/image records for this blob.
    pub fn media_type(&self) -> &'static str {
        self.format.media_type()
    }
}

/// State shared by the caller and every worker: the first error, which also means "stop".
#[derive(Default)]
struct Shared {
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
}

impl Shared {
    fn fail(&self, err: Error) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(err);
        }
        self.failed.store(true, Ordering::Release);
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

/// The decode stage: detection on the first chunk, then the format's decoder.
struct DecodeStage {
    opts: Options,
    format: Option<Format>,
    decoder: Option<Box<dyn Decode>>,
    /// Handed to the decoder when it is made.
    helpers: Option<Helpers>,
    pool: Pool,
    out: Option<Buf>,
    produced: u64,
}

impl DecodeStage {
    fn new(opts: &Options, helpers: Helpers) -> Self {
        DecodeStage {
            opts: opts.clone(),
            format: None,
            decoder: None,
            helpers: Some(helpers),
            pool: Pool::new(CHUNK, DEPTH + 2),
            out: None,
            produced: 0,
        }
    }

    fn format(&self) -> Format {
        self.format.unwrap_or(Format::None)
    }

    /// Detects the format from the first chunk (at least 8 bytes long unless it is the
    /// whole input) and sets up its decoder. Idempotent.
    fn detect(&mut self, first: &[u8]) -> Result<Format> {
        if self.format.is_none() {
            let format = detect(first);
            let helpers = self.helpers.take().unwrap_or_else(Helpers::none);
            self.decoder =
                new_decoder(format, &self.opts, helpers).map_err(|e| e.in_format(format))?;
            self.format = Some(format);
        }
        Ok(self.format())
    }

    /// Decodes one input chunk, handing full decoded chunks to `emit`.
    fn push(&mut self, chunk: &Chunk, emit: &mut dyn FnMut(Chunk) -> Result<()>) -> Result<()> {
        let format = self.detect(chunk.bytes())?;
        let Some(decoder) = self.decoder.as_mut() else {
            // Uncompressed: the chunk is the tar stream; pass it on without a copy.
            account(&mut self.produced, self.opts.max_size, chunk.len(), format)?;
            return emit(Arc::clone(chunk));
        };
        let mut input = chunk.bytes();
        while !input.is_empty() {
            let out = self.out.get_or_insert_with(|| self.pool.get());
            let (consumed, produced) = decoder
                .decode(input, out.spare())
                .map_err(|e| e.in_format(format))?;
            out.advance(produced);
            input = &input[consumed..];
            let full = out.is_full();
            if consumed == 0 && produced == 0 {
                return Err(
                    Error::new(ErrorKind::Internal, "decoder made no progress").in_format(format)
                );
            }
            account(&mut self.produced, self.opts.max_size, produced, format)?;
            if full {
                emit(Arc::new(self.out.take().expect("output chunk")))?;
            }
        }
        Ok(())
    }

    /// The input has ended: drains the decoder and checks the stream ended properly.
    fn finish(&mut self, emit: &mut dyn FnMut(Chunk) -> Result<()>) -> Result<()> {
        let format = self.format();
        if let Some(decoder) = self.decoder.as_mut() {
            loop {
                let out = self.out.get_or_insert_with(|| self.pool.get());
                let (produced, done) = decoder
                    .finish(out.spare())
                    .map_err(|e| e.in_format(format))?;
                out.advance(produced);
                let full = out.is_full();
                account(&mut self.produced, self.opts.max_size, produced, format)?;
                if full {
                    emit(Arc::new(self.out.take().expect("output chunk")))?;
                }
                if done {
                    break;
                }
                if produced == 0 {
                    return Err(
                        Error::new(ErrorKind::Truncated, "compressed data ends early")
                            .in_format(format),
                    );
                }
            }
        }
        if let Some(out) = self.out.take().filter(|o| o.len() > 0) {
            emit(Arc::new(out))?;
        }
        Ok(())
    }
}

/// Counts decoded bytes against the maximum size.
fn account(produced: &mut u64, max: Option<u64>, n: usize, format: Format) -> Result<()> {
    *produced += n as u64;
    match max {
        Some(max) if *produced > max => Err(Error::new(
            ErrorKind::LimitExceeded,
            format!("decoded stream exceeds the maximum size of {max} bytes"),
        )
        .in_format(format)),
        _ => Ok(()),
    }
}

/// The DiffID stage: hashes the decoded stream (unless it is the blob itself) and parses it
/// as tar.
struct DiffStage {
    hasher: Hasher,
    tar: TarParser,
}

impl DiffStage {
    fn new(opts: &Options) -> Self {
        DiffStage {
            hasher: Hasher::new(opts.algorithm),
            tar: TarParser::new(),
        }
    }

    fn push(&mut self, data: &[u8], hash: bool) {
        if hash {
            self.hasher.update(data);
        }
        self.tar.feed(data);
    }
}

/// Puts the stages' outcomes together.
fn report(opts: &Options, format: Format, blob: Hasher, diff: DiffStage) -> Result<Report> {
    let (blob_digest, blob_size) = blob.finish();
    let (diff_id, diff_size) = if format == Format::None {
        (blob_digest.clone(), blob_size)
    } else {
        diff.hasher.finish()
    };
    let tar = diff.tar.finish();
    if opts.require_tar {
        if let Some(err) = tar.to_error() {
            return Err(err);
        }
    }
    Ok(Report {
        format,
        blob_digest,
        blob_size,
        diff_id,
        diff_size,
        tar,
    })
}

/// All stages on the caller's thread.
struct Inline {
    blob: Hasher,
    decode: DecodeStage,
    diff: DiffStage,
    /// Checked between decoded chunks: one input chunk can decode to gigabytes, and a
    /// cancel from another thread must not wait for all of them.
    shared: Arc<Shared>,
}

/// The recorded error, if any: how a stage running on the caller's thread sees a cancel.
fn stop_if_failed(shared: &Shared) -> Result<()> {
    if shared.failed() {
        return Err(shared.error_or(|| Error::new(ErrorKind::Internal, "stopped")));
    }
    Ok(())
}

impl Inline {
    /// `helpers`: for an input that decodes in parallel, the helper threads its decoder may
    /// take from the budget later (a call that found the budget spent starts inline).
    fn new(opts: &Options, shared: &Arc<Shared>, helpers: Helpers) -> Self {
        Inline {
            blob: Hasher::new(opts.algorithm),
            decode: DecodeStage::new(opts, helpers),
            diff: DiffStage::new(opts),
            shared: Arc::clone(shared),
        }
    }

    fn push(&mut self, chunk: Chunk) -> Result<()> {
        self.blob.update(chunk.bytes());
        let hash = self.decode.detect(chunk.bytes())? != Format::None;
        let (diff, shared) = (&mut self.diff, &self.shared);
        self.decode.push(&chunk, &mut |c| {
            stop_if_failed(shared)?;
            diff.push(c.bytes(), hash);
            Ok(())
        })
    }

    fn finish(mut self, opts: &Options) -> Result<Report> {
        let format = self.decode.format();
        let (diff, shared) = (&mut self.diff, &self.shared);
        self.decode.finish(&mut |c| {
            stop_if_failed(shared)?;
            diff.push(c.bytes(), format != Format::None);
            Ok(())
        })?;
        report(opts, format, self.blob, self.diff)
    }
}

/// The worker threads of one computation, and the budget tokens they hold.
struct Workers {
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

enum BlobStage {
    Caller(Hasher),
    Worker(Sender<Chunk>, JoinHandle<Hasher>),
}

impl Workers {
    /// Starts the workers `tokens` pay for (at least one), laid out for an input that decodes
    /// in parallel or not (`splits`; see the module documentation).
    fn start(
        opts: &Options,
        shared: &Arc<Shared>,
        splits: bool,
        mut tokens: Permit,
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
                DiffStage::new(opts),
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
                        stage.push(chunk.bytes(), hash);
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
            let diff = fold.then(|| DiffStage::new(opts));
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

    fn send(&mut self, chunk: Chunk) -> std::result::Result<(), ()> {
        match &mut self.blob {
            BlobStage::Caller(hasher) => hasher.update(chunk.bytes()),
            BlobStage::Worker(tx, _) => tx.send(Arc::clone(&chunk)).map_err(drop)?,
        }
        self.decode_tx.send(chunk).map_err(drop)
    }

    /// Closes the input and joins every worker.
    fn join(self) -> (Option<Hasher>, Option<DiffStage>, Format) {
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
fn decode_worker(
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
            diff.push(c.bytes(), hash);
            Ok(())
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

/// The push-style digester: `write` the blob in pieces of any size, then `finish`.
///
/// Workers start when the first full chunk (512 KiB) arrives, so a small blob is digested on
/// the caller's thread without starting any. Not `Sync`: one thread writes at a time; use
/// [`Digester::cancel_handle`] to stop it from another thread. Dropping it unfinished cancels
/// it and joins its workers.
pub struct Digester {
    opts: Options,
    shared: Arc<Shared>,
    pool: Pool,
    current: Option<Buf>,
    mode: Mode,
}

enum Mode {
    /// Nothing dispatched yet.
    Idle,
    /// Full chunks held back until they tell how the input decodes (see [`PEEK_MAX`]).
    Peek(Vec<Buf>),
    Inline(Box<Inline>),
    Threads(Workers),
    Finished,
}

impl Digester {
    /// A digester with the given options.
    pub fn new(opts: &Options) -> Result<Self> {
        Ok(Digester {
            opts: opts.clone(),
            shared: Arc::new(Shared::default()),
            pool: Pool::new(CHUNK, 2 * DEPTH + 2),
            current: None,
            mode: Mode::Idle,
        })
    }

    /// A handle that cancels this digester from any thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle(Arc::clone(&self.shared))
    }

    fn check(&self) -> Result<()> {
        if matches!(self.mode, Mode::Finished) {
            return Err(Error::new(
                ErrorKind::Misuse,
                "the digester has already finished",
            ));
        }
        match self.shared.error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Feeds the next bytes of the blob. The bytes are copied; the caller keeps `data`.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        self.check()?;
        while !data.is_empty() {
            let buf = self.current.get_or_insert_with(|| self.pool.get());
            let n = buf.fill_from(data);
            data = &data[n..];
            if buf.is_full() {
                let full = self.current.take().expect("current chunk");
                self.dispatch(full)?;
            }
        }
        Ok(())
    }

    /// Reads `reader` to its end into the digester (no intermediate copy); returns the
    /// number of bytes read.
    pub fn read_from(&mut self, reader: &mut dyn Read) -> Result<u64> {
        self.check()?;
        let mut total = 0u64;
        loop {
            let buf = self.current.get_or_insert_with(|| self.pool.get());
            match reader.read(buf.spare()) {
                Ok(0) => return Ok(total),
                Ok(n) => {
                    buf.advance(n);
                    total += n as u64;
                    if buf.is_full() {
                        let full = self.current.take().expect("current chunk");
                        self.dispatch(full)?;
                    }
                }
                Err(e) if e.kind() == IoErrorKind::Interrupted => {}
                Err(e) => {
                    let err = Error::io(&e);
                    self.shared.fail(err.clone());
                    return Err(err);
                }
            }
            if self.shared.failed() {
                return Err(self
                    .shared
                    .error_or(|| Error::new(ErrorKind::Internal, "stopped")));
            }
        }
    }

    fn dispatch(&mut self, buf: Buf) -> Result<()> {
        match std::mem::replace(&mut self.mode, Mode::Finished) {
            Mode::Idle if self.opts.resolved_threads() <= 1 => {
                self.mode = Mode::Inline(Box::new(Inline::new(
                    &self.opts,
                    &self.shared,
                    Helpers::none(),
                )));
            }
            Mode::Idle => return self.peek(vec![buf], false),
            Mode::Peek(mut held) => {
                held.push(buf);
                return self.peek(held, false);
            }
            mode => self.mode = mode,
        }
        self.send(buf)
    }

    /// Holds `held` back until it tells whether the input decodes in parallel, it reaches
    /// [`PEEK_MAX`], or the input ends (`last`); then starts the stages and sends it on.
    fn peek(&mut self, held: Vec<Buf>, last: bool) -> Result<()> {
        let len: usize = held.iter().map(|b| b.len()).sum();
        let first = held[0].bytes();
        let format = detect(first);
        let verdict = match held.len() {
            1 => splits(format, first),
            _ => {
                let prefix: Vec<u8> = held.iter().flat_map(|b| b.bytes()).copied().collect();
                splits(format, &prefix)
            }
        };
        let parallel = match verdict {
            Some(parallel) => parallel,
            None if last || len >= PEEK_MAX => false,
            None => {
                self.mode = Mode::Peek(held);
                return Ok(());
            }
        };
        // An uncompressed blob is one hash (its DiffID is its blob digest) and a tar parse that
        // skips file contents: handing chunks to another thread costs more than it saves.
        let tokens = match format {
            Format::None => Permit::none(),
            _ => budget::acquire(self.opts.resolved_threads()),
        };
        self.mode = if tokens.count() == 0 {
            let helpers = match parallel {
                true => Helpers::up_to(&self.opts, Permit::none()),
                false => Helpers::none(),
            };
            Mode::Inline(Box::new(Inline::new(&self.opts, &self.shared, helpers)))
        } else {
            match Workers::start(&self.opts, &self.shared, parallel, tokens) {
                Ok(workers) => Mode::Threads(workers),
                Err(e) => {
                    // Later calls see the error, not a misuse.
                    self.shared.fail(e.clone());
                    self.mode = Mode::Idle;
                    return Err(e);
                }
            }
        };
        held.into_iter().try_for_each(|buf| self.send(buf))
    }

    /// Hands a chunk to the running stages.
    fn send(&mut self, buf: Buf) -> Result<()> {
        let chunk = Arc::new(buf);
        match &mut self.mode {
            Mode::Inline(inline) => inline
                .push(chunk)
                .inspect_err(|e| self.shared.fail(e.clone())),
            Mode::Threads(workers) => {
                if self.shared.failed() || workers.send(chunk).is_err() {
                    return Err(self
                        .shared
                        .error_or(|| Error::new(ErrorKind::Internal, "a worker stopped")));
                }
                Ok(())
            }
            Mode::Idle | Mode::Peek(_) | Mode::Finished => {
                unreachable!("dispatch before start or after finish")
            }
        }
    }

    /// Ends the blob: returns the digests, or the first error any stage met. Every worker
    /// has stopped when it returns. A second call fails with [`ErrorKind::Misuse`].
    pub fn finish(&mut self) -> Result<Report> {
        if matches!(self.mode, Mode::Finished) {
            return Err(Error::new(
                ErrorKind::Misuse,
                "the digester has already finished",
            ));
        }
        let last = self.current.take().filter(|b| b.len() > 0);
        let result = match (std::mem::replace(&mut self.mode, Mode::Finished), last) {
            // Running workers are joined below; nothing else is left to do.
            (Mode::Threads(workers), _) if self.shared.failed() => {
                self.mode = Mode::Threads(workers);
                Ok(())
            }
            (_, _) if self.shared.failed() => {
                return Err(self
                    .shared
                    .error_or(|| Error::new(ErrorKind::Internal, "stopped")));
            }
            // Less than one chunk in all: no thread is worth starting.
            (Mode::Idle, last) => {
                self.mode = Mode::Inline(Box::new(Inline::new(
                    &self.opts,
                    &self.shared,
                    Helpers::none(),
                )));
                last.map_or(Ok(()), |buf| self.send(buf))
            }
            (Mode::Peek(mut held), last) => {
                held.extend(last);
                self.peek(held, true)
            }
            (mode, last) => {
                self.mode = mode;
                last.map_or(Ok(()), |buf| self.send(buf))
            }
        };
        match std::mem::replace(&mut self.mode, Mode::Finished) {
            Mode::Inline(inline) => result.and_then(|()| inline.finish(&self.opts)),
            Mode::Threads(workers) => {
                let (blob, diff, format) = workers.join();
                if let Some(err) = self.shared.error() {
                    return Err(err);
                }
                result?;
                match (blob, diff) {
                    (Some(blob), Some(diff)) => report(&self.opts, format, blob, diff),
                    _ => Err(Error::new(ErrorKind::Internal, "a worker thread panicked")),
                }
            }
            // The stages could not start: `result` has the error.
            Mode::Idle | Mode::Peek(_) | Mode::Finished => result.and_then(|()| {
                Err(self
                    .shared
                    .error_or(|| Error::new(ErrorKind::Internal, "no stage ran")))
            }),
        }
    }
}

impl Drop for Digester {
    fn drop(&mut self) {
        if let Mode::Threads(workers) = std::mem::replace(&mut self.mode, Mode::Finished) {
            self.shared
                .fail(Error::new(ErrorKind::Cancelled, "the digester was dropped"));
            workers.join();
        }
    }
}
