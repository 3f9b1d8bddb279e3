//! gzip (RFC 1952): concatenated members, every header field, CRC32 and ISIZE checked.
//!
//! The member framing is parsed here; the raw deflate data is inflated by one of two
//! backends chosen at build time: ISA-L (`isal.rs`, the default `isal` feature: the fastest
//! streaming inflate, which also computes the CRC32 of its output) or zlib-rs through
//! `flate2` (`zlib.rs`, pure Rust, for builds without ISA-L). Both give the same verdict on
//! every input the tests try. ISA-L itself accepts a dynamic block whose Huffman code is
//! incomplete, which zlib, gzip and Go (so containers/image) reject; diffid builds a patched
//! copy of ISA-L's inflate (`vendor/isa-l`) that rejects it as they do, keeping the
//! degenerate codes they both accept (no distance code; a single literal/length or distance
//! code of length 1).
//!
//! Strict by default: the input must end exactly after the last member. The header rules are
//! the intersection of what zlib and Go's gzip readers accept: reserved flag bits are an error
//! (zlib), a file name or comment longer than 511 bytes is an error (Go reads them into a
//! 512-byte buffer), and a header CRC16 must match both what zlib computes (the whole header)
//! and what pgzip computes (its first 10 bytes).

#[cfg(feature = "isal")]
#[path = "gzip/isal.rs"]
mod isal;
#[cfg(test)]
#[path = "gzip/tests.rs"]
mod tests;
#[cfg(any(test, not(feature = "isal")))]
#[path = "gzip/zlib.rs"]
mod zlib;

use super::Decode;
use crate::error::{Error, ErrorKind, Result};

/// The raw deflate backend compiled in.
#[cfg(feature = "isal")]
pub(crate) type Backend = isal::IsalInflater;
#[cfg(not(feature = "isal"))]
pub(crate) type Backend = zlib::ZlibInflater;

/// A raw deflate (RFC 1951) stream decoder that also keeps the CRC32 of its output.
pub(crate) trait Inflate: Send {
    /// A name for people (tests, diagnostics).
    #[allow(dead_code)]
    const NAME: &'static str;

    fn new() -> Self;

    /// Starts a new deflate stream (the next member).
    fn reset(&mut self);

    /// Inflates from `input` into `output`. Called with an empty `input` when the input has
    /// ended, to write out what the backend still holds.
    fn inflate(&mut self, input: &[u8], output: &mut [u8]) -> Result<Step, InflateError>;

    /// The CRC32 of everything inflated since the last reset.
    fn crc(&self) -> u32;

    /// Once the deflate data has ended: the whole bytes after it that the backend had already
    /// taken from the input (at most 8, the start of the trailer), in input order.
    fn leftover(&mut self) -> ([u8; 8], usize);
}

/// What one call of a backend's `inflate` did.
pub(crate) struct Step {
    consumed: usize,
    produced: usize,
    /// The deflate data ended (its last block is complete and all its output was written).
    end: bool,
}

/// Invalid deflate data, found after `consumed` bytes of the call's input.
pub(crate) struct InflateError {
    consumed: usize,
    what: String,
    fault: InflateFault,
}

/// What a backend could tell of invalid deflate data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InflateFault {
    /// A dynamic block's code length, literal/length or distance code is incomplete (its
    /// lengths leave part of the code space unused). zlib and Go's flate reject it; only a
    /// crafted or non-conforming encoder writes one. Reported by the ISA-L backend; zlib's
    /// messages do not tell it from an over-subscribed code.
    #[cfg_attr(not(feature = "isal"), allow(dead_code))]
    IncompleteCode,
    /// Anything else: `what` says it.
    Other,
}

const MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FRESERVED: u8 = 0xe0;
/// Go's gzip readers hold a name or comment, NUL included, in a 512-byte buffer.
const MAX_STRING: usize = 512;

enum State {
    /// Collecting a member header (the first, or one after a complete member).
    Header,
    /// Inflating a member's deflate data.
    Body,
    /// Collecting the 8-byte CRC32 + ISIZE trailer.
    Trailer,
    /// Lenient mode found bytes after the last member that do not start one: ignore them.
    Ignoring,
}

pub(crate) struct GzipDecoder<I = Backend> {
    lenient: bool,
    state: State,
    /// Header or trailer bytes collected so far.
    buf: Vec<u8>,
    inflater: I,
    /// Decoded bytes of the current member, mod 2^32.
    isize: u32,
    /// Members completed so far.
    members: u64,
    /// Compressed bytes consumed so far.
    offset: u64,
    /// Offset of the current member's first byte.
    member_start: u64,
    /// Offset of the current member's trailer (known once its deflate data has ended).
    trailer_start: u64,
}

enum Header {
    Incomplete,
    Complete(usize),
    /// Not a member at all: after the first member this is trailing data.
    NotMagic,
}

