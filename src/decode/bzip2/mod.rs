//! bzip2: concatenated streams, block and stream CRCs checked (by the decoder), nothing
//! allowed after the last stream.
//!
//! Blocks are independent, so [`ParBzip2Decoder`] decodes them in parallel; its output and
//! errors are those of [`Bzip2Decoder`], the sequential decoder here. The files: `scan.rs`
//! finds the magics at any bit offset, `forge.rs` makes streams (one-block streams around a
//! piece, synthetic prefixes with forged CRCs), `parallel/` is the parallel decoder (the
//! leader's cutting in `cut.rs`, the sequential fallback in `fallback.rs`).

#[cfg(test)]
mod craft;
mod forge;
mod gocheck;
mod parallel;
mod raw;
mod scan;
#[cfg(test)]
mod tests;

use bzip2::{Error as BzError, Status};

use self::gocheck::{GoCheck, Place, Refusal};
pub(super) use self::parallel::ParBzip2Decoder;
use self::raw::Decompress;
use super::Decode;
use crate::error::{Error, ErrorKind, Result};

/// The error the decoder gave in stream `stream` (counted from 1) starting at byte `start`,
/// at `place` (absolute bits and the block's number in its stream; see [`GoCheck::locate`])
/// when it is known: the error's offset is the byte holding the first bit of that block or
/// header, else the stream's start. Never where the decoder stopped: the decoder
/// (libbz2-rs-sys) reads up to 8 bytes ahead when they are there, so that place depends on
/// how the input was cut, and the sequential and parallel paths must give one answer.
fn stream_error(e: BzError, stream: u64, start: u64, place: Option<Place>) -> Error {
    let what = match e {
        BzError::DataMagic => "bad stream magic".to_string(),
        BzError::Data => "invalid data or CRC mismatch".to_string(),
        other => other.to_string(),
    };
    // A bad stream magic is the stream header's; the place found is an earlier one.
    let place = place.filter(|_| !matches!(e, BzError::DataMagic));
    let (message, at) = match place {
        None => (
            format!("{what} in stream {stream} (which starts at byte {start})"),
            start,
        ),
        Some(Place::Block { n, bit }) => (
            format!(
                "{what} in block {n} of stream {stream} (the block starts at bit {bit}, in \
                 byte {}; the stream at byte {start})",
                bit / 8
            ),
            bit / 8,
        ),
        Some(Place::After { n, bit }) => {
            let after = if n == 0 {
                "the first block header".to_string()
            } else {
                format!("the header after block {n}")
            };
            (
                format!(
                    "{what} at {after} of stream {stream} (at bit {bit}, in byte {}; the \
                     stream starts at byte {start})",
                    bit / 8
                ),
                bit / 8,
            )
        }
        Some(Place::End { bit }) => (
            format!(
                "{what} at the end of stream {stream}: its combined CRC does not match its \
                 blocks (the end-of-stream marker at bit {bit}, in byte {}; the stream starts \
                 at byte {start})",
                bit / 8
            ),
            bit / 8,
        ),
    };
    Error::new(ErrorKind::Corrupt, message).at(at)
}

/// `place` moved by `bits` and `blocks` (from the bytes a checker was fed to the input's).
fn shift(place: Place, bits: i64, blocks: i64) -> Place {
    let b = |bit: u64| (bit as i64 + bits).max(0) as u64;
    let n = |n: u64| (n as i64 + blocks).max(0) as u64;
    match place {
        Place::Block { n: k, bit } => Place::Block {
            n: n(k),
            bit: b(bit),
        },
        Place::After { n: k, bit } => Place::After {
            n: n(k),
            bit: b(bit),
        },
        Place::End { bit } => Place::End { bit: b(bit) },
    }
}

/// A block containers/image's decoder refuses (see `gocheck.rs`), block `block` of stream
/// `stream`, its magic at byte `byte`.
fn refused(r: &Refusal, stream: u64, block: u64, byte: u64) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        format!(
            "block {block} of stream {stream} (its magic in byte {byte}), which containers/image \
             (Go compress/bzip2) refuses: {}",
            r.what
        ),
    )
    .at(byte)
}

