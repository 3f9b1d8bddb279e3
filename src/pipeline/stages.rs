//! The stages of one pass: decoding (detection, then the format's decoder), the DiffID stage
//! (hash and tar parse of the decoded stream), and the [`Report`] they make together.

use std::sync::Arc;

use crossbeam_channel::{Sender, select};

use super::{Chunk, DEPTH, Report, Shared};
use crate::decode::{Decode, Helpers, new_decoder};
use crate::detect::{Format, detect};
use crate::error::{Error, ErrorKind, Result};
use crate::hash::Hasher;
use crate::options::Options;
use crate::pool::{Buf, CHUNK, Pool};
use crate::tar::TarParser;
use crate::warning::{Warning, skippable_then_zstd};

/// The decode stage: detection on the first chunk, then the format's decoder.
pub(super) struct DecodeStage {
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
    pub(super) fn new(opts: &Options, helpers: Helpers) -> Self {
        DecodeStage {
            opts: opts.clone(),
            format: None,
            decoder: None,
            helpers: Some(helpers),
            // Room for the chunks in flight to a decoding reader's tap too (DEPTH more), so
            // they come back to the pool instead of being freed and allocated again.
            pool: Pool::new(CHUNK, 2 * DEPTH + 3),
            out: None,
            produced: 0,
        }
    }

    pub(super) fn format(&self) -> Format {
        self.format.unwrap_or(Format::None)
    }

    /// Detects the format from the first chunk (at least 8 bytes long unless it is the
    /// whole input) and sets up its decoder. Idempotent.
    pub(super) fn detect(&mut self, first: &[u8]) -> Result<Format> {
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
    pub(super) fn push(
        &mut self,
        chunk: &Chunk,
        emit: &mut dyn FnMut(Chunk) -> Result<()>,
    ) -> Result<()> {
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
    pub(super) fn finish(&mut self, emit: &mut dyn FnMut(Chunk) -> Result<()>) -> Result<()> {
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
pub(super) fn account(
    produced: &mut u64,
    max: Option<u64>,
    n: usize,
    format: Format,
) -> Result<()> {
    *produced += n as u64;
    match max {
        Some(max) if *produced > max => Err(Error::new(
            ErrorKind::LimitExceeded,
            format!("decoded stream exceeds the maximum size of {max} bytes (option max_size)"),
        )
        .in_format(format)),
        _ => Ok(()),
    }
}

/// The tap of a decoding reader: the DiffID stage's last consumer, a bounded channel of the
/// decoded chunks (shared, not copied: the reader holds the pool buffer until it has copied
/// it out, then the buffer goes back to the decoder's pool). A full channel blocks the
/// DiffID stage, which blocks the decoder, which blocks the input: the back-pressure.
pub(super) struct Tap {
    tx: Sender<Chunk>,
    shared: Arc<Shared>,
}

impl Tap {
    pub(super) fn new(tx: Sender<Chunk>, shared: &Arc<Shared>) -> Self {
        Tap {
            tx,
            shared: Arc::clone(shared),
        }
    }

    /// Hands `chunk` to the reader, waiting while its channel is full; fails when the
    /// computation failed or was cancelled meanwhile, or the reader is gone.
    fn send(&self, chunk: Chunk) -> Result<()> {
        let stopped = || {
            self.shared
                .error_or(|| Error::new(ErrorKind::Cancelled, "stopped"))
        };
        if self.shared.failed() {
            return Err(stopped());
        }
        select! {
            send(self.tx, chunk) -> sent => sent.map_err(|_| {
                Error::new(ErrorKind::Cancelled, "the decoding reader was dropped")
            }),
            recv(self.shared.stopped) -> _ => Err(stopped()),
        }
    }
}

/// The DiffID stage: hashes the decoded stream (unless it is the blob itself) and parses it
/// as tar, then hands each chunk to a decoding reader's tap when there is one.
pub(super) struct DiffStage {
    hasher: Hasher,
    tar: TarParser,
    tap: Option<Tap>,
    /// The stream's first bytes (up to [`HEAD`]): for an uncompressed blob, the blob's, where
    /// a leading zstd skippable frame would be.
    head: Vec<u8>,
}

/// How many first bytes [`DiffStage`] keeps.
const HEAD: usize = 4096;

impl DiffStage {
    pub(super) fn new(opts: &Options, tap: Option<Tap>) -> Self {
        DiffStage {
            hasher: Hasher::new(opts.algorithm),
            tar: TarParser::new(),
            tap,
            head: Vec::new(),
        }
    }

    /// Fails only when handing the chunk to the tap fails (see [`Tap`]).
    pub(super) fn push(&mut self, chunk: &Chunk, hash: bool) -> Result<()> {
        let data = chunk.bytes();
        if self.head.len() < HEAD {
            let n = (HEAD - self.head.len()).min(data.len());
            self.head.extend_from_slice(&data[..n]);
        }
        if hash {
            self.hasher.update(data);
        }
        self.tar.feed(data);
        match &self.tap {
            Some(tap) => tap.send(Arc::clone(chunk)),
            None => Ok(()),
        }
    }
}

/// Puts the stages' outcomes together.
pub(super) fn report(
    opts: &Options,
    format: Format,
    blob: Hasher,
    mut diff: DiffStage,
) -> Result<Report> {
    // The reader sees the end of its channel only once the report is made (see `reader`).
    let tap = diff.tap.take();
    let (blob_digest, blob_size) = blob.finish();
    let (diff_id, diff_size) = if format == Format::None {
        (blob_digest.clone(), blob_size)
    } else {
        diff.hasher.finish()
    };
    let mut tar = diff.tar;
    let tar_warnings = std::mem::take(&mut tar.warnings);
    let tar = tar.finish();
    if opts.require_tar {
        if let Some(err) = tar.to_error() {
            return Err(err.in_format(format));
        }
    }
    let mut warnings = Vec::new();
    if format == Format::None {
        warnings.extend(skippable_then_zstd(&diff.head));
    }
    if tar.valid && tar.entries == 0 {
        warnings.push(Warning::EmptyLayer);
    }
    warnings.extend(tar_warnings);
    let result = opts.check_expected(Report {
        format,
        blob_digest,
        blob_size,
        diff_id,
        diff_size,
        tar,
        warnings,
    });
    drop(tap);
    result
}
