//! bzip2 blocks are independent, so [`ParBzip2Decoder`] decodes them in parallel as lbzip2
//! does. A block starts with the 48-bit magic 0x314159265359 at any bit offset and ends where
//! the next block's magic or the end-of-stream magic 0x177245385090 begins; the leader scans
//! for both and cuts the stream there. Each piece becomes a one-block stream of its own
//! ("BZh" and the level, the piece's bits, the end-of-stream magic, and a combined CRC equal
//! to the block's CRC) that the `bzip2` crate decodes on a helper, checking the block's CRC;
//! the leader checks each stream's combined CRC from the block CRCs in order.
//!
//! The magic can also occur by chance inside a block. A piece that does not decode is merged
//! with the pieces after it; if that does not help either (the data is corrupt or truncated,
//! or a block is unusually long), the rest of the stream is decoded as it streams in, from the
//! last block that did decode, by a sequential decoder fed a synthetic stream header and block
//! that put it in the state the sequential decoder would be in there. So the output and the
//! errors are those of [`Bzip2Decoder`], and a valid file never fails for being cut wrong.

mod cut;
mod fallback;

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;

use bzip2::Error as BzError;

use self::cut::{Cut, CutStep, PIECE_MAX_BITS};
use self::fallback::{Flow, Streaming};
use super::forge::{decode_piece, piece_stream};
use super::gocheck::Place;
use super::{Bzip2Decoder, stream_error};
use crate::decode::parallel::{Crew, Done};
use crate::decode::{Decode, Helpers};
use crate::error::{Error, Result};

/// What the leader has cut, in input order, waiting to be confirmed and written out.
#[derive(Debug, Clone, Copy)]
enum Item {
    /// A stream header at this byte.
    Header { byte: u64, level: u8 },
    /// A piece believed to be one block, submitted to the crew: bits `start..end`.
    Block { start: u64, end: u64, crc: u32 },
    /// An end-of-stream marker at bit `bit` with this stored combined CRC.
    End { crc: u32, bit: u64 },
    /// The rest of the stream, from the block start `start` (bit), decoded as it streams.
    Stream { start: u64 },
    /// Everything from this byte on, decoded by the sequential decoder (what follows the last
    /// stream: garbage, a truncated or bad header).
    Tail { byte: u64 },
}

/// A piece decoded on the crew: `Ok` if it was exactly one valid block.
type PieceResult = std::result::Result<(), ()>;

/// The block-parallel bzip2 decoder. See the module documentation.
pub(in crate::decode) struct ParBzip2Decoder {
    crew: Crew<(), PieceResult>,
    /// Input from byte `base` on, as far as anything may still need it.
    buf: Vec<u8>,
    base: u64,
    /// Bit (absolute) below which every magic is in `cands`, or was used.
    scanned: u64,
    cands: VecDeque<u64>,
    cut: Cut,
    plan: VecDeque<Item>,
    /// `Block` items in `plan` (their results not taken yet).
    blocks_in_plan: usize,
    // What is confirmed (written out) so far.
    streams: u64,
    stream_start: u64,
    level: u8,
    combined: u32,
    /// Blocks of the current stream confirmed so far.
    blocks_in_stream: u64,
    emitting: Option<(Vec<u8>, usize)>,
    streaming: Option<Streaming>,
    tail: Option<(Bzip2Decoder, u64)>,
    finishing: bool,
    /// The sequential decoder finished the input.
    ended: bool,
    failed: Option<Error>,
    /// Pieces submitted, and pieces merged after a failed decode (for tests).
    submitted: u64,
    pub(super) merged: u64,
    /// Test hook: an extra (false) cut every this many bits, and no merging.
    #[cfg(test)]
    pub(super) fake_cuts: u64,
    #[cfg(test)]
    pub(super) no_merge: bool,
}

impl ParBzip2Decoder {
    /// A decoder with `helpers`; `None` if no helper thread could start.
    pub(in crate::decode) fn new(helpers: Helpers) -> Option<Self> {
        let crew = Crew::new(helpers.permit, helpers.max, || (), "bzip2")?;
        Some(ParBzip2Decoder {
            crew,
            buf: Vec::new(),
            base: 0,
            scanned: 0,
            cands: VecDeque::new(),
            cut: Cut::Header { byte: 0 },
            plan: VecDeque::new(),
            blocks_in_plan: 0,
            streams: 0,
            stream_start: 0,
            level: 9,
            combined: 0,
            blocks_in_stream: 0,
            emitting: None,
            streaming: None,
            tail: None,
            finishing: false,
            ended: false,
            failed: None,
            submitted: 0,
            merged: 0,
            #[cfg(test)]
            fake_cuts: 0,
            #[cfg(test)]
            no_merge: false,
        })
    }

