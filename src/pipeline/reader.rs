//! The decoding reader: the decoded stream out of the same pass that computes the digests.
//!
//! It is not a second pipeline: the [`Digester`] runs its stages as always, and its DiffID
//! stage, after hashing and tar-parsing each decoded chunk, hands the same chunk (an `Arc` of
//! the pool buffer, not a copy) to a bounded channel, the *tap*. [`DecodingReader`] is the
//! receiving end. A feeder drives the `Digester`: a thread of its own reading a
//! [`Read`] ([`decompress_reader`], [`decompress_path`]), or the caller's writes
//! ([`decoding_pipe`]). When the reader stops reading, the tap fills, the DiffID stage
//! blocks, then the decoder, then the feeder: memory stays bounded.
//!
//! When the feeder has finished the `Digester` (every final check done) it sends the outcome
//! on a second channel; the reader reports end of stream only after it has received an `Ok`
//! outcome there, so a clean EOF always means a verified stream.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded, select};

use super::{CancelHandle, Chunk, DEPTH, Digester, Report, Shared};
use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;

/// The decoded stream of a layer blob, as a [`Read`], and its [`Report`] once it has ended.
///
/// Made by [`decompress_reader`], [`decompress_path`] or [`decoding_pipe`]. The bytes it
/// yields are the blob's decompressed stream (the tar archive), exactly what `DEC -dc`
/// writes; the same pass computes the blob digest, the DiffID, both sizes and the tar
/// verdict, with every decoder's parallelism (parallel decoders deliver in order).
///
/// # The contract
///
/// - **End of stream means verified.** `read` returns `Ok(0)` (with a non-empty buffer)
///   only once the whole pipeline has finished without error: every final check of the
///   format passed (gzip CRC32 and ISIZE of every member, the xz index, block checks and
///   stream footer, the zstd content checksum and frame sizes, the bzip2 block and stream
///   CRCs), nothing but what the format allows follows the compressed data, the decoded
///   size is within [`Options::max_size`], and the tar verdict is made (an error with
///   [`Options::require_tar`] when it is not a valid archive). A corrupt, truncated or
///   over-limit stream, a failing input, or a cancel makes `read` return an error instead,
///   never `Ok(0)`; every later `read` returns the same error. The `io::Error` wraps the
///   library's [`Error`] (`get_ref()` / `into_inner()` and downcast), with an
///   [`io::ErrorKind`] of `InvalidData` (corrupt, truncated, trailing data, invalid tar),
///   `Unsupported`, `Interrupted` (cancelled) or `Other`.
/// - **Bytes are released before the final checks.** Decoded bytes are handed out as they
///   are decoded, 512 KiB at a time, before the checks that come at the end of a member,
///   block, frame or stream: a consumer may have read (up to) the whole decoded stream of a
///   blob whose trailer turns out corrupt. Only the final `Ok(0)` says all of it was right:
///   an extractor must treat what it wrote as provisional until then.
/// - **Back-pressure.** A consumer that reads slowly or not at all stops the pipeline:
///   at most 4 decoded chunks (2 MiB) wait in the tap on top of the digest pipeline's own
///   bound (see the README: a few MiB of chunks plus the decoder's window and, where it
///   decodes in parallel, its blocks in flight), however large the stream.
/// - **Early drop or cancel stops everything.** Dropping the reader before the end, or
///   [`DecodingReader::cancel_handle`]`.cancel()` from any thread, stops every worker;
///   drop joins the feeder thread, which joins the workers, so nothing is left running. A
///   feeder blocked in its input's `read` (a pipe or socket that yields nothing) is joined
///   only once that `read` returns.
/// - **Same digests.** The [`Report`] equals what [`crate::digest_reader`] computes on the
///   same bytes (the same stages compute it).
///
/// Thread-safety: `Send`, not `Sync`: one thread reads. Its [`CancelHandle`] may be used
/// from any thread; a [`PipeWriter`] is written from another thread than the reader.
pub struct DecodingReader {
    /// The tap: decoded chunks, in order.
    rx: Receiver<Chunk>,
    /// The feeder's outcome, sent once the `Digester` has finished (or failed).
    done: Receiver<Result<Report>>,
    shared: Arc<Shared>,
    /// The chunk being read and how much of it was read.
    current: Option<(Chunk, usize)>,
    /// How the stream ended, once it has.
    end: Option<Result<Report>>,
    /// The feeder thread, when the reader has one (not for a pipe).
    feeder: Option<JoinHandle<()>>,
}

/// The number of decoded chunks waiting in the tap: the reader's share of the memory bound.
const TAP_DEPTH: usize = DEPTH;

