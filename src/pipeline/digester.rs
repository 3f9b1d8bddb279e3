//! The push-style [`Digester`]: chunks the caller's writes, holds back the first ones until
//! they tell how the input decodes, then hands them to the stages inline or on workers.

use std::io::{ErrorKind as IoErrorKind, Read};
use std::sync::Arc;

use super::layout::{Inline, Workers};
use super::stages::{Tap, report};
use super::{CancelHandle, Chunk, DEPTH, PEEK_MAX, Report, Shared};
use crate::budget::{self, Permit};
use crate::decode::{Helpers, splits};
use crate::detect::{Format, detect};
use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;
use crate::pool::{Buf, CHUNK, Pool};

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
    /// A decoding reader's tap, handed to the DiffID stage when the stages start.
    tap: Option<Tap>,
}

enum Mode {
    /// Nothing dispatched yet.
    Idle,
    /// Full chunks held back until they tell how the input decodes (see [`PEEK_MAX`]), and,
    /// from the second on, their bytes in one piece, appended to as chunks come.
    Peek(Vec<Buf>, Vec<u8>),
    Inline(Box<Inline>),
    Threads(Workers),
    Finished,
}

impl Digester {
    /// A digester with the given options (0 in a limit read as [`Options`] documents).
    pub fn new(opts: &Options) -> Result<Self> {
        opts.validate()?;
        Ok(Digester {
            opts: opts.normalized(),
            shared: Arc::new(Shared::default()),
            pool: Pool::new(CHUNK, 2 * DEPTH + 2),
            current: None,
            mode: Mode::Idle,
            tap: None,
        })
    }

    /// A digester whose DiffID stage also hands every decoded chunk to `tap` (a decoding
    /// reader's channel; see [`super::reader`]).
    pub(super) fn with_tap(opts: &Options, tap: crossbeam_channel::Sender<Chunk>) -> Self {
        let shared = Arc::new(Shared::default());
        Digester {
            opts: opts.clone(),
            tap: Some(Tap::new(tap, &shared)),
            shared,
            pool: Pool::new(CHUNK, 2 * DEPTH + 2),
            current: None,
            mode: Mode::Idle,
        }
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
                    self.tap.take(),
                )));
            }
            Mode::Idle => return self.peek(vec![buf], Vec::new(), false),
            Mode::Peek(mut held, prefix) => {
                held.push(buf);
                return self.peek(held, prefix, false);
            }
            mode => self.mode = mode,
        }
        self.send(buf)
    }

    /// Holds `held` back until it tells whether the input decodes in parallel, it reaches
    /// [`PEEK_MAX`], or the input ends (`last`); then starts the stages and sends it on.
    /// `prefix`: the bytes of the first chunks of `held`, in one piece (nothing while only the
    /// first chunk is held: it is read where it is); the chunks it does not cover yet are
    /// appended here.
    fn peek(&mut self, held: Vec<Buf>, mut prefix: Vec<u8>, last: bool) -> Result<()> {
        let len: usize = held.iter().map(|b| b.len()).sum();
        let first = held[0].bytes();
        let format = detect(first);
        let verdict = match held.len() {
            1 => splits(format, first),
            n => {
                // Each chunk is copied once: gathering the whole prefix again, byte by byte,
                // for every chunk took 14% of the CPU time of a 40 MiB zstd layer (perf).
                prefix.reserve(PEEK_MAX.saturating_sub(prefix.len()));
                let mut covered = 0;
                let fresh = held.iter().position(|b| {
                    covered += b.len();
                    covered > prefix.len()
                });
                for b in &held[fresh.unwrap_or(n)..] {
                    prefix.extend_from_slice(b.bytes());
                }
                splits(format, &prefix)
            }
        };
        let parallel = match verdict {
            Some(parallel) => parallel,
            None if last || len >= PEEK_MAX => false,
            None => {
                self.mode = Mode::Peek(held, prefix);
                return Ok(());
            }
        };
        // An uncompressed blob is one hash (its DiffID is its blob digest) and a tar parse that
        // skips file contents: handing chunks to another thread costs more than it saves.
        let tokens = match format {
            Format::None => Permit::none(),
            _ => budget::acquire(Workers::tokens_wanted(&self.opts, parallel)),
        };
        self.mode = if tokens.count() == 0 {
            let helpers = match parallel {
                true => Helpers::up_to(&self.opts, Permit::none()),
                false => Helpers::none(),
            };
            Mode::Inline(Box::new(Inline::new(
                &self.opts,
                &self.shared,
                helpers,
                self.tap.take(),
            )))
        } else {
            match Workers::start(&self.opts, &self.shared, parallel, tokens, self.tap.take()) {
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
            Mode::Idle | Mode::Peek(..) | Mode::Finished => {
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
                    self.tap.take(),
                )));
                last.map_or(Ok(()), |buf| self.send(buf))
            }
            (Mode::Peek(mut held, prefix), last) => {
                held.extend(last);
                self.peek(held, prefix, true)
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
            Mode::Idle | Mode::Peek(..) | Mode::Finished => result.and_then(|()| {
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
