//! zstd (RFC 8878) through libzstd: concatenated frames, skippable frames after the first
//! (zstd:chunked keeps its table of contents in them; they add nothing to the DiffID),
//! content checksums verified, windows up to 512 MiB, no dictionaries.
//!
//! Huffman-coded literals in four streams are refused unless each stream decodes to exactly
//! its quarter of the output and ends exactly, as containers/image's decoder requires
//! (klauspost/compress `huff0.Decompress4X`: "stream overrun", "short output block"). libzstd
//! checks that only in its portable Huffman decoder, which `.cargo/config.toml` selects with
//! `-DHUF_DISABLE_FAST_DECODE`; a libzstd built without it is detected and refused (see
//! `strict_literals`). Such a fault is reported as corruption in the block holding the
//! literals, at that block's offset, like every libzstd error.
//!
//! One frame cannot be decoded in parallel, but several can: [`ParZstdDecoder`] decodes
//! whole frames on helper threads, with the same output and errors as [`ZstdDecoder`], the
//! streaming decoder here. The files: `frame.rs` walks a frame's headers to find where it
//! ends, `parallel.rs` is the parallel decoder.

mod frame;
mod parallel;
#[cfg(test)]
mod tests;
mod weights;

use std::sync::OnceLock;

use zstd::zstd_safe::{self, DCtx, DParameter, InBuffer, OutBuffer};

use self::frame::Units;
pub(super) use self::frame::splits;
pub(super) use self::parallel::ParZstdDecoder;
use super::Decode;
use crate::error::{Error, ErrorKind, Result};

/// containers/image (klauspost/compress) refuses windows over 512 MiB = 2^29.
const WINDOW_LOG_MAX: u32 = 29;

/// The largest window (as a power of two) a frame may have under the decoder memory limit
/// `limit` (bytes): the largest power of two within it, at most 2^29 (containers/image's
/// limit) and at least 2^10 (the smallest window the format has). libzstd allocates the
/// window (and ~130 KiB of block buffers beside it), so this is what bounds its memory; a frame
/// needing more is refused before anything is allocated, as `zstd -d --memory=LIMIT` does.
pub(super) fn window_log(limit: u64) -> u32 {
    (63 - limit.max(1).leading_zeros()).clamp(10, WINDOW_LOG_MAX)
}

/// The error of a frame whose window exceeds `2^window_log`.
fn window_error(window_log: u32) -> Error {
    if window_log >= WINDOW_LOG_MAX {
        return Error::new(
            ErrorKind::LimitExceeded,
            "frame window larger than 512 MiB (containers/image's limit)",
        );
    }
    Error::new(
        ErrorKind::LimitExceeded,
        format!(
            "frame window larger than {} bytes, the most the decoder memory limit allows \
             (decoder_memory_limit)",
            1u64 << window_log
        ),
    )
}

pub(super) struct ZstdDecoder {
    dctx: DCtx<'static>,
    /// The last call ended exactly at a frame boundary with everything flushed.
    at_boundary: bool,
    /// Frames (skippable included) completed so far.
    frames: u64,
    offset: u64,
    frame_start: u64,
    /// Frames with a window over `2^window_log` are refused.
    window_log: u32,
    /// The unit (block, checksum, ...) libzstd is being fed, for feeding it one at a time
    /// and naming it in errors.
    units: Units,
}

/// A zstd frame with corrupt Huffman literals: the first 2 KiB of a tar of this crate's
/// sources, `zstd -19 --no-check`, bit 7 of byte 17 flipped, so that the fourth of the four
/// literal streams does not end where its quarter of the output does. containers/image
/// rejects it ("corruption detected: stream overrun 4"), and so does libzstd's portable
/// Huffman decoder; its fast decoder (libzstd 1.5.x on x86-64 with BMI2 and on aarch64) does
/// not check where the streams end and decodes it to 2048 bytes.
static LAX_LITERALS_PROBE: &[u8] = include_bytes!("lax-literals.zst");

