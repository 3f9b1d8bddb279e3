//! One gzip member decoded on several workers, for an input read by position (a regular file,
//! a buffer): rapidgzip's marker/window algorithm (Knespel & Brunst, HPDC 2023) through the
//! patched `rapidgzip-core` 0.3.1 in `third_party/rapidgzip-core` (its `PATCH.md` says what
//! was changed: a knob that runs its parallel path with exactly the workers diffid gives it,
//! and a block-header check its own decoder lacked).
//!
//! ```text
//! caller's thread: rapidgzip coordinator ─> sink: CRC32 + ISIZE, DiffID hash + tar parse
//! decode workers (W tokens): rapidgzip's marker/window tasks on the file or buffer
//! blob worker (1 token): reads the input by position and hashes it
//! ```
//!
//! **When.** [`PARALLEL_MIN_BYTES`] and [`PARALLEL_MIN_WORKERS`] are the rule (see their
//! docs for how they were measured); `Options::gzip_parallel_workers` forces the path for
//! tests and benchmarks. Never for a stream (the input must be read by position), never with
//! `lenient_gzip`, never on a timing taken during the decode.
//!
//! **Checks.** The answers are those of the sequential path (`decode::gzip`, ISA-L), and so
//! is every error, because this path only ever *accepts*; anything it does not accept is
//! handed back and the caller reruns the sequential path from the start, which finds the
//! error and its offset exactly as it always does. Accepted only when all of these hold:
//! - diffid's own gzip decoder read the first [`HEADER_PREFIX`] bytes without error (the
//!   first member's header: reserved flags, header CRC16 as both zlib and pgzip check it, name
//!   and comment at most 511 bytes, and the start of its deflate data);
//! - rapidgzip-core decoded the whole input without error: strict framing (nothing after the
//!   last member), deflate data valid for zlib-rs and for the crate's own decoder (its workers'
//!   past the first grid task, which `tests/gzip_codes.rs` holds to zlib's verdicts), CRC32
//!   and ISIZE of every member;
//! - it found exactly one member (a later member's header would not have been checked by
//!   diffid: concatenated members take the sequential path, after this one gave up);
//! - diffid's own CRC32 and ISIZE of the decoded stream (computed here, on the caller's
//!   thread) match the last 8 bytes of the input, the member's trailer;
//! - the decoded size stays within `max_size`.
//!
//! Only the blob digest, the DiffID, the sizes and the tar verdict come out of this path; an
//! input it gives back costs one more (partial) decode, sequential this time. A panic in the
//! crate gives the input back too.
//!
//! **Budget and memory.** The call takes `W + 1` tokens from the worker budget before it
//! starts a thread (`W` decode workers, one blob hasher; rapidgzip's coordinator is the
//! caller's thread, which the budget does not count) and gives them back when it returns.
//! Decoded data in flight (from the crate's source): each grid task's output is capped at
//! 20 MiB of decoded bytes (20 x its 1 MiB of input), held as 16-bit symbols until its
//! window is known (40 MiB); at most `W` tasks run and `W + 2` wait for the coordinator, so
//! the worst case (a bomb, every task at its cap) is about `(2W + 2) x 40 MiB`: 320 MiB with
//! 3 workers. Ordinary layers (2-5x compression) hold a tenth of that. Plus 512 KiB chunks
//! here and one chunk of the input per thread.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rapidgzip_core::{Decoder, ReadAt};

use super::stages::{DiffStage, account, report};
use super::{DEPTH, Report};
use crate::budget::{self, Permit};
use crate::decode::{Helpers, new_decoder};
use crate::detect::{Format, detect};
use crate::error::{Error, Result};
use crate::hash::Hasher;
use crate::options::Options;
use crate::pool::{Buf, CHUNK, Pool};