impl GzipDecoder {
    /// A decoder using the backend compiled in.
    pub(crate) fn new(lenient: bool) -> Self {
        GzipDecoder::with_backend(lenient)
    }
}

impl<I: Inflate> GzipDecoder<I> {
    fn with_backend(lenient: bool) -> Self {
        GzipDecoder {
            lenient,
            state: State::Header,
            buf: Vec::with_capacity(64),
            inflater: I::new(),
            isize: 0,
            members: 0,
            offset: 0,
            member_start: 0,
            trailer_start: 0,
        }
    }

    /// An error in the current member, found at byte `at` of the input; the message names
    /// the member and where it starts.
    fn member_err_at(&self, kind: ErrorKind, what: &str, at: u64) -> Error {
        Error::new(
            kind,
            format!(
                "{what} in member {} (which starts at byte {})",
                self.members + 1,
                self.member_start
            ),
        )
        .at(at)
    }

    /// An error in the current member's header, found at the member's start.
    fn member_err(&self, kind: ErrorKind, what: &str) -> Error {
        self.member_err_at(kind, what, self.member_start)
    }

    /// Parses the header collected in `self.buf`.
    fn parse_header(&self) -> Result<Header> {
        let b = &self.buf;
        let n = b.len().min(3);
        if b[..n] != MAGIC[..n] {
            return Ok(Header::NotMagic);
        }
        if b.len() < 10 {
            return Ok(Header::Incomplete);
        }
        let flags = b[3];
        if flags & FRESERVED != 0 {
            return Err(self.member_err(ErrorKind::Corrupt, "reserved header flag bits set"));
        }
        let mut pos = 10;
        if flags & FEXTRA != 0 {
            if b.len() < pos + 2 {
                return Ok(Header::Incomplete);
            }
            pos += 2 + usize::from(u16::from_le_bytes([b[pos], b[pos + 1]]));
            if b.len() < pos {
                return Ok(Header::Incomplete);
            }
        }
        for (flag, field) in [(FNAME, "file name"), (FCOMMENT, "comment")] {
            if flags & flag != 0 {
                let window = &b[pos..b.len().min(pos + MAX_STRING)];
                match window.iter().position(|&c| c == 0) {
                    Some(nul) => pos += nul + 1,
                    None if window.len() == MAX_STRING => {
                        return Err(self.member_err(
                            ErrorKind::Corrupt,
                            &format!("header {field} longer than {} bytes", MAX_STRING - 1),
                        ));
                    }
                    None => return Ok(Header::Incomplete),
                }
            }
        }
        if flags & FHCRC != 0 {
            if b.len() < pos + 2 {
                return Ok(Header::Incomplete);
            }
            // zlib checks the CRC of the whole header; Go's pgzip (containers/image) only of
            // its first 10 bytes. Accepted only when both agree, which they always do for a
            // header without optional fields.
            let want = u16::from_le_bytes([b[pos], b[pos + 1]]);
            let whole = crc32fast::hash(&b[..pos]) as u16;
            let fixed = crc32fast::hash(&b[..10]) as u16;
            if whole != want || fixed != want {
                let what = if whole == want {
                    "header CRC16 covers optional fields, which containers/image's reader \
                     does not accept"
                } else {
                    "header CRC16 mismatch"
                };
                return Err(self.member_err(ErrorKind::Corrupt, what));
            }
            pos += 2;
        }
        Ok(Header::Complete(pos))
    }

    /// Takes header bytes from `input`; returns how many were consumed.
    fn feed_header(&mut self, input: &[u8]) -> Result<usize> {
        let before = self.buf.len();
        // Headers are small; take a bounded bite so a huge input is not copied whole.
        let take = input.len().min(1024);
        self.buf.extend_from_slice(&input[..take]);
        match self.parse_header()? {
            Header::Incomplete => Ok(take),
            Header::Complete(len) => {
                self.buf.clear();
                self.state = State::Body;
                self.inflater.reset();
                self.isize = 0;
                Ok(len - before)
            }
            Header::NotMagic => {
                self.buf.truncate(before);
                if self.lenient && self.members > 0 {
                    self.state = State::Ignoring;
                    return Ok(input.len());
                }
                Err(self.trailing_error())
            }
        }
    }

    fn trailing_error(&self) -> Error {
        Error::new(
            ErrorKind::TrailingData,
            format!(
                "data after the end of gzip member {} is not a gzip member \
                 (containers/image rejects it; option lenient_gzip ignores it)",
                self.members
            ),
        )
        .at(self.member_start)
    }