/// Whether the linked libzstd checks that each of the four Huffman streams of a block's
/// literals decodes to exactly its quarter of the output and ends exactly, as
/// containers/image (klauspost/compress `huff0.Decompress4X`) does. libzstd does so only
/// when built with `-DHUF_DISABLE_FAST_DECODE` (this repository's `.cargo/config.toml`), or
/// on a CPU where it falls back to its portable decoder. Found out once per process, by
/// decoding [`LAX_LITERALS_PROBE`] (a few microseconds).
fn strict_literals() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| {
        let mut out = vec![0u8; 4096];
        zstd_safe::decompress(&mut out[..], LAX_LITERALS_PROBE).is_err()
    })
}

/// A decompression context with our limits: windows up to `2^window_log`. An error if the
/// linked libzstd decodes literals containers/image rejects (see [`strict_literals`]):
/// diffid never digests what Podman refuses.
fn new_dctx(window_log: u32) -> Result<DCtx<'static>> {
    if !strict_literals() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "this build's libzstd does not check zstd Huffman literal streams as \
             containers/image does: build zstd-sys with HOST_CFLAGS (TARGET_CFLAGS when cross \
             compiling) set to -DHUF_DISABLE_FAST_DECODE, as diffid's .cargo/config.toml does",
        ));
    }
    let mut dctx = DCtx::try_create()
        .ok_or_else(|| Error::new(ErrorKind::Internal, "cannot allocate a zstd context"))?;
    dctx.set_parameter(DParameter::WindowLogMax(window_log))
        .map_err(|code| zstd_error(code, false))?;
    Ok(dctx)
}

impl ZstdDecoder {
    /// A decoder refusing frames with a window over `2^window_log` (see [`window_log`]).
    pub(super) fn new(window_log: u32) -> Result<Self> {
        ZstdDecoder::resume(0, 0, window_log)
    }

    /// A decoder in the state the sequential one has after `frames` frames ending at
    /// `offset` (the parallel decoder hands frames over to it there).
    fn resume(frames: u64, offset: u64, window_log: u32) -> Result<Self> {
        Ok(ZstdDecoder {
            dctx: new_dctx(window_log)?,
            window_log,
            at_boundary: frames > 0,
            frames,
            offset,
            frame_start: offset,
            units: Units::at(offset),
        })
    }

    /// Feeds libzstd one unit (see [`Units`]) at a time, so that an error is known to be in
    /// the unit that was being fed.
    fn run(&mut self, input: &[u8], output: &mut [u8]) -> Result<(usize, usize)> {
        let (mut ip, mut op) = (0, 0);
        loop {
            let end = ip + self.units.limit().min(input.len() - ip);
            let (c, p) = self.step(&input[ip..end], &mut output[op..])?;
            ip += c;
            op += p;
            if (c == 0 && p == 0) || ip == input.len() || op == output.len() {
                return Ok((ip, op));
            }
        }
    }

    fn step(&mut self, input: &[u8], output: &mut [u8]) -> Result<(usize, usize)> {
        let mut inb = InBuffer::around(input);
        let mut outb = OutBuffer::around(output);
        let result = self.dctx.decompress_stream(&mut outb, &mut inb);
        let (consumed, produced) = (inb.pos(), outb.pos());
        match result {
            Ok(hint) => {
                self.offset += consumed as u64;
                self.units.advance(&input[..consumed]);
                check_units(&mut self.units, self.frames + 1)?;
                if consumed > 0 || produced > 0 {
                    let ended = hint == 0;
                    // libzstd stops at the end of each frame, so a call that consumed input
                    // and ended a frame ended a new one, even when it began at a boundary.
                    if ended && (consumed > 0 || !self.at_boundary) {
                        self.frames += 1;
                        self.frame_start = self.offset;
                        self.units = Units::at(self.offset);
                    }
                    self.at_boundary = ended;
                }
                Ok((consumed, produced))
            }
            Err(code) => {
                let mut err = zstd_error(code, self.at_boundary && self.frames > 0);
                if err.kind() == ErrorKind::LimitExceeded {
                    err = window_error(self.window_log);
                }
                Err(in_unit(err, &self.units, self.frames + 1))
            }
        }
    }
}

