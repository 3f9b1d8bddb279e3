//! When cutting fails: the rest of a stream decoded as it streams in, from the last block
//! that did decode, and whatever follows the last stream decoded by the sequential decoder.

use bzip2::Status;

use super::ParBzip2Decoder;
use super::cut::Cut;
use crate::decode::Decode;
use crate::decode::bzip2::forge::synthetic_prefix;
use crate::decode::bzip2::gocheck::GoCheck;
use crate::decode::bzip2::raw::Decompress;
use crate::decode::bzip2::{refused, shift, stream_error, truncated};
use crate::error::{Error, ErrorKind, Result};

/// The rest of a stream decoded sequentially from a block start (see the module docs).
pub(super) struct Streaming {
    dec: Decompress,
    /// The synthetic start, fed first; its last byte carries the first real bits.
    head: Vec<u8>,
    head_pos: usize,
    /// The next real byte to feed.
    pub(super) next: u64,
    /// Real byte = fed byte + `delta`.
    delta: i64,
    /// Decoded bytes of the synthetic block still to drop.
    skip: usize,
    /// Go's reading of the bytes fed (see `gocheck.rs`).
    check: GoCheck,
    /// Real block number = block number among the bytes fed + `blocks` (the stream's blocks
    /// before the start, less the synthetic one).
    blocks: i64,
}

/// What a sequential part of the parallel decoder did.
pub(super) enum Flow {
    Progressed(usize),
    NeedInput,
    OutputFull,
}

impl ParBzip2Decoder {
    /// Starts decoding the current stream sequentially from the block start `start`: a
    /// fresh decoder is fed a stream header and, unless this is the stream's first block, a
    /// synthetic block whose CRC is the combined CRC so far (so that the stream's combined CRC
    /// comes out right) and whose length puts the real bits at the same bit offsets in the
    /// bytes fed as in the input (so that no byte needs shifting and the stream's end maps to
    /// an input byte exactly). The synthetic block's output is dropped.
    pub(super) fn start_streaming(&mut self, start: u64) -> Result<()> {
        let align = start % 8;
        let synthetic = !(self.combined == 0 && align == 0);
        let (mut head, head_bits, skip) = if !synthetic {
            (vec![b'B', b'Z', b'h', b'0' + self.level], 32, 0)
        } else {
            synthetic_prefix(self.level, self.combined, align).ok_or_else(|| {
                Error::new(
                    ErrorKind::Internal,
                    "found no synthetic bzip2 block to resume decoding with",
                )
            })?
        };
        let mut next = start / 8;
        if align > 0 {
            // The byte holding the first real bits: the synthetic bits, then the real ones.
            let keep = 0xffu8 << (8 - align);
            let real = self.bytes_from(next)[0];
            let last = head.last_mut().expect("a synthetic byte");
            *last = (*last & keep) | (real & !keep);
            next += 1;
        }
        self.streaming = Some(Streaming {
            dec: Decompress::new(),
            head,
            head_pos: 0,
            next,
            delta: (start / 8) as i64 - (head_bits / 8) as i64,
            skip,
            check: GoCheck::new(),
            blocks: self.blocks_in_stream as i64 - i64::from(synthetic),
        });
        Ok(())
    }

    /// Runs the streamed part of a stream.
    pub(super) fn stream_step(&mut self, out: &mut [u8]) -> Result<Flow> {
        let st = self.streaming.as_mut().expect("a stream being streamed");
        let from_head = st.head_pos < st.head.len();
        let src: &[u8] = if from_head {
            &st.head[st.head_pos..]
        } else {
            &self.buf[(st.next - self.base) as usize..]
        };
        if src.is_empty() && !self.finishing {
            return Ok(Flow::NeedInput);
        }
        let mut scratch = [0u8; 128];
        let dropping = st.skip > 0;
        let target: &mut [u8] = if dropping {
            let n = st.skip.min(scratch.len());
            &mut scratch[..n]
        } else {
            out
        };
        if target.is_empty() {
            return Ok(Flow::OutputFull);
        }
        let (in0, out0) = (st.dec.total_in(), st.dec.total_out());
        let status = st.dec.decompress(src, target);
        let consumed = st.dec.total_in() - in0;
        let produced = (st.dec.total_out() - out0) as usize;
        let mut go = st.check.feed(&src[..consumed as usize], &st.dec.notes());
        let truncated_here = status
            .as_ref()
            .is_ok_and(|s| !matches!(s, Status::StreamEnd))
            && consumed == 0
            && produced == 0
            && src.is_empty();
        if go.is_ok() && (status.is_err() || truncated_here) {
            // Go's reading may have refused a block in the bytes fed (before libbzip2's error
            // or the end of the data).
            go = st.check.full_reading();
        }
        if let Err(r) = go {
            let byte = (r.magic_bit / 8) as i64 + st.delta;
            let block = (r.block as i64 + st.blocks).max(0) as u64;
            return Err(refused(&r, self.streams + 1, block, byte.max(0) as u64));
        }
        if from_head {
            st.head_pos += consumed as usize;
        } else {
            st.next += consumed;
        }
        let wrote = if dropping {
            st.skip -= produced;
            0
        } else {
            produced
        };
        match status {
            Ok(Status::StreamEnd) => {
                st.check.next_stream();
                if let Err(r) = st.check.finish() {
                    let byte = (r.magic_bit / 8) as i64 + st.delta;
                    let block = (r.block as i64 + st.blocks).max(0) as u64;
                    return Err(refused(&r, self.streams + 1, block, byte.max(0) as u64));
                }
                let next = (st.dec.total_in() as i64 + st.delta) as u64;
                self.streams += 1;
                self.streaming = None;
                self.cut = Cut::Header { byte: next };
                self.cands.clear();
                self.scanned = next * 8;
                Ok(Flow::Progressed(wrote))
            }
            Ok(_) if consumed == 0 && produced == 0 => {
                if src.is_empty() {
                    // `finishing`: the input ended inside the stream.
                    let place = st.check.locate().map(|p| shift(p, 8 * st.delta, st.blocks));
                    Err(truncated(
                        self.streams + 1,
                        self.stream_start,
                        st.next,
                        place,
                    ))
                } else {
                    Ok(Flow::NeedInput)
                }
            }
            Ok(_) => Ok(Flow::Progressed(wrote)),
            Err(e) => {
                let place = st.check.locate().map(|p| shift(p, 8 * st.delta, st.blocks));
                Err(stream_error(e, self.streams + 1, self.stream_start, place))
            }
        }
    }

    /// Runs the sequential decoder on what follows the last stream cut out.
    pub(super) fn tail_step(&mut self, out: &mut [u8]) -> Result<Flow> {
        let (tail, next) = self.tail.as_mut().expect("a tail");
        let src = &self.buf[(*next - self.base) as usize..];
        if src.is_empty() {
            if !self.finishing {
                return Ok(Flow::NeedInput);
            }
            let (p, done) = tail.finish(out)?;
            if done {
                self.tail = None;
                self.cut = Cut::Done;
                self.ended = true;
            }
            return Ok(if p > 0 || done {
                Flow::Progressed(p)
            } else {
                Flow::OutputFull
            });
        }
        if out.is_empty() {
            return Ok(Flow::OutputFull);
        }
        let (c, p) = tail.decode(src, out)?;
        *next += c as u64;
        Ok(if c == 0 && p == 0 {
            Flow::NeedInput
        } else {
            Flow::Progressed(p)
        })
    }
}