/// The input ended at byte `end`, inside stream `stream` starting at byte `start`, at
/// `place` (absolute bits, as [`stream_error`] takes it) when it is known.
fn truncated(stream: u64, start: u64, end: u64, place: Option<Place>) -> Error {
    let message = match place {
        Some(Place::Block { n, bit }) => format!(
            "data ends inside block {n} of stream {stream} (the block starts at bit {bit}, in \
             byte {}; the stream at byte {start})",
            bit / 8
        ),
        Some(Place::After { n, bit }) if n > 0 => format!(
            "data ends at the header after block {n} of stream {stream} (at bit {bit}, in \
             byte {}; the stream starts at byte {start})",
            bit / 8
        ),
        // The first block header, or an end-of-stream marker (which, read whole, ended a
        // stream: the input ends in the next one's header).
        _ => format!("data ends inside stream {stream} (which starts at byte {start})"),
    };
    Error::new(ErrorKind::Truncated, message).at(end)
}

pub(super) struct Bzip2Decoder {
    inner: Decompress,
    /// No byte of a next stream has been consumed since the last stream ended.
    at_boundary: bool,
    streams: u64,
    offset: u64,
    stream_start: u64,
    /// Go's reading of the same bytes, fed from byte `check_base` on.
    check: GoCheck,
    check_base: u64,
}

impl Bzip2Decoder {
    pub(super) fn new() -> Self {
        Bzip2Decoder::resume(0, 0)
    }

    /// A decoder in the state the sequential one has after `streams` streams ending at
    /// `offset` (the parallel decoder hands the input over to it there).
    fn resume(streams: u64, offset: u64) -> Self {
        Bzip2Decoder {
            inner: Decompress::new(),
            at_boundary: streams > 0,
            streams,
            offset,
            stream_start: offset,
            check: GoCheck::new(),
            check_base: offset,
        }
    }

    fn run(&mut self, input: &[u8], output: &mut [u8]) -> Result<(usize, usize)> {
        let (in0, out0) = (self.inner.total_in(), self.inner.total_out());
        let status = self.inner.decompress(input, output);
        let consumed = (self.inner.total_in() - in0) as usize;
        let produced = (self.inner.total_out() - out0) as usize;
        let mut go = self.check.feed(&input[..consumed], &self.inner.notes());
        if go.is_ok() && status.is_err() {
            // Go's reading may have refused a block in the bytes fed (before libbzip2's error).
            go = self.check.full_reading();
        }
        if let Err(r) = go {
            let byte = self.check_base + r.magic_bit / 8;
            return Err(refused(&r, self.streams + 1, r.block, byte));
        }
        match status {
            Ok(Status::StreamEnd) => {
                self.streams += 1;
                self.offset += consumed as u64;
                self.stream_start = self.offset;
                self.at_boundary = true;
                self.inner = Decompress::new();
                self.check.next_stream();
            }
            Ok(_) => {
                self.offset += consumed as u64;
                if consumed > 0 {
                    self.at_boundary = false;
                }
            }
            Err(BzError::DataMagic) if self.at_boundary => {
                return Err(Error::new(
                    ErrorKind::TrailingData,
                    format!(
                        "data after bzip2 stream {} is not a bzip2 stream",
                        self.streams
                    ),
                )
                .at(self.stream_start));
            }
            Err(e) => {
                let place = self.check.locate();
                let place = place.map(|p| shift(p, 8 * self.check_base as i64, 0));
                return Err(stream_error(e, self.streams + 1, self.stream_start, place));
            }
        }
        Ok((consumed, produced))
    }
}

impl Decode for Bzip2Decoder {
    fn decode(&mut self, input: &[u8], output: &mut [u8]) -> Result<(usize, usize)> {
        self.run(input, output)
    }

    fn finish(&mut self, output: &mut [u8]) -> Result<(usize, bool)> {
        if self.at_boundary {
            if let Err(r) = self.check.finish() {
                let byte = self.check_base + r.magic_bit / 8;
                return Err(refused(&r, self.streams, r.block, byte));
            }
            return Ok((0, true));
        }
        let (_, produced) = self.run(&[], output)?;
        if produced > 0 || self.at_boundary {
            return Ok((produced, self.at_boundary && produced == 0));
        }
        if let Err(r) = self.check.full_reading() {
            let byte = self.check_base + r.magic_bit / 8;
            return Err(refused(&r, self.streams + 1, r.block, byte));
        }
        let place = self.check.locate();
        let place = place.map(|p| shift(p, 8 * self.check_base as i64, 0));
        Err(truncated(
            self.streams + 1,
            self.stream_start,
            self.offset,
            place,
        ))
    }
}