// zstd-sys declares this function as returning its Rust enum `ZSTD_ErrorCode`: a libzstd
// that knows a code the bindings do not (a newer one, linked from the system) would hand
// back a value outside the enum, which is undefined behaviour. The C function returns an
// `enum` of non-negative values, i.e. an `unsigned int`, so it is declared here as that.
unsafe extern "C" {
    #[link_name = "ZSTD_getErrorCode"]
    fn error_code_of(function_result: usize) -> std::ffi::c_uint;
}

/// Maps a libzstd error code to our kinds; `between_frames` tells whether the decoder was
/// waiting for a new frame when it saw the bad bytes.
fn zstd_error(code: usize, between_frames: bool) -> Error {
    let name = zstd_safe::get_error_name(code);
    // ZSTD_ErrorCode values (zstd_errors.h), stable since libzstd 1.3.
    // SAFETY: ZSTD_getErrorCode only inspects the integer it is given, and returns a plain
    // integer (see `error_code_of`).
    let kind = match unsafe { error_code_of(code) } {
        10 if between_frames => {
            return Error::new(
                ErrorKind::TrailingData,
                "data after the last zstd frame is not a zstd frame",
            );
        }
        32 => {
            return Error::new(
                ErrorKind::Unsupported,
                "frame needs a dictionary (containers/image supports none)",
            );
        }
        16 => {
            return Error::new(
                ErrorKind::LimitExceeded,
                "frame window larger than 512 MiB (containers/image's limit)",
            );
        }
        // dstSize_tooSmall: our output buffers never are, so the frame decodes to more than
        // its header says. libzstd reports that as corruption_detected when it streams and
        // as this when it decodes the whole frame into a buffer of the declared size (the
        // parallel path; or the sequential one, when a whole frame fits in the input): one
        // answer, whatever the threads.
        70 => {
            return Error::new(
                ErrorKind::Corrupt,
                "invalid frame: Data corruption detected",
            );
        }
        12 | 14 | 40 | 42 => ErrorKind::Unsupported,
        _ => ErrorKind::Corrupt,
    };
    Error::new(kind, format!("invalid frame: {name}"))
}

/// The fault `units` found in what libzstd accepted (see [`Units::fault`]), in frame
/// `frame` (counted from 1): corrupt, at the start of the block it is in.
fn check_units(units: &mut Units, frame: u64) -> Result<()> {
    match units.fault() {
        None => Ok(()),
        Some((what, block, at)) => Err(Error::new(
            ErrorKind::Corrupt,
            format!("invalid frame: {what} in block {block} of frame {frame}"),
        )
        .at(at)),
    }
}

/// `err`, found in the unit `units` is at of frame `frame` (counted from 1): the message
/// names the unit, the offset is the unit's start. Bytes after the last frame that are no
/// frame are where they start.
fn in_unit(err: Error, units: &Units, frame: u64) -> Error {
    if err.kind() == ErrorKind::TrailingData {
        let (_, start) = units.unit(frame);
        return err.at(start);
    }
    let (unit, start) = units.unit(frame);
    Error::new(err.kind(), format!("{} in {unit}", err.message())).at(start)
}

impl Decode for ZstdDecoder {
    fn decode(&mut self, input: &[u8], output: &mut [u8]) -> Result<(usize, usize)> {
        self.run(input, output)
    }

    fn finish(&mut self, output: &mut [u8]) -> Result<(usize, bool)> {
        if self.at_boundary {
            return Ok((0, true));
        }
        let (_, produced) = self.run(&[], output)?;
        if produced > 0 {
            return Ok((produced, false));
        }
        if self.at_boundary {
            return Ok((0, true));
        }
        let (unit, start) = self.units.unit(self.frames + 1);
        Err(Error::new(
            ErrorKind::Truncated,
            format!("data ends inside {unit} (which starts at byte {start})"),
        )
        .at(self.offset))
    }
}
