//! What containers/image's LZMA2 decoder (github.com/ulikunitz/xz v0.5.12, `lzma/reader2.go`
//! and `lzma/rangecodec.go`) refuses in a block's data and liblzma decodes.
//!
//! The audit of ulikunitz/xz against liblzma (see the README's compatibility table) found one
//! such rule inside the LZMA2 data: Go's range decoder refuses a chunk whose first five
//! compressed bytes give an initial code not below the initial range
//! (`newRangeDecoder: d.code >= d.nrange`), that is bytes 1 to 4 all `0xFF`; liblzma's
//! `rc_read_init` checks only that byte 0 is zero, and such a chunk can decode to valid data
//! whose check matches (`xz -t` accepts it). Every other chunk rule of Go's (the order of
//! dictionary resets, property resets and state resets, the control bytes, the chunk sizes,
//! lc/lp/pb, the distances) refuses nothing liblzma accepts: liblzma, which decodes the data,
//! enforces them or stricter ones.
//!
//! [`Lzma2Chunks`] walks the chunk headers of the bytes liblzma consumed, skipping chunk data
//! in bulk, and reports such a chunk; it stops at the end marker (`0x00`), so the block
//! padding and check that liblzma reads next are never taken for chunks.

/// A chunk containers/image refuses: where it starts, counted from the first byte of the
/// block's data, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    pub(super) chunk: u64,
    pub(super) chunk_start: u64,
    pub(super) what: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Expecting a control byte.
    Control,
    /// Reading the rest of a chunk header: `need` bytes after the control byte in all.
    Header { need: usize },
    /// Reading the five range coder init bytes of an LZMA chunk; `seen` so far, of which
    /// `ff` (among bytes 1 to 4) were 0xFF.
    RangeInit { seen: u8, ff: u8 },
    /// Skipping chunk data.
    Skip,
    /// After the end marker, or after a control byte liblzma refuses itself.
    Done,
}

/// The LZMA2 chunk walker of one block's data (see the module doc). Memory: a few bytes.
pub(super) struct Lzma2Chunks {
    step: Step,
    /// The current chunk's header bytes (control byte first) and how many were read.
    head: [u8; 6],
    have: usize,
    /// Chunk data bytes still to skip.
    skip: u64,
    /// Bytes walked so far.
    pos: u64,
    /// Chunks begun so far.
    chunks: u64,
    /// Where the current chunk starts.
    chunk_start: u64,
}

impl Lzma2Chunks {
    pub(super) fn new() -> Lzma2Chunks {
        Lzma2Chunks {
            step: Step::Control,
            head: [0; 6],
            have: 0,
            skip: 0,
            pos: 0,
            chunks: 0,
            chunk_start: 0,
        }
    }

    /// Walks the next bytes of the block's data (and, past the end marker, whatever follows:
    /// ignored).
    pub(super) fn feed(&mut self, mut bytes: &[u8]) -> Result<(), Refusal> {
        while !bytes.is_empty() {
            match self.step {
                Step::Done => return Ok(()),
                Step::Skip => {
                    let n = self.skip.min(bytes.len() as u64);
                    self.skip -= n;
                    self.pos += n;
                    bytes = &bytes[n as usize..];
                    if self.skip == 0 {
                        self.step = Step::Control;
                    }
                }
                Step::Control => {
                    let c = bytes[0];
                    self.chunk_start = self.pos;
                    self.take(&mut bytes);
                    self.head[0] = c;
                    self.have = 1;
                    self.step = match c {
                        0 => Step::Done,
                        1 | 2 => Step::Header { need: 3 },
                        0x80..=0xbf => Step::Header { need: 5 },
                        0xc0..=0xff => Step::Header { need: 6 },
                        // liblzma refuses these control bytes itself.
                        _ => Step::Done,
                    };
                    if c != 0 {
                        self.chunks += 1;
                    }
                }
                Step::Header { need } => {
                    self.head[self.have] = bytes[0];
                    self.take(&mut bytes);
                    self.have += 1;
                    if self.have == need {
                        let h = &self.head;
                        let unpacked = u64::from(u16::from_be_bytes([h[1], h[2]])) + 1;
                        if h[0] < 0x80 {
                            self.skip = unpacked;
                            self.step = Step::Skip;
                        } else {
                            self.skip = u64::from(u16::from_be_bytes([h[3], h[4]])) + 1;
                            self.step = Step::RangeInit { seen: 0, ff: 0 };
                        }
                    }
                }
                Step::RangeInit { seen, ff } => {
                    let ff = ff + u8::from(seen > 0 && bytes[0] == 0xff);
                    let seen = seen + 1;
                    self.take(&mut bytes);
                    self.skip -= 1;
                    if seen == 5 && ff == 4 {
                        self.step = Step::Done;
                        return Err(Refusal {
                            chunk: self.chunks,
                            chunk_start: self.chunk_start,
                            what: "its range coder starts with code 0xFFFFFFFF, not below the \
                                   range (Go: \"newRangeDecoder: d.code >= d.nrange\")",
                        });
                    }
                    self.step = if seen == 5 || self.skip == 0 {
                        // A chunk shorter than five bytes is liblzma's to refuse.
                        if self.skip == 0 {
                            Step::Control
                        } else {
                            Step::Skip
                        }
                    } else {
                        Step::RangeInit { seen, ff }
                    };
                }
            }
        }
        Ok(())
    }

    fn take(&mut self, bytes: &mut &[u8]) {
        *bytes = &bytes[1..];
        self.pos += 1;
    }
}