/// The rule, part 1: the parallel path is taken only for an input (one gzip member) of at
/// least this many bytes.
///
/// rapidgzip-core cuts the compressed data into 1 MiB grid tasks, and its own admission
/// never considers its parallel path below 16 of them (`MINIMUM_GRID_TASKS` in its
/// `parallel/admission.rs`): below that, the block search at each task start, the marker
/// resolution and the thread starts are not paid back, and the whole decode takes ISA-L
/// a few tens of milliseconds anyway.
pub(crate) const PARALLEL_MIN_BYTES: u64 = 16 << 20;

/// The rule, part 2: the parallel path is taken only when the worker budget grants at least
/// this many decode workers, beside one token for the blob hash (so from 4 free tokens: by
/// default, 4 cores).
///
/// Measured with `cargo bench --bench gzip_parallel` on the development machine (2 cores,
/// load average about 20 from other jobs, so CPU time is the steady figure): on the 64 MiB
/// generated layer (28 MB `.gz`), the marker/window path takes 0.137 s of CPU with one
/// worker and 0.139 s with two (splitting costs no extra work), where `igzip -dc` takes
/// 0.11 s: 1.25x ISA-L's CPU per byte, so `W` workers decode in about 1.25/`W` of ISA-L's
/// time when they have cores. The caller's thread meanwhile hashes the decoded stream
/// (SHA-256 of the DiffID: about 0.47x ISA-L's time, the README's figures) and the blob
/// hash a thread of its own, so the stages need `W` + 2 cores. With 2 workers the model
/// gives 0.63x ISA-L's wall on 4 cores, but the 3 tokens of a 3-core budget leave the
/// coordinator and the blob hash sharing cores with the workers (about 0.8x); with 3 workers
/// (4 tokens) it gives 0.42x for the decoders and the DiffID hash becomes the wall (0.47x).
/// 3 is the conservative choice until a many-core run (`scripts/sweep.sh`) measures it.
///
/// Correction, found later: on that layer the 0.137 s were not the marker/window path but
/// the crate's fallback, its coordinator decoding nearly all the member with zlib-rs (a
/// stored block at the first task boundary; see the third patch in `PATCH.md`). With that
/// patch the workers decode it, at about 1.3x the fallback's CPU (the README's side-by-side
/// run): roughly 1.6x ISA-L's CPU per byte, 0.54x ISA-L's time with 3 workers, still close
/// to the DiffID hash's 0.47x, so the rule stands.
pub(crate) const PARALLEL_MIN_WORKERS: usize = 3;

/// How many first bytes of the input diffid's own gzip decoder reads before the parallel path
/// starts: more than the longest header diffid accepts (10 + 2 + 65 535 extra + 512 name +
/// 512 comment + 2 CRC16 bytes), so the first member's header is always checked whole.
pub(crate) const HEADER_PREFIX: usize = 128 << 10;

/// What the gzip parallel path did in the last digest call on this thread (for tests).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GzipParallel {
    /// Not tried: not gzip, a stream, `lenient_gzip`, the rule or the budget said no.
    NotTried,
    /// Tried and accepted: the report came from the parallel path.
    Decoded,
    /// Tried and given back: the sequential path computed the answer (or the error).
    FellBack,
}

thread_local! {
    static LAST: Cell<GzipParallel> = const { Cell::new(GzipParallel::NotTried) };
}

/// What the gzip parallel path did in the last `digest_path`, `digest_file` or
/// `digest_bytes` call on this thread. Internal, for tests.
#[doc(hidden)]
pub fn last_gzip_parallel() -> GzipParallel {
    LAST.with(Cell::get)
}

/// An input read by position.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    File(&'a File),
    Bytes(&'a [u8]),
}