/// A decoding reader over everything `input` yields until its end.
///
/// `input` is read on a feeder thread named `diffid-feed`, which drives the same stages as
/// [`crate::digest_reader`] (and their worker threads) and blocks while the decoded output is
/// not being read. Fails only when that thread cannot start; every error of the stream
/// itself comes out of [`DecodingReader::read`] and [`DecodingReader::finish`].
pub fn decompress_reader<R: Read + Send + 'static>(
    mut input: R,
    opts: &Options,
) -> Result<DecodingReader> {
    let (tx, rx) = bounded(TAP_DEPTH);
    let (done_tx, done) = bounded(1);
    let mut digester = Digester::with_tap(opts, tx);
    let shared = Arc::clone(&digester.cancel_handle().0);
    let feeder_shared = Arc::clone(&shared);
    let feeder = std::thread::Builder::new()
        .name("diffid-feed".into())
        .spawn(move || {
            let result = digester
                .read_from(&mut input)
                .and_then(|_| digester.finish());
            end(&feeder_shared, digester, result, &done_tx);
        })
        .map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("cannot start the feeder thread: {e}"),
            )
        })?;
    Ok(DecodingReader {
        rx,
        done,
        shared,
        current: None,
        end: None,
        feeder: Some(feeder),
    })
}

/// A decoding reader over the file at `path` (see [`decompress_reader`]). Fails with
/// [`ErrorKind::Io`] when the file cannot be opened.
pub fn decompress_path(path: impl AsRef<Path>, opts: &Options) -> Result<DecodingReader> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot open {}: {e}", path.display()),
        )
    })?;
    decompress_reader(file, opts)
}

/// A decoding reader fed by the caller: write the blob into the [`PipeWriter`] (from one
/// thread) and read the decoded stream from the [`DecodingReader`] (from another), then
/// [`PipeWriter::close`] at the end of the input. No feeder thread: the writer's thread
/// drives the stages, and a write blocks while the decoded output is not being read, so the
/// two ends must not be used from the same thread unless the blob is small (less than the
/// chunks in flight) — use [`decompress_reader`] for that.
pub fn decoding_pipe(opts: &Options) -> Result<(PipeWriter, DecodingReader)> {
    let (tx, rx) = bounded(TAP_DEPTH);
    let (done_tx, done) = bounded(1);
    let digester = Digester::with_tap(opts, tx);
    let shared = Arc::clone(&digester.cancel_handle().0);
    let writer = PipeWriter {
        digester: Some(digester),
        done: done_tx,
        shared: Arc::clone(&shared),
    };
    let reader = DecodingReader {
        rx,
        done,
        shared,
        current: None,
        end: None,
        feeder: None,
    };
    Ok((writer, reader))
}

/// Records the feeder's outcome: a failure stops every stage and wakes the reader at once;
/// the digester's workers are joined before the reader can see the end.
fn end(shared: &Shared, digester: Digester, result: Result<Report>, done: &Sender<Result<Report>>) {
    if let Err(e) = &result {
        shared.fail(e.clone());
    }
    drop(digester);
    let _ = done.send(result);
}

/// The input end of a [`decoding_pipe`]: `write` the blob, then [`PipeWriter::close`].
///
/// Dropping it without `close` (or after a failed write) fails the stream: the reader gets
/// [`ErrorKind::Cancelled`], never a clean end. Thread-safety: `Send`; one thread writes.
pub struct PipeWriter {
    /// `None` once closed.
    digester: Option<Digester>,
    done: Sender<Result<Report>>,
    shared: Arc<Shared>,
}

impl PipeWriter {
    /// Feeds the next bytes of the blob (copied). Blocks while the decoded output is not
    /// being read. Fails with the stream's first error (a corrupt stream, a cancel, the
    /// reader dropped) or [`ErrorKind::Misuse`] after `close`.
    pub fn write_all(&mut self, data: &[u8]) -> Result<()> {
        let digester = self
            .digester
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::Misuse, "the pipe writer is already closed"))?;
        digester
            .write(data)
            .inspect_err(|e| self.shared.fail(e.clone()))
    }

    /// Ends the input: waits until every stage has finished (every final check), and
    /// returns `Ok` when the stream is fine — then the reader reaches its verified end once
    /// it has read everything — or the stream's error, which the reader reports too. Blocks
    /// while decoded output is not being read. A second call fails with
    /// [`ErrorKind::Misuse`].
    pub fn close(&mut self) -> Result<()> {
        let mut digester = self
            .digester
            .take()
            .ok_or_else(|| Error::new(ErrorKind::Misuse, "the pipe writer is already closed"))?;
        let result = digester.finish();
        let outcome = result.as_ref().map(drop).map_err(Clone::clone);
        end(&self.shared, digester, result, &self.done);
        outcome
    }

    /// A handle that cancels the stream (both ends) from any thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle(Arc::clone(&self.shared))
    }
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all(data).map_err(io_error)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        if let Some(digester) = self.digester.take() {
            let err = Error::new(
                ErrorKind::Cancelled,
                "the input ended without close (the pipe writer was dropped)",
            );
            end(&self.shared, digester, Err(err), &self.done);
        }
    }
}