    fn inflate(&mut self, input: &[u8], output: &mut [u8]) -> Result<(usize, usize)> {
        let step = self
            .inflater
            .inflate(input, output)
            .map_err(|e| match e.fault {
                // Where in the member the block starts is not known exactly (ISA-L reads
                // ahead): the error is at the member's start, which the message names.
                InflateFault::IncompleteCode => Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "incomplete Huffman code in a dynamic block of member {} (which \
                         starts at byte {}); zlib and containers/image reject it",
                        self.members + 1,
                        self.member_start
                    ),
                )
                .at(self.member_start),
                InflateFault::Other => self.member_err_at(
                    ErrorKind::Corrupt,
                    &format!("invalid deflate data ({})", e.what),
                    self.offset + e.consumed as u64,
                ),
            })?;
        let (consumed, produced) = (step.consumed, step.produced);
        self.isize = self.isize.wrapping_add(produced as u32);
        if step.end {
            // The backend may have read the first bytes of the trailer already: they are
            // counted as consumed and collected here.
            let (bytes, n) = self.inflater.leftover();
            self.trailer_start = self.offset + consumed as u64 - n as u64;
            self.state = State::Trailer;
            self.buf.clear();
            self.buf.extend_from_slice(&bytes[..n]);
            if self.buf.len() == 8 {
                self.check_trailer()?;
            }
        } else if consumed == 0 && produced == 0 && !input.is_empty() && !output.is_empty() {
            // A decoder that can make no progress with input and room for output is stuck
            // on data it cannot decode.
            return Err(self.member_err_at(
                ErrorKind::Corrupt,
                "invalid deflate data (no progress)",
                self.offset,
            ));
        }
        Ok((consumed, produced))
    }

    fn feed_trailer(&mut self, input: &[u8]) -> Result<usize> {
        let take = input.len().min(8 - self.buf.len());
        self.buf.extend_from_slice(&input[..take]);
        if self.buf.len() == 8 {
            self.check_trailer()?;
        }
        Ok(take)
    }

    /// Checks the complete 8-byte trailer in `self.buf` and moves on to the next member.
    fn check_trailer(&mut self) -> Result<()> {
        let crc = u32::from_le_bytes(self.buf[0..4].try_into().unwrap());
        let isize = u32::from_le_bytes(self.buf[4..8].try_into().unwrap());
        let actual = self.inflater.crc();
        if crc != actual {
            return Err(self.member_err_at(
                ErrorKind::Corrupt,
                &format!("CRC32 mismatch (stored {crc:08x}, computed {actual:08x})"),
                self.trailer_start,
            ));
        }
        if isize != self.isize {
            return Err(self.member_err_at(
                ErrorKind::Corrupt,
                &format!(
                    "ISIZE mismatch (stored {isize}, decoded {} mod 2^32)",
                    self.isize
                ),
                self.trailer_start + 4,
            ));
        }
        self.buf.clear();
        self.members += 1;
        self.member_start = self.trailer_start + 8;
        self.state = State::Header;
        Ok(())
    }
}

impl<I: Inflate> Decode for GzipDecoder<I> {
    fn decode(&mut self, input: &[u8], output: &mut [u8]) -> Result<(usize, usize)> {
        loop {
            let before = std::mem::discriminant(&self.state);
            let (consumed, produced) = match self.state {
                State::Header => (self.feed_header(input)?, 0),
                State::Body => self.inflate(input, output)?,
                State::Trailer => (self.feed_trailer(input)?, 0),
                State::Ignoring => (input.len(), 0),
            };
            self.offset += consumed as u64;
            // A member whose end was already read (into the backend's bit buffer) may finish
            // without consuming or producing anything now: go on in the new state.
            if consumed > 0 || produced > 0 || std::mem::discriminant(&self.state) == before {
                return Ok((consumed, produced));
            }
        }
    }

    fn finish(&mut self, output: &mut [u8]) -> Result<(usize, bool)> {
        loop {
            return match self.state {
                State::Ignoring => Ok((0, true)),
                State::Header if self.buf.is_empty() && self.members > 0 => Ok((0, true)),
                State::Header if self.members > 0 && self.lenient => Ok((0, true)),
                State::Body => {
                    // The backend may still hold decoded bytes that did not fit the last
                    // output buffer, and the end of the deflate data (and with ISA-L the
                    // trailer) in its bit buffer.
                    let (_, produced) = self.inflate(&[], output)?;
                    if produced > 0 {
                        return Ok((produced, false));
                    }
                    if matches!(self.state, State::Body) {
                        return Err(self.member_err_at(
                            ErrorKind::Truncated,
                            "deflate data ends early",
                            self.offset,
                        ));
                    }
                    continue;
                }
                State::Header => Err(self.member_err_at(
                    ErrorKind::Truncated,
                    "data ends inside the header",
                    self.offset,
                )),
                State::Trailer if self.buf.is_empty() => Err(self.member_err_at(
                    ErrorKind::Truncated,
                    "data ends before the trailer",
                    self.offset,
                )),
                State::Trailer => Err(self.member_err_at(
                    ErrorKind::Truncated,
                    "data ends inside the trailer",
                    self.offset,
                )),
            };
        }
    }
}