impl Source<'_> {
    fn len(&self) -> io::Result<u64> {
        match self {
            Source::File(f) => ReadAt::len(*f),
            Source::Bytes(b) => Ok(b.len() as u64),
        }
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::File(f) => ReadAt::read_at(*f, offset, buf),
            Source::Bytes(b) => ReadAt::read_at(*b, offset, buf),
        }
    }

    /// Reads exactly `buf.len()` bytes at `offset`; fails at the end of the input.
    fn read_exact_at(&self, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(offset, buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    offset += n as u64;
                    buf = &mut buf[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Digests `source` on the gzip parallel path when the rule (or the option forcing it) picks
/// it and every check passes: `Some` with the report, or with an error found after the
/// decode (an expected digest that differs, `require_tar`). `None` when the path was not
/// taken or gave up: the caller then runs the sequential path from the input's start. `opts`
/// must be normalized.
pub(crate) fn digest(source: Source<'_>, opts: &Options) -> Option<Result<Report>> {
    LAST.with(|l| l.set(GzipParallel::NotTried));
    if opts.lenient_gzip || opts.resolved_threads() <= 1 {
        return None;
    }
    let len = source.len().ok()?;
    let mut head = [0u8; 16];
    let n = usize::try_from(len).unwrap_or(usize::MAX).min(head.len());
    source.read_exact_at(0, &mut head[..n]).ok()?;
    if detect(&head[..n]) != Format::Gzip {
        return None;
    }
    let forced = opts.gzip_parallel_workers;
    let (workers, tokens) = if forced > 0 {
        let tokens = budget::acquire(forced + 1);
        if tokens.count() < forced + 1 {
            return None;
        }
        (forced, tokens)
    } else {
        if len < PARALLEL_MIN_BYTES {
            return None;
        }
        let tokens = budget::acquire(opts.resolved_threads());
        let workers = tokens.count().saturating_sub(1);
        if workers < PARALLEL_MIN_WORKERS {
            return None;
        }
        (workers, tokens)
    };
    let outcome = run(source, len, opts, workers, tokens);
    LAST.with(|l| {
        l.set(match outcome {
            Some(_) => GzipParallel::Decoded,
            None => GzipParallel::FellBack,
        })
    });
    outcome
}

/// The parallel path proper, holding `tokens` (`workers + 1`) until it returns.
fn run(
    source: Source<'_>,
    len: u64,
    opts: &Options,
    workers: usize,
    tokens: Permit,
) -> Option<Result<Report>> {
    header_ok(source, len, opts)?;
    // The member's trailer, which diffid checks against its own CRC32 and ISIZE.
    if len < 18 {
        return None;
    }
    let mut trailer = [0u8; 8];
    source.read_exact_at(len - 8, &mut trailer).ok()?;
    let want_crc = u32::from_le_bytes(trailer[..4].try_into().unwrap());
    let want_isize = u32::from_le_bytes(trailer[4..].try_into().unwrap());

    let decoder = Decoder::builder()
        .decoder_threads(workers)
        .exact_parallel_workers(Some(workers))
        .output_limit(opts.max_size)
        .build()
        .ok()?;
    let stop = AtomicBool::new(false);
    let mut diff = DiffStage::new(opts, None);
    let mut sink = Sink {
        diff: &mut diff,
        pool: Pool::new(CHUNK, DEPTH),
        out: None,
        crc: crc32fast::Hasher::new(),
        produced: 0,
        max_size: opts.max_size,
    };
    let (decoded, blob) = std::thread::scope(|scope| {
        let blob = std::thread::Builder::new()
            .name("diffid-blob".into())
            .spawn_scoped(scope, || hash_blob(source, len, opts, &stop))
            .ok()?;
        // A panic in the crate is one more reason to give the input back.
        let decoded = catch_unwind(AssertUnwindSafe(|| match source {
            Source::File(f) => decoder.decode(f, &mut sink),
            Source::Bytes(b) => decoder.decode(b, &mut sink),
        }));
        let decoded = decoded
            .ok()
            .and_then(Result::ok)
            .and_then(|r| sink.flush_last().ok().map(|()| r));
        if decoded.is_none() {
            stop.store(true, Ordering::Release);
        }
        Some((decoded, blob.join().ok().flatten()))
    })?;
    drop(tokens);
    let (crc, produced) = (sink.crc.clone().finalize(), sink.produced);
    drop(sink);
    let decoded = decoded?;
    let blob = blob?;
    if decoded.member_count != 1
        || decoded.compressed_bytes != len
        || decoded.decompressed_bytes != produced
        || crc != want_crc
        || produced as u32 != want_isize
    {
        return None;
    }
    Some(report(opts, Format::Gzip, blob, diff))
}

/// Whether diffid's own (sequential) gzip decoder reads the first [`HEADER_PREFIX`] bytes
/// without error: the first member's header passes every rule diffid applies.
fn header_ok(source: Source<'_>, len: u64, opts: &Options) -> Option<()> {
    let n = usize::try_from(len)
        .unwrap_or(usize::MAX)
        .min(HEADER_PREFIX);
    let mut prefix = vec![0u8; n];
    source.read_exact_at(0, &mut prefix).ok()?;
    let mut decoder = new_decoder(Format::Gzip, opts, Helpers::none()).ok()??;
    let mut out = vec![0u8; CHUNK];
    let mut input = &prefix[..];
    while !input.is_empty() {
        let (consumed, produced) = decoder.decode(input, &mut out).ok()?;
        if consumed == 0 && produced == 0 {
            return None;
        }
        input = &input[consumed..];
    }
    Some(())
}

/// The blob hash, on its own thread: reads the input by position, [`CHUNK`] at a time.
/// `None` if reading fails or the decode failed meanwhile (`stop`).
fn hash_blob(source: Source<'_>, len: u64, opts: &Options, stop: &AtomicBool) -> Option<Hasher> {
    let mut hasher = Hasher::new(opts.algorithm);
    match source {
        Source::Bytes(b) => {
            for piece in b.chunks(CHUNK) {
                if stop.load(Ordering::Acquire) {
                    return None;
                }
                hasher.update(piece);
            }
        }
        Source::File(_) => {
            let mut buf = vec![0u8; CHUNK];
            let mut offset = 0u64;
            while offset < len {
                if stop.load(Ordering::Acquire) {
                    return None;
                }
                let want = usize::try_from(len - offset).unwrap_or(CHUNK).min(CHUNK);
                source.read_exact_at(offset, &mut buf[..want]).ok()?;
                hasher.update(&buf[..want]);
                offset += want as u64;
            }
            // The file must not have grown since its length was taken.
            let mut probe = [0u8; 1];
            if source.read_at(len, &mut probe).ok()? != 0 {
                return None;
            }
        }
    }
    Some(hasher)
}

/// Where rapidgzip-core writes the decoded stream (on the caller's thread): diffid's CRC32
/// and ISIZE, the size limit, then the DiffID stage in pipeline chunks.
struct Sink<'a> {
    diff: &'a mut DiffStage,
    pool: Pool,
    out: Option<Buf>,
    crc: crc32fast::Hasher,
    produced: u64,
    max_size: Option<u64>,
}

impl Sink<'_> {
    fn push(&mut self, buf: Buf) -> Result<()> {
        self.diff.push(&Arc::new(buf), true)
    }

    /// Hands the last, partial chunk on.
    fn flush_last(&mut self) -> Result<()> {
        match self.out.take().filter(|b| b.len() > 0) {
            Some(buf) => self.push(buf),
            None => Ok(()),
        }
    }
}

fn to_io(e: Error) -> io::Error {
    io::Error::other(e)
}

impl Write for Sink<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        account(&mut self.produced, self.max_size, data.len(), Format::Gzip).map_err(to_io)?;
        self.crc.update(data);
        let mut rest = data;
        while !rest.is_empty() {
            let buf = self.out.get_or_insert_with(|| self.pool.get());
            let n = buf.fill_from(rest);
            rest = &rest[n..];
            if buf.is_full() {
                let full = self.out.take().expect("output chunk");
                self.push(full).map_err(to_io)?;
            }
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
