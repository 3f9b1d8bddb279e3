//! The leader cuts the input at the magics into pieces believed to be one block each, and
//! submits each to the crew.

use std::collections::VecDeque;

use super::{Item, ParBzip2Decoder, decode_piece};
use crate::decode::bzip2::forge::piece_stream;
use crate::decode::bzip2::scan::{BLOCK_MAGIC, EOS_MAGIC, bits, scan};

/// Pieces longer than this are not cut out: the rest of their stream streams. Blocks the
/// bzip2 program writes are at most about 1 MB (900 000 bytes of input per block, at most 20
/// bits per symbol in theory).
pub(super) const PIECE_MAX_BITS: u64 = 8 * (4 << 20);

/// Where the leader cuts next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cut {
    Header { byte: u64 },
    Block { start: u64, level: u8 },
    Done,
}

pub(super) enum CutStep {
    Progress,
    NeedBytes,
    NeedRoom,
    Idle,
}

impl ParBzip2Decoder {
    /// Finds the magics in the input received so far.
    pub(super) fn scan_more(&mut self) {
        let end_bit = self.end() * 8;
        if end_bit < 48 {
            return;
        }
        let to = end_bit - 47;
        let from = self.scanned.max(self.base * 8);
        if from >= to {
            return;
        }
        let base_bit = self.base * 8;
        let mut found = VecDeque::new();
        scan(&self.buf, from - base_bit, to - base_bit, &mut found);
        #[cfg(test)]
        if self.fake_cuts > 0 {
            let mut fake = from.next_multiple_of(self.fake_cuts);
            while fake < to {
                found.push_back(fake - base_bit);
                fake += self.fake_cuts;
            }
            found.make_contiguous().sort_unstable();
        }
        self.cands.extend(found.into_iter().map(|b| b + base_bit));
        self.scanned = to;
    }

    /// Cuts the next item, if the input allows.
    pub(super) fn cut_step(&mut self) -> CutStep {
        match self.cut {
            Cut::Done => CutStep::Idle,
            Cut::Header { byte } => {
                let have = self.end() - byte;
                if have < 4 {
                    if !self.finishing {
                        return CutStep::NeedBytes;
                    }
                    if have > 0 || byte == 0 {
                        self.plan.push_back(Item::Tail { byte });
                    }
                    self.cut = Cut::Done;
                    return CutStep::Progress;
                }
                let h = &self.bytes_from(byte)[..4];
                if &h[..3] == b"BZh" && (b'1'..=b'9').contains(&h[3]) {
                    let level = h[3] - b'0';
                    self.plan.push_back(Item::Header { byte, level });
                    self.cut = Cut::Block {
                        start: byte * 8 + 32,
                        level,
                    };
                } else {
                    self.plan.push_back(Item::Tail { byte });
                    self.cut = Cut::Done;
                }
                CutStep::Progress
            }
            Cut::Block { start, level } => {
                let rel = start - self.base * 8;
                let have = self.end() * 8 - start;
                if have < 48 {
                    return self.stream_rest(start);
                }
                match self.magic_at(rel) {
                    EOS_MAGIC => {
                        if have < 80 {
                            return self.stream_rest(start);
                        }
                        let crc = bits(&self.buf, rel + 48, 32) as u32;
                        self.plan.push_back(Item::End { crc, bit: start });
                        self.cut = Cut::Header {
                            byte: (start + 80).div_ceil(8),
                        };
                        CutStep::Progress
                    }
                    BLOCK_MAGIC => {
                        if self.blocks_in_plan >= 2 * self.crew.decoders() {
                            return CutStep::NeedRoom;
                        }
                        self.scan_more();
                        while self.cands.front().is_some_and(|&c| c <= start) {
                            self.cands.pop_front();
                        }
                        let end = match self.cands.front() {
                            Some(&end) if end - start <= PIECE_MAX_BITS => end,
                            Some(_) => return self.stream_rest(start),
                            None if self.scanned.saturating_sub(start) > PIECE_MAX_BITS => {
                                return self.stream_rest(start);
                            }
                            None => {
                                return if self.finishing {
                                    self.stream_rest(start)
                                } else {
                                    CutStep::NeedBytes
                                };
                            }
                        };
                        let crc = bits(&self.buf, rel + 48, 32) as u32;
                        self.submit(start, end, crc, level);
                        self.plan.push_back(Item::Block { start, end, crc });
                        self.blocks_in_plan += 1;
                        self.cut = Cut::Block { start: end, level };
                        CutStep::Progress
                    }
                    // Not a block: the sequential decoder says what is wrong.
                    _ => self.stream_rest(start),
                }
            }
        }
    }

    /// The 48 bits at `rel` (a bit offset in `buf`).
    fn magic_at(&self, rel: u64) -> u64 {
        #[cfg(test)]
        if self.fake_cuts > 0 && (rel + self.base * 8) % self.fake_cuts == 0 {
            // A false cut looks like a block to the cutter, as a magic inside a block does.
            return BLOCK_MAGIC;
        }
        bits(&self.buf, rel, 48)
    }

    /// Plans to decode the rest of the stream from `start` as it streams in (or, before the
    /// input's end, waits for more).
    fn stream_rest(&mut self, start: u64) -> CutStep {
        let have = self.end() * 8 - start;
        if !self.finishing && have < 80 {
            return CutStep::NeedBytes;
        }
        self.plan.push_back(Item::Stream { start });
        self.cut = Cut::Done;
        CutStep::Progress
    }

    fn submit(&mut self, start: u64, end: u64, crc: u32, level: u8) {
        let (from, to) = (
            (start / 8 - self.base) as usize,
            end.div_ceil(8) - self.base,
        );
        let bytes = self.buf[from..to as usize].to_vec();
        let (shift, n) = (start % 8, end - start);
        self.crew.submit(Box::new(move |_, out, stop| {
            let stream = piece_stream(level, &bytes, shift, n, crc);
            decode_piece(&stream, out, stop)
        }));
        self.submitted += 1;
    }
}
