//! The index of a stream, parsed byte by byte and compared with the blocks through sums and
//! a SHA-256 of their records.

use sha2::{Digest as _, Sha256};

use super::{STREAM_HEADER_SIZE, State, UNPADDED_SIZE_MAX, VLI_MAX, XzDecoder};
use crate::error::{Error, ErrorKind, Result};

const UNPADDED_SIZE_MIN: u64 = 5;
/// The largest index the stream footer's Backward Size can describe.
const BACKWARD_SIZE_MAX: u64 = 1 << 34;

/// Incremental decoder of one xz variable-length integer (at most 9 bytes, 7 bits each,
/// little-endian, no superfluous trailing zero byte).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Vli {
    value: u64,
    len: u32,
}

impl Vli {
    /// Feeds one byte; the value once the integer is complete.
    pub(super) fn push(&mut self, b: u8) -> std::result::Result<Option<u64>, &'static str> {
        self.value |= u64::from(b & 0x7f) << (7 * self.len);
        self.len += 1;
        if b & 0x80 == 0 {
            if b == 0 && self.len > 1 {
                return Err("an integer is encoded with a superfluous zero byte");
            }
            let value = self.value;
            *self = Vli::default();
            Ok(Some(value))
        } else if self.len == 9 {
            Err("an integer is longer than 9 bytes")
        } else {
            Ok(None)
        }
    }
}

/// The blocks of a stream, or the records of its index, summed up so the two can be compared
/// without keeping a list.
#[derive(Clone, Default)]
pub(super) struct Tally {
    count: u64,
    unpadded: u64,
    uncompressed: u64,
    records: Sha256,
}

impl Tally {
    pub(super) fn add(
        &mut self,
        unpadded: u64,
        uncompressed: u64,
    ) -> std::result::Result<(), &'static str> {
        self.count += 1;
        self.unpadded = self
            .unpadded
            .checked_add(unpadded)
            .filter(|&s| s <= VLI_MAX)
            .ok_or("the block sizes add up to more than the format allows")?;
        self.uncompressed = self
            .uncompressed
            .checked_add(uncompressed)
            .filter(|&s| s <= VLI_MAX)
            .ok_or("the uncompressed sizes add up to more than the format allows")?;
        self.records.update(unpadded.to_le_bytes());
        self.records.update(uncompressed.to_le_bytes());
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IndexStep {
    Count,
    Unpadded,
    Uncompressed,
    Padding,
    Crc,
}

/// The index of one stream, parsed byte by byte.
pub(super) struct IndexParser {
    step: IndexStep,
    vli: Vli,
    /// Records the index declares.
    declared: u64,
    unpadded: u64,
    tally: Tally,
    /// Bytes of the index read so far, its indicator byte included.
    pub(super) size: u64,
    pub(super) crc: crc32fast::Hasher,
    stored_crc: [u8; 4],
    crc_len: usize,
}

impl IndexParser {
    pub(super) fn new() -> IndexParser {
        IndexParser {
            step: IndexStep::Count,
            vli: Vli::default(),
            declared: 0,
            unpadded: 0,
            tally: Tally::default(),
            size: 0,
            crc: crc32fast::Hasher::new(),
            stored_crc: [0; 4],
            crc_len: 0,
        }
    }
}

impl XzDecoder {
    pub(super) fn index_byte(&mut self, b: u8) -> Result<()> {
        let s = self.stream;
        let at = self.pos - 1;
        let corrupt = |msg: String| Error::new(ErrorKind::Corrupt, msg).at(at);
        let ix = &mut self.index;
        ix.size += 1;
        if ix.size > BACKWARD_SIZE_MAX {
            return Err(corrupt(format!(
                "the index of stream {s} is larger than the format allows"
            )));
        }
        if ix.step != IndexStep::Crc {
            ix.crc.update(&[b]);
        }
        let vli_error = |why: &str| corrupt(format!("invalid index of stream {s}: {why}"));
        match ix.step {
            IndexStep::Count => {
                if let Some(n) = ix.vli.push(b).map_err(vli_error)? {
                    if n != self.blocks.count {
                        return Err(corrupt(format!(
                            "the index of stream {s} lists {n} blocks but the stream has {}",
                            self.blocks.count
                        )));
                    }
                    ix.declared = n;
                    ix.step = if n == 0 {
                        IndexStep::Padding
                    } else {
                        IndexStep::Unpadded
                    };
                }
            }
            IndexStep::Unpadded => {
                if let Some(v) = ix.vli.push(b).map_err(vli_error)? {
                    if !(UNPADDED_SIZE_MIN..=UNPADDED_SIZE_MAX).contains(&v) {
                        return Err(corrupt(format!(
                            "index record {} of stream {s} has an invalid unpadded size ({v})",
                            ix.tally.count + 1
                        )));
                    }
                    ix.unpadded = v;
                    ix.step = IndexStep::Uncompressed;
                }
            }
            IndexStep::Uncompressed => {
                if let Some(v) = ix.vli.push(b).map_err(vli_error)? {
                    ix.tally
                        .add(ix.unpadded, v)
                        .map_err(|why| corrupt(format!("index of stream {s}: {why}")))?;
                    ix.step = if ix.tally.count == ix.declared {
                        IndexStep::Padding
                    } else {
                        IndexStep::Unpadded
                    };
                }
            }
            IndexStep::Padding => {
                if b != 0 {
                    return Err(corrupt(format!(
                        "non-zero byte in the index padding of stream {s}"
                    )));
                }
            }
            IndexStep::Crc => {
                ix.stored_crc[ix.crc_len] = b;
                ix.crc_len += 1;
                if ix.crc_len == 4 {
                    return self.end_index();
                }
                return Ok(());
            }
        }
        // The index records and padding end at a multiple of four bytes; the CRC32 follows.
        if ix.step == IndexStep::Padding && ix.size % 4 == 0 {
            ix.step = IndexStep::Crc;
        }
        Ok(())
    }

    fn end_index(&mut self) -> Result<()> {
        let s = self.stream;
        let ix = &mut self.index;
        let computed = std::mem::take(&mut ix.crc).finalize();
        if computed != u32::from_le_bytes(ix.stored_crc) {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("index CRC32 mismatch in stream {s}"),
            )
            .at(self.pos - 4));
        }
        let mismatch = if ix.tally.unpadded != self.blocks.unpadded {
            Some("the unpadded sizes in the index")
        } else if ix.tally.uncompressed != self.blocks.uncompressed {
            Some("the uncompressed sizes in the index")
        } else if ix.tally.records.clone().finalize() != self.blocks.records.clone().finalize() {
            Some("the index records")
        } else {
            None
        };
        if let Some(what) = mismatch {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("{what} of stream {s} do not match its blocks"),
            )
            .at(self.index_start));
        }
        self.buf.clear();
        self.buf_start = self.pos;
        self.need = STREAM_HEADER_SIZE;
        self.state = State::StreamFooter;
        Ok(())
    }
}