    /// One past the last input byte received.
    fn end(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// The input from absolute byte `at` on.
    fn bytes_from(&self, at: u64) -> &[u8] {
        &self.buf[(at - self.base) as usize..]
    }

    fn append(&mut self, input: &[u8]) {
        // Drop what nothing needs any more, when that is worth a move.
        let keep = self.keep_from();
        let dead = (keep - self.base) as usize;
        if dead > (1 << 20) && dead * 2 > self.buf.len() {
            self.buf.drain(..dead);
            self.base = keep;
        }
        self.buf.extend_from_slice(input);
    }

    /// The first byte anything may still read.
    fn keep_from(&self) -> u64 {
        let mut keep = match self.cut {
            Cut::Header { byte } => byte,
            Cut::Block { start, .. } => start / 8,
            Cut::Done => self.end(),
        };
        if let Some(item) = self.plan.front() {
            keep = keep.min(match *item {
                Item::Header { byte, .. } | Item::Tail { byte } => byte,
                Item::Block { start, .. } | Item::Stream { start } => start / 8,
                Item::End { .. } => keep,
            });
        }
        if let Some(s) = &self.streaming {
            keep = keep.min(s.next);
        }
        if let Some((_, next)) = &self.tail {
            keep = keep.min(*next);
        }
        keep.min(self.scanned / 8).max(self.base)
    }

    /// Confirms planned items in order and writes out their output. With `wait`, blocks
    /// for a piece's result rather than stopping there.
    fn confirm(&mut self, out: &mut [u8], wait: bool) -> Result<usize> {
        let mut n = 0;
        loop {
            if let Some((buf, pos)) = &mut self.emitting {
                let k = (buf.len() - *pos).min(out.len() - n);
                out[n..n + k].copy_from_slice(&buf[*pos..*pos + k]);
                *pos += k;
                n += k;
                if *pos < buf.len() {
                    return Ok(n);
                }
                let (buf, _) = self.emitting.take().expect("a block being written");
                self.crew.recycle(buf);
            }
            if self.streaming.is_some() || self.tail.is_some() {
                return Ok(n);
            }
            let Some(&item) = self.plan.front() else {
                return Ok(n);
            };
            match item {
                Item::Header { byte, level } => {
                    self.plan.pop_front();
                    self.stream_start = byte;
                    self.level = level;
                    self.combined = 0;
                    self.blocks_in_stream = 0;
                }
                Item::End { crc, bit } => {
                    self.plan.pop_front();
                    if crc != self.combined {
                        return Err(stream_error(
                            BzError::Data,
                            self.streams + 1,
                            self.stream_start,
                            Some(Place::End { bit }),
                        ));
                    }
                    self.streams += 1;
                }
                Item::Stream { start } => {
                    self.plan.pop_front();
                    self.start_streaming(start)?;
                }
                Item::Tail { byte } => {
                    self.plan.pop_front();
                    self.tail = Some((Bzip2Decoder::resume(self.streams, byte), byte));
                }
                Item::Block { start, end, crc } => {
                    let done = if wait && n < out.len() {
                        self.crew.take()
                    } else {
                        self.crew.try_take()
                    };
                    let Some(done) = done else {
                        return Ok(n);
                    };
                    self.plan.pop_front();
                    self.blocks_in_plan -= 1;
                    self.accept(done, start, end, crc)?;
                }
            }
        }
    }

    /// Takes a piece's result: its output, or else a merge with the pieces after it, or else
    /// streaming from its start.
    fn accept(
        &mut self,
        (mut buf, result): Done<PieceResult>,
        start: u64,
        end: u64,
        crc: u32,
    ) -> Result<()> {
        if result == Some(Ok(())) {
            self.blocks_in_stream += 1;
            self.combined = self.combined.rotate_left(1) ^ crc;
            self.emitting = Some((buf, 0));
            return Ok(());
        }
        // Merge with the next pieces of the stream, while they follow on.
        let mut merged = 0;
        let mut last = end;
        #[cfg(test)]
        let merging = !self.no_merge;
        #[cfg(not(test))]
        let merging = true;
        while let Some(&Item::Block {
            start: s, end: e, ..
        }) = self.plan.get(merged).filter(|_| merging)
        {
            if s != last || e - start > PIECE_MAX_BITS {
                break;
            }
            merged += 1;
            last = e;
            let (from, to) = (
                (start / 8 - self.base) as usize,
                (e.div_ceil(8) - self.base) as usize,
            );
            let stream = piece_stream(self.level, &self.buf[from..to], start % 8, e - start, crc);
            if decode_piece(&stream, &mut buf, &AtomicBool::new(false)).is_ok() {
                self.crew.discard(merged);
                self.plan.drain(..merged);
                self.blocks_in_plan -= merged;
                self.merged += merged as u64;
                self.blocks_in_stream += 1;
                self.combined = self.combined.rotate_left(1) ^ crc;
                self.emitting = Some((buf, 0));
                return Ok(());
            }
        }
        // Every piece cut after it was merged in vain: try the magics found further on.
        if merging && merged == self.plan.len() {
            if let Cut::Block { start: cut, level } = self.cut {
                debug_assert_eq!(cut, last);
                self.scan_more();
                let ends: Vec<u64> = self
                    .cands
                    .iter()
                    .copied()
                    .filter(|&c| c > last && c - start <= PIECE_MAX_BITS)
                    .collect();
                for e in ends {
                    let (from, to) = (
                        (start / 8 - self.base) as usize,
                        (e.div_ceil(8) - self.base) as usize,
                    );
                    let stream =
                        piece_stream(self.level, &self.buf[from..to], start % 8, e - start, crc);
                    if decode_piece(&stream, &mut buf, &AtomicBool::new(false)).is_ok() {
                        self.crew.discard(merged);
                        self.plan.clear();
                        self.blocks_in_plan = 0;
                        self.merged += 1;
                        while self.cands.front().is_some_and(|&c| c <= e) {
                            self.cands.pop_front();
                        }
                        self.cut = Cut::Block { start: e, level };
                        self.blocks_in_stream += 1;
                        self.combined = self.combined.rotate_left(1) ^ crc;
                        self.emitting = Some((buf, 0));
                        return Ok(());
                    }
                }
            }
        }
        self.crew.recycle(buf);
        // Stream the rest of this stream; everything cut after this piece is void.
        self.crew.discard(self.blocks_in_plan);
        self.plan.clear();
        self.blocks_in_plan = 0;
        self.cut = Cut::Done;
        self.start_streaming(start)
    }

    fn run(&mut self, input: &[u8], output: &mut [u8]) -> Result<(usize, usize)> {
        let (mut ip, mut op) = (0, 0);
        loop {
            op += self.confirm(&mut output[op..], false)?;
            let flow = if self.streaming.is_some() {
                Some(self.stream_step(&mut output[op..])?)
            } else if self.tail.is_some() {
                Some(self.tail_step(&mut output[op..])?)
            } else {
                None
            };
            match flow {
                Some(Flow::Progressed(p)) => {
                    op += p;
                    continue;
                }
                Some(Flow::OutputFull) => break,
                Some(Flow::NeedInput) => {
                    if ip < input.len() {
                        self.append(&input[ip..]);
                        ip = input.len();
                        continue;
                    }
                    break;
                }
                None => {}
            }
            match self.cut_step() {
                CutStep::Progress => continue,
                CutStep::NeedBytes if ip < input.len() => {
                    self.append(&input[ip..]);
                    ip = input.len();
                    continue;
                }
                CutStep::NeedBytes if !self.finishing => break,
                // Waiting for room, or nothing more to cut: write out what is planned.
                _ => {
                    if self.plan.is_empty() && self.emitting.is_none() {
                        break;
                    }
                    if op == output.len() {
                        break;
                    }
                    let n = self.confirm(&mut output[op..], true)?;
                    op += n;
                    if n == 0 && self.plan.is_empty() && self.emitting.is_none() {
                        continue;
                    }
                }
            }
        }
        Ok((ip, op))
    }

    fn finish_inner(&mut self, output: &mut [u8]) -> Result<(usize, bool)> {
        self.finishing = true;
        let (_, p) = self.run(&[], output)?;
        let busy = !self.plan.is_empty()
            || self.emitting.is_some()
            || self.streaming.is_some()
            || self.tail.is_some();
        if p > 0 || busy {
            return Ok((p, false));
        }
        Ok((0, true))
    }
}

impl Decode for ParBzip2Decoder {
    fn decode(&mut self, input: &[u8], output: &mut [u8]) -> Result<(usize, usize)> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.run(input, output);
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    fn finish(&mut self, output: &mut [u8]) -> Result<(usize, bool)> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.finish_inner(output);
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }
}
