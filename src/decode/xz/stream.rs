//! The stream header and footer: magic bytes, flags, CRC32, backward size; and that the stream
//! padding before a next stream comes in groups of four.

use super::check::Check;
use super::index::Tally;
use super::{HEADER_MAGIC, STREAM_HEADER_SIZE, State, XzDecoder};
use crate::error::{Error, ErrorKind, Result};

const FOOTER_MAGIC: [u8; 2] = [b'Y', b'Z'];

impl XzDecoder {
    pub(super) fn stream_header_byte(&mut self, b: u8) -> Result<()> {
        let i = self.buf.len();
        self.buf.push(b);
        if i < HEADER_MAGIC.len() && b != HEADER_MAGIC[i] {
            return Err(if self.stream == 1 {
                Error::new(
                    ErrorKind::Corrupt,
                    "not an xz stream: bad header magic bytes",
                )
                .at(self.buf_start)
            } else {
                Error::new(
                    ErrorKind::TrailingData,
                    format!(
                        "the bytes after the end of stream {} are neither stream padding nor \
                         another xz stream",
                        self.stream - 1
                    ),
                )
                .at(self.buf_start)
            });
        }
        if i + 1 == HEADER_MAGIC.len() && self.stream > 1 && self.padding % 4 != 0 {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "stream padding is not a multiple of 4 bytes: {} zero bytes between stream \
                     {} and stream {}",
                    self.padding,
                    self.stream - 1,
                    self.stream
                ),
            )
            .at(self.padding_start));
        }
        if self.buf.len() < STREAM_HEADER_SIZE {
            return Ok(());
        }

        let s = self.stream;
        let flags = [self.buf[6], self.buf[7]];
        let stored = u32::from_le_bytes(self.buf[8..12].try_into().unwrap());
        if crc32fast::hash(&flags) != stored {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("stream header CRC32 mismatch in stream {s}"),
            )
            .at(self.buf_start + 8));
        }
        if flags[0] != 0 || flags[1] & 0xf0 != 0 {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the header of stream {s} sets reserved stream flags ({:02x} {:02x}); a \
                     newer xz format?",
                    flags[0], flags[1]
                ),
            )
            .at(self.buf_start + 6));
        }
        let id = flags[1] & 0x0f;
        self.check = Check::from_id(id).ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "unsupported integrity check type 0x{id:02x} in stream {s} (containers/image \
                     accepts only none, CRC32, CRC64 and SHA-256)"
                ),
            )
            .at(self.buf_start + 7)
        })?;
        self.stream_flags = flags;
        self.blocks = Tally::default();
        self.block_no = 0;
        self.padding = 0;
        self.state = State::BlockOrIndex;
        Ok(())
    }

    pub(super) fn end_stream(&mut self) -> Result<()> {
        let s = self.stream;
        let f = &self.buf;
        let at = self.buf_start;
        if f[10..12] != FOOTER_MAGIC {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("bad footer magic bytes in stream {s}"),
            )
            .at(at + 10));
        }
        if crc32fast::hash(&f[4..10]) != u32::from_le_bytes(f[0..4].try_into().unwrap()) {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("stream footer CRC32 mismatch in stream {s}"),
            )
            .at(at));
        }
        if f[8..10] != self.stream_flags {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("the stream flags in the footer of stream {s} differ from its header"),
            )
            .at(at + 8));
        }
        let backward = (u64::from(u32::from_le_bytes(f[4..8].try_into().unwrap())) + 1) * 4;
        if backward != self.index.size {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "the footer of stream {s} gives the index size as {backward} bytes, but the \
                     index is {} bytes",
                    self.index.size
                ),
            )
            .at(at + 4));
        }
        self.padding = 0;
        self.padding_start = self.pos;
        self.state = State::Padding;
        Ok(())
    }
}