/// The `io::Error` a reader returns for `err`, wrapping it.
fn io_error(err: Error) -> io::Error {
    let kind = match err.kind() {
        ErrorKind::Corrupt
        | ErrorKind::Truncated
        | ErrorKind::TrailingData
        | ErrorKind::InvalidTar => io::ErrorKind::InvalidData,
        ErrorKind::Unsupported => io::ErrorKind::Unsupported,
        ErrorKind::Cancelled => io::ErrorKind::Interrupted,
        ErrorKind::InvalidArgument => io::ErrorKind::InvalidInput,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, err)
}

impl DecodingReader {
    /// A handle that cancels the stream from any thread: a `read` blocked or to come fails
    /// with [`ErrorKind::Cancelled`] and every worker stops. Does nothing once the stream has
    /// ended.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle(Arc::clone(&self.shared))
    }

    /// The recorded failure, which wins over decoded bytes still waiting.
    fn failure(&self) -> Option<Error> {
        self.shared.failed().then(|| {
            self.shared
                .error_or(|| Error::new(ErrorKind::Internal, "stopped"))
        })
    }

    /// Waits for the next decoded chunk or the end; sets `current` or `end`.
    fn advance(&mut self) {
        if let Some(err) = self.failure() {
            self.end = Some(Err(err));
            return;
        }
        select! {
            recv(self.rx) -> chunk => match chunk {
                Ok(chunk) => self.current = Some((chunk, 0)),
                // Every decoded chunk was read: wait for the verdict of the final checks.
                // The chunks also end when the stream fails: a worker that saw the failure
                // flag can end them before `fail` wakes `stopped`, so this arm can come
                // after the check above passed. The writer (idle after its failed write,
                // its owner maybe waiting for this call) then never sends an outcome:
                // wait for the failure too, or this never returns.
                Err(_) => {
                    let lost = || Error::new(ErrorKind::Internal, "the feeder stopped without an outcome");
                    let outcome = select! {
                        recv(self.done) -> outcome => outcome.unwrap_or_else(|_| Err(lost())),
                        recv(self.shared.stopped) -> _ => self.done.try_recv().unwrap_or_else(|_| {
                            Err(self.failure().unwrap_or_else(lost))
                        }),
                    };
                    self.end = Some(outcome);
                }
            },
            recv(self.shared.stopped) -> _ => {
                self.end = Some(Err(self.failure().unwrap_or_else(|| {
                    Error::new(ErrorKind::Internal, "stopped")
                })));
            }
        }
    }

    /// The report of the stream: drains (discards) whatever decoded bytes have not been
    /// read, waits for the final checks, and returns the [`Report`] or the stream's error.
    /// May be called again; it returns the same outcome.
    pub fn finish(&mut self) -> Result<Report> {
        loop {
            self.current = None;
            if let Some(end) = &self.end {
                return end.clone();
            }
            self.advance();
        }
    }
}

impl DecodingReader {
    /// [`Read::read`] with the library's error (what the C ABI returns as a code).
    pub(crate) fn read_decoded(&mut self, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match &self.end {
                Some(Err(e)) => return Err(e.clone()),
                // Set only once every chunk was read.
                Some(Ok(_)) => return Ok(0),
                None => {}
            }
            if let Some(err) = self.failure() {
                self.current = None;
                self.end = Some(Err(err));
                continue;
            }
            if let Some((chunk, pos)) = &mut self.current {
                let src = &chunk.bytes()[*pos..];
                let n = src.len().min(buf.len());
                buf[..n].copy_from_slice(&src[..n]);
                *pos += n;
                if *pos == chunk.len() {
                    self.current = None;
                }
                return Ok(n);
            }
            self.advance();
        }
    }
}

impl Read for DecodingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_decoded(buf).map_err(io_error)
    }
}

impl Drop for DecodingReader {
    fn drop(&mut self) {
        if self.end.is_none() {
            self.shared.fail(Error::new(
                ErrorKind::Cancelled,
                "the decoding reader was dropped before the end",
            ));
        }
        self.current = None;
        if let Some(feeder) = self.feeder.take() {
            let _ = feeder.join();
        }
    }
}
