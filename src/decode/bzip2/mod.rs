//! bzip2: concatenated streams, block and stream CRCs checked (by the decoder), nothing
//! allowed after the last stream.
//!
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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

use bzip2::{Action, Compress, Compression, Decompress, Error as BzError, Status};

use super::parallel::{Crew, Done};
use super::{Decode, Helpers};
use crate::error::{Error, ErrorKind, Result};

/// `kind` error of the decoder for stream `stream` (counted from 1) starting at `start`.
fn stream_error(e: BzError, stream: u64, start: u64) -> Error {
    let what = match e {
        BzError::DataMagic => "bad stream magic".to_string(),
        BzError::Data => "invalid data or CRC mismatch".to_string(),
        other => other.to_string(),
    };
    Error::new(ErrorKind::Corrupt, format!("{what} in stream {stream}")).at(start)
}

fn truncated(stream: u64, start: u64) -> Error {
    Error::new(
        ErrorKind::Truncated,
        format!("data ends inside stream {stream}"),
    )
    .at(start)
}

pub(crate) struct Bzip2Decoder {
    inner: Decompress,
    /// No byte of a next stream has been consumed since the last stream ended.
    at_boundary: bool,
    streams: u64,
    offset: u64,
    stream_start: u64,
}

impl Bzip2Decoder {
    pub(crate) fn new() -> Self {
        Bzip2Decoder::resume(0, 0)
    }

    /// A decoder in the state the sequential one has after `streams` streams ending at
    /// `offset` (the parallel decoder hands the input over to it there).
    fn resume(streams: u64, offset: u64) -> Self {
        Bzip2Decoder {
            inner: Decompress::new(false),
            at_boundary: streams > 0,
            streams,
            offset,
            stream_start: offset,
        }
    }

    fn run(&mut self, input: &[u8], output: &mut [u8]) -> Result<(usize, usize)> {
        let (in0, out0) = (self.inner.total_in(), self.inner.total_out());
        let status = self.inner.decompress(input, output);
        let consumed = (self.inner.total_in() - in0) as usize;
        let produced = (self.inner.total_out() - out0) as usize;
        match status {
            Ok(Status::StreamEnd) => {
                self.streams += 1;
                self.offset += consumed as u64;
                self.stream_start = self.offset;
                self.at_boundary = true;
                self.inner = Decompress::new(false);
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
            Err(e) => return Err(stream_error(e, self.streams + 1, self.stream_start)),
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
            return Ok((0, true));
        }
        let (_, produced) = self.run(&[], output)?;
        if produced > 0 || self.at_boundary {
            return Ok((produced, self.at_boundary && produced == 0));
        }
        Err(truncated(self.streams + 1, self.stream_start))
    }
}

const BLOCK_MAGIC: u64 = 0x3141_5926_5359;
const EOS_MAGIC: u64 = 0x1772_4538_5090;
/// Pieces longer than this are not cut out: the rest of their stream streams. Blocks the
/// bzip2 program writes are at most about 1 MB (900 000 bytes of input per block, at most 20
/// bits per symbol in theory).
const PIECE_MAX_BITS: u64 = 8 * (4 << 20);
/// The most one block decodes to: 900 000 bytes after the first run-length stage, where 5
/// bytes stand for up to 259.
const BLOCK_OUT_MAX: usize = 900_000 / 5 * 259 + 5;

/// `n <= 57` bits of `buf` from bit `bit` (most significant first), zero past its end.
fn bits(buf: &[u8], bit: u64, n: u32) -> u64 {
    let at = (bit / 8) as usize;
    let mut w = [0u8; 8];
    let avail = buf.len().saturating_sub(at).min(8);
    w[..avail].copy_from_slice(&buf[at..at + avail]);
    (u64::from_be_bytes(w) << (bit % 8)) >> (64 - n)
}

/// For each byte value, the (magic, bit shift) pairs whose third byte it is: a magic at bit
/// `8 * i + k` has its byte `i + 2` equal to `(magic >> (24 + k)) & 0xff`.
const fn magic_table() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut k = 0;
    while k < 8 {
        t[((BLOCK_MAGIC >> (24 + k)) & 0xff) as usize] |= 1 << k;
        t[((EOS_MAGIC >> (24 + k)) & 0xff) as usize] |= 1 << (8 + k);
        k += 1;
    }
    t
}

static MAGIC_TABLE: [u16; 256] = magic_table();

/// Appends to `found` the bit offsets (relative to `buf`) in `from..to` where a block or
/// end-of-stream magic starts; the 48 bits from each `to - 1` must be in `buf`.
fn scan(buf: &[u8], from: u64, to: u64, found: &mut VecDeque<u64>) {
    if from >= to {
        return;
    }
    // The third byte of a magic at bit b is byte b / 8 + 2.
    let first = (from / 8 + 2) as usize;
    let last = ((to - 1) / 8 + 2) as usize;
    for (j, &b) in buf[first..=last].iter().enumerate() {
        let hits = MAGIC_TABLE[usize::from(b)];
        if hits == 0 {
            continue;
        }
        let byte = (first + j - 2) as u64 * 8;
        for k in 0..8u64 {
            let bit = byte + k;
            if bit < from || bit >= to {
                continue;
            }
            let want = match (hits >> k & 1 != 0, hits >> (8 + k) & 1 != 0) {
                (false, false) => continue,
                (true, false) => Some(BLOCK_MAGIC),
                (false, true) => Some(EOS_MAGIC),
                (true, true) => None,
            };
            let got = bits(buf, bit, 48);
            if want.map_or(got == BLOCK_MAGIC || got == EOS_MAGIC, |m| got == m) {
                found.push_back(bit);
            }
        }
    }
}

/// Writes bits, most significant first.
struct BitWriter {
    out: Vec<u8>,
    /// Bits used in the last byte of `out` (0 = all 8).
    used: u32,
}

impl BitWriter {
    fn with_capacity(n: usize) -> BitWriter {
        BitWriter {
            out: Vec::with_capacity(n),
            used: 0,
        }
    }

    /// Appends the low `n <= 32` bits of `v`.
    fn put(&mut self, v: u64, n: u32) {
        for i in (0..n).rev() {
            if self.used == 0 {
                self.out.push(0);
            }
            let bit = (v >> i) as u8 & 1;
            let last = self.out.last_mut().expect("a byte");
            *last |= bit << (7 - self.used);
            self.used = (self.used + 1) % 8;
        }
    }

    /// Appends `n` bits of `src` from bit `from`. `self` must be byte-aligned.
    fn copy(&mut self, src: &[u8], from: u64, n: u64) {
        debug_assert_eq!(self.used, 0);
        let (at, shift) = ((from / 8) as usize, (from % 8) as u32);
        let whole = (n / 8) as usize;
        if shift == 0 {
            self.out.extend_from_slice(&src[at..at + whole]);
        } else {
            self.out.extend(
                src[at..at + whole]
                    .iter()
                    .zip(&src[at + 1..])
                    .map(|(&a, &b)| (a << shift) | (b >> (8 - shift))),
            );
        }
        let rest = (n % 8) as u32;
        if rest > 0 {
            self.put(bits(src, from + whole as u64 * 8, rest), rest);
        }
    }
}

/// A one-block stream of `level` holding the `n` bits of `src` from bit `from` (a block),
/// ended by the end-of-stream magic and `crc` as the combined CRC (a one-block stream's
/// combined CRC is its block's CRC).
fn piece_stream(level: u8, src: &[u8], from: u64, n: u64, crc: u32) -> Vec<u8> {
    let mut w = BitWriter::with_capacity(n as usize / 8 + 16);
    w.out.extend_from_slice(b"BZh");
    w.out.push(b'0' + level);
    w.copy(src, from, n);
    w.put(EOS_MAGIC >> 16, 32);
    w.put(EOS_MAGIC & 0xffff, 16);
    w.put(u64::from(crc), 32);
    w.out
}

/// Decodes a one-block stream into `out` (its length set to what was decoded). `Err` if it
/// is not exactly one valid stream.
fn decode_piece(
    stream: &[u8],
    out: &mut Vec<u8>,
    stop: &AtomicBool,
) -> std::result::Result<(), ()> {
    let mut d = Decompress::new(false);
    out.clear();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(());
        }
        if out.capacity() - out.len() < 1 << 16 {
            if out.len() > BLOCK_OUT_MAX {
                return Err(());
            }
            out.reserve(out.len().max(1 << 20));
        }
        let (in0, out0) = (d.total_in() as usize, out.len());
        match d.decompress_vec(&stream[in0..], out) {
            Ok(Status::StreamEnd) => {
                return if d.total_in() as usize == stream.len() {
                    Ok(())
                } else {
                    Err(())
                };
            }
            Ok(_) if d.total_in() as usize == in0 && out.len() == out0 => return Err(()),
            Ok(_) => {}
            Err(_) => return Err(()),
        }
    }
}

/// bzip2's CRC-32 (polynomial 0x04C11DB7, most significant bit first).
fn bz_crc(data: &[u8]) -> u32 {
    const fn table() -> [u32; 256] {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = (i as u32) << 24;
            let mut k = 0;
            while k < 8 {
                c = if c & 0x8000_0000 != 0 {
                    (c << 1) ^ 0x04C1_1DB7
                } else {
                    c << 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    }
    static TABLE: [u32; 256] = table();
    let mut c = !0u32;
    for &b in data {
        c = (c << 8) ^ TABLE[usize::from((c >> 24) as u8 ^ b)];
    }
    !c
}

/// Four bytes that, appended to `data`, give the bzip2 CRC `target` (the CRC is affine in
/// them, and the map is invertible).
fn forge_crc(data: &[u8], target: u32) -> [u8; 4] {
    let crc_with = |x: u32| {
        let mut v = data.to_vec();
        v.extend_from_slice(&x.to_be_bytes());
        bz_crc(&v)
    };
    let base = crc_with(0);
    // Gaussian elimination: a basis of the columns, each with the bits of x that make it.
    let mut basis: Vec<(u32, u32)> = Vec::new();
    for i in 0..32 {
        let (mut col, mut mask) = (crc_with(1 << i) ^ base, 1u32 << i);
        for &(b, m) in &basis {
            if col ^ b < col {
                col ^= b;
                mask ^= m;
            }
        }
        if col != 0 {
            basis.push((col, mask));
            basis.sort_by(|a, b| b.0.cmp(&a.0));
        }
    }
    let (mut rest, mut x) = (target ^ base, 0u32);
    for &(b, m) in &basis {
        if rest ^ b < rest {
            rest ^= b;
            x ^= m;
        }
    }
    debug_assert_eq!(rest, 0);
    x.to_be_bytes()
}

/// The start of a synthetic stream of `level`: its header and one block whose CRC is
/// `crc`, `bits` long with `bits % 8 == align`, and how many bytes the block decodes to.
/// `None` if no such block was found (it always is, in practice, within a few tries).
fn synthetic_prefix(level: u8, crc: u32, align: u64) -> Option<(Vec<u8>, u64, usize)> {
    for attempt in 0..1024u32 {
        let mut content: Vec<u8> = (0..attempt % 97)
            .map(|i| (attempt.wrapping_mul(2_654_435_761) >> (i % 24)) as u8 ^ i as u8)
            .collect();
        let tail = forge_crc(&content, crc);
        content.extend_from_slice(&tail);
        let mut c = Compress::new(Compression::new(1), 30);
        let mut out = Vec::with_capacity(content.len() * 2 + 1024);
        if !matches!(
            c.compress_vec(&content, &mut out, Action::Finish),
            Ok(Status::StreamEnd)
        ) {
            continue;
        }
        // The stream ends with the end-of-stream magic, the CRC and up to 7 padding bits.
        let total = out.len() as u64 * 8;
        let Some(eos) = (total.saturating_sub(87)..=total.saturating_sub(80))
            .find(|&b| b >= 32 + 48 && bits(&out, b, 48) == EOS_MAGIC)
        else {
            continue;
        };
        if eos % 8 == align {
            out.truncate(eos.div_ceil(8) as usize);
            out[3] = b'0' + level;
            return Some((out, eos, content.len()));
        }
    }
    None
}

/// What the leader has cut, in input order, waiting to be confirmed and written out.
#[derive(Debug, Clone, Copy)]
enum Item {
    /// A stream header at this byte.
    Header { byte: u64, level: u8 },
    /// A piece believed to be one block, submitted to the crew: bits `start..end`.
    Block { start: u64, end: u64, crc: u32 },
    /// An end-of-stream marker with this stored combined CRC.
    End { crc: u32 },
    /// The rest of the stream, from the block start `start` (bit), decoded as it streams.
    Stream { start: u64 },
    /// Everything from this byte on, decoded by the sequential decoder (what follows the last
    /// stream: garbage, a truncated or bad header).
    Tail { byte: u64 },
}

/// Where the leader cuts next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    Header { byte: u64 },
    Block { start: u64, level: u8 },
    Done,
}

enum CutStep {
    Progress,
    NeedBytes,
    NeedRoom,
    Idle,
}

/// The rest of a stream decoded sequentially from a block start (see the module docs).
struct Streaming {
    dec: Decompress,
    /// The synthetic start, fed first; its last byte carries the first real bits.
    head: Vec<u8>,
    head_pos: usize,
    /// The next real byte to feed.
    next: u64,
    /// Real byte = fed byte + `delta`.
    delta: i64,
    /// Decoded bytes of the synthetic block still to drop.
    skip: usize,
}

/// A piece decoded on the crew: `Ok` if it was exactly one valid block.
type PieceResult = std::result::Result<(), ()>;

/// The block-parallel bzip2 decoder. See the module documentation.
pub(crate) struct ParBzip2Decoder {
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
    emitting: Option<(Vec<u8>, usize)>,
    streaming: Option<Streaming>,
    tail: Option<(Bzip2Decoder, u64)>,
    finishing: bool,
    /// The sequential decoder finished the input.
    ended: bool,
    failed: Option<Error>,
    /// Pieces submitted, and pieces merged after a failed decode (for tests).
    submitted: u64,
    merged: u64,
    /// Test hook: an extra (false) cut every this many bits, and no merging.
    #[cfg(test)]
    fake_cuts: u64,
    #[cfg(test)]
    no_merge: bool,
}

impl ParBzip2Decoder {
    /// A decoder with `helpers`; `None` if no helper thread could start.
    pub(crate) fn new(helpers: Helpers) -> Option<Self> {
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
    fn from_byte(&self, at: u64) -> &[u8] {
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

    /// Finds the magics in the input received so far.
    fn scan_more(&mut self) {
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
    fn cut_step(&mut self) -> CutStep {
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
                let h = &self.from_byte(byte)[..4];
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
                        self.plan.push_back(Item::End { crc });
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
                }
                Item::End { crc } => {
                    self.plan.pop_front();
                    if crc != self.combined {
                        return Err(stream_error(
                            BzError::Data,
                            self.streams + 1,
                            self.stream_start,
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
        while merging {
            let Some(&Item::Block {
                start: s, end: e, ..
            }) = self.plan.get(merged)
            else {
                break;
            };
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

    /// Starts decoding the current stream sequentially from the block start `start`: a
    /// fresh decoder is fed a stream header and, unless this is the stream's first block, a
    /// synthetic block whose CRC is the combined CRC so far (so that the stream's combined CRC
    /// comes out right) and whose length puts the real bits at the same bit offsets in the
    /// bytes fed as in the input (so that no byte needs shifting and the stream's end maps to
    /// an input byte exactly). The synthetic block's output is dropped.
    fn start_streaming(&mut self, start: u64) -> Result<()> {
        let align = start % 8;
        let (mut head, head_bits, skip) = if self.combined == 0 && align == 0 {
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
            let real = self.from_byte(next)[0];
            let last = head.last_mut().expect("a synthetic byte");
            *last = (*last & keep) | (real & !keep);
            next += 1;
        }
        self.streaming = Some(Streaming {
            dec: Decompress::new(false),
            head,
            head_pos: 0,
            next,
            delta: (start / 8) as i64 - (head_bits / 8) as i64,
            skip,
        });
        Ok(())
    }

    /// Runs the streamed part of a stream.
    fn stream_step(&mut self, out: &mut [u8]) -> Result<Flow> {
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
                    Err(truncated(self.streams + 1, self.stream_start))
                } else {
                    Ok(Flow::NeedInput)
                }
            }
            Ok(_) => Ok(Flow::Progressed(wrote)),
            Err(e) => Err(stream_error(e, self.streams + 1, self.stream_start)),
        }
    }

    /// Runs the sequential decoder on what follows the last stream cut out.
    fn tail_step(&mut self, out: &mut [u8]) -> Result<Flow> {
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

/// What a sequential part of the parallel decoder did.
enum Flow {
    Progressed(usize),
    NeedInput,
    OutputFull,
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

#[cfg(test)]
mod tests {
    //! The parallel decoder against the sequential one (which the compat tests hold to
    //! containers/image and the `bzip2` program): the same output and the same errors, on
    //! inputs the `bzip2` program makes, cut right, cut wrong, corrupt and truncated.

    use std::io::Write as _;
    use std::process::{Command, Stdio};

    use super::*;
    use crate::budget::Permit;

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    fn payload(len: usize, seed: u64) -> Vec<u8> {
        let words: [&[u8]; 5] = [
            b"layer ",
            b"bzip2 ",
            b"\0\0\0\0\0\0\0\0",
            b"usr/",
            b"block\n",
        ];
        let mut rng = Rng(seed | 1);
        let mut v = Vec::with_capacity(len + 32);
        while v.len() < len {
            match rng.below(3) {
                0 => v.extend((0..rng.below(40)).map(|_| rng.next() as u8)),
                _ => v.extend_from_slice(words[rng.below(words.len())]),
            }
        }
        v.truncate(len);
        v
    }

    fn bzip2(args: &[&str], data: &[u8]) -> Vec<u8> {
        let mut child = Command::new("bzip2")
            .args(["-c", "-q"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the bzip2 program must be installed to run these tests");
        let mut stdin = child.stdin.take().unwrap();
        let input = data.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(out.status.success(), "bzip2 {args:?} failed");
        out.stdout
    }

    #[derive(Clone, Copy, Debug, Default)]
    struct Setup {
        helpers: usize,
        fake_cuts: u64,
        no_merge: bool,
    }

    fn decoder(setup: Setup) -> Box<dyn Decode> {
        if setup.helpers == 0 {
            return Box::new(Bzip2Decoder::new());
        }
        let mut d = ParBzip2Decoder::new(Helpers {
            permit: Permit::for_tests(setup.helpers),
            max: setup.helpers,
        })
        .unwrap();
        d.fake_cuts = setup.fake_cuts;
        d.no_merge = setup.no_merge;
        Box::new(d)
    }

    /// Feeds `data` in random pieces of up to `max_in` bytes into random output buffers of up
    /// to `max_out`, checking the trait's progress contract.
    fn decode(
        data: &[u8],
        setup: Setup,
        seed: u64,
        max_in: usize,
        max_out: usize,
    ) -> Result<Vec<u8>> {
        let mut dec = decoder(setup);
        let mut rng = Rng(seed | 1);
        let mut buf = vec![0u8; max_out];
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let end = pos + (1 + rng.below(max_in)).min(data.len() - pos);
            let mut chunk = &data[pos..end];
            while !chunk.is_empty() {
                let n = 1 + rng.below(max_out);
                let (c, p) = dec.decode(chunk, &mut buf[..n])?;
                assert!(c > 0 || p > 0, "no progress");
                out.extend_from_slice(&buf[..p]);
                chunk = &chunk[c..];
            }
            pos = end;
        }
        loop {
            let n = 1 + rng.below(max_out);
            let (p, done) = dec.finish(&mut buf[..n])?;
            out.extend_from_slice(&buf[..p]);
            if done {
                return Ok(out);
            }
            assert!(p > 0, "finish made no progress");
        }
    }

    const FEEDS: [(u64, usize, usize); 3] = [
        (1, usize::MAX / 2, 1 << 16),
        (2, 3000, 2000),
        (3, 300_000, 200_000),
    ];

    const SETUPS: [Setup; 4] = [
        Setup {
            helpers: 1,
            fake_cuts: 0,
            no_merge: false,
        },
        Setup {
            helpers: 3,
            fake_cuts: 0,
            no_merge: false,
        },
        // Many false cuts: pieces that do not decode, merged with the next ones.
        Setup {
            helpers: 2,
            fake_cuts: 20_011,
            no_merge: false,
        },
        // The same without merging: the rest of each stream streams from where it failed.
        Setup {
            helpers: 2,
            fake_cuts: 200_003,
            no_merge: true,
        },
    ];

    /// Sequential and parallel decoding agree, output and errors alike.
    fn assert_same(
        data: &[u8],
        feeds: &[(u64, usize, usize)],
        setups: &[Setup],
    ) -> Result<Vec<u8>> {
        let mut first = None;
        for &(seed, max_in, max_out) in feeds {
            let max_in = max_in.min(data.len().max(1));
            let seq = decode(data, Setup::default(), seed, max_in, max_out);
            for &setup in setups {
                let par = decode(data, setup, seed, max_in, max_out);
                match (&seq, &par) {
                    (Ok(a), Ok(b)) => assert!(a == b, "feed {seed}, {setup:?}: outputs differ"),
                    _ => assert_eq!(seq, par, "feed {seed}, {setup:?}"),
                }
            }
            first.get_or_insert(seq);
        }
        first.unwrap()
    }

    #[test]
    fn crc_and_forging() {
        let data = b"hello, bzip2";
        let z = bzip2(&["-9"], data);
        // The block CRC follows the 48-bit block magic after the 4-byte header.
        assert_eq!(bits(&z, 32, 48), BLOCK_MAGIC);
        assert_eq!(bits(&z, 80, 32) as u32, bz_crc(data));
        let mut rng = Rng(9);
        for len in [0, 1, 5, 100] {
            let prefix: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            for target in [0, 1, 0xdead_beef, rng.next() as u32] {
                let mut v = prefix.clone();
                v.extend_from_slice(&forge_crc(&prefix, target));
                assert_eq!(bz_crc(&v), target);
            }
        }
    }

    #[test]
    fn synthetic_prefixes_exist_for_every_alignment() {
        let mut rng = Rng(10);
        for align in 0..8 {
            for _ in 0..3 {
                let crc = rng.next() as u32;
                let (head, head_bits, skip) = synthetic_prefix(9, crc, align).unwrap();
                assert_eq!(head_bits % 8, align);
                assert_eq!(&head[..4], b"BZh9");
                assert!(skip >= 4);
                // Completed as a stream, it decodes, to `skip` bytes whose CRC is `crc`.
                let mut w = BitWriter::with_capacity(head.len() + 16);
                w.copy(&head, 0, head_bits);
                w.put(EOS_MAGIC >> 16, 32);
                w.put(EOS_MAGIC & 0xffff, 16);
                w.put(u64::from(crc), 32);
                let mut out = Vec::new();
                decode_piece(&w.out, &mut out, &AtomicBool::new(false)).unwrap();
                assert_eq!(out.len(), skip);
                assert_eq!(bz_crc(&out), crc);
            }
        }
    }

    #[test]
    fn scan_finds_magics_at_every_bit_offset() {
        for shift in 0..8u64 {
            let mut w = BitWriter::with_capacity(64);
            w.put(0b1011_0110, shift as u32);
            w.put(BLOCK_MAGIC >> 16, 32);
            w.put(BLOCK_MAGIC & 0xffff, 16);
            w.put(0x55, 13);
            w.put(EOS_MAGIC >> 16, 32);
            w.put(EOS_MAGIC & 0xffff, 16);
            w.put(0, 32);
            let mut found = VecDeque::new();
            let total = w.out.len() as u64 * 8;
            scan(&w.out, 0, total - 47, &mut found);
            assert_eq!(found, [shift, shift + 48 + 13], "shift {shift}");
        }
    }

    #[test]
    fn blocks_decode_as_sequential() {
        let data = payload(700_000, 1);
        let zeros = vec![0u8; 3_000_000];
        let cases = [
            bzip2(&["-1"], &data),
            bzip2(&["-9"], &data),
            bzip2(&["-2"], &data[..1000]),
            bzip2(&["-1"], b""),
            // Long runs: blocks that decode to far more than their size.
            bzip2(&["-1"], &zeros),
            // Several streams, one per block as pbzip2 writes them, and empty ones.
            data.chunks(90_000)
                .flat_map(|c| bzip2(&["-1"], c))
                .collect(),
            [
                bzip2(&["-3"], &data),
                bzip2(&[], b""),
                bzip2(&["-1"], &data[..300_000]),
            ]
            .concat(),
        ];
        for (i, z) in cases.iter().enumerate() {
            assert_same(z, &FEEDS, &SETUPS).unwrap_or_else(|e| panic!("case {i}: {e}"));
        }
    }

    #[test]
    fn wrong_cuts_are_merged_or_streamed() {
        let data = payload(400_000, 2);
        let z = bzip2(&["-1"], &data);
        for (fake_cuts, no_merge) in [(5003, false), (300_007, false), (100_003, true), (7, true)] {
            let setup = Setup {
                helpers: 2,
                fake_cuts,
                no_merge,
            };
            let mut d = ParBzip2Decoder::new(Helpers {
                permit: Permit::for_tests(2),
                max: 2,
            })
            .unwrap();
            d.fake_cuts = fake_cuts;
            d.no_merge = no_merge;
            let mut out = vec![0; 1 << 22];
            let (c, p) = d.decode(&z, &mut out).unwrap();
            assert_eq!(c, z.len());
            let mut all = out[..p].to_vec();
            loop {
                let (p, done) = d.finish(&mut out).unwrap();
                all.extend_from_slice(&out[..p]);
                if done {
                    break;
                }
            }
            assert!(all == data, "{setup:?}");
            // A few false cuts per block are merged away; with many, the pieces cut ahead
            // do not reach the block's end, and the stream streams.
            if fake_cuts == 300_007 && !no_merge {
                assert!(d.merged > 0, "{setup:?}");
            }
            assert_same(&z, &FEEDS[..2], &[setup]).unwrap();
        }
    }

    #[test]
    fn bad_inputs_fail_as_sequential() {
        let data = payload(250_000, 3);
        let z = bzip2(&["-1"], &data);
        let cat = |parts: &[&[u8]]| parts.concat();
        let cases = [
            cat(&[&z, b"junk"]),
            cat(&[&z, &[0; 4]]),
            cat(&[&z, b"BZ"]),
            cat(&[&z, b"BZh"]),
            cat(&[&z, b"BZh0"]),
            cat(&[&z, b"BZh9"]),
            cat(&[&z, &z[..z.len() / 2]]),
            b"BZh0".to_vec(),
            b"BZh9".to_vec(),
            b"BZh".to_vec(),
            b"BZh91AY&SY".to_vec(),
        ];
        for (i, bad) in cases.iter().enumerate() {
            assert!(assert_same(bad, &FEEDS, &SETUPS).is_err(), "case {i}");
        }
    }

    #[test]
    fn truncations_fail_as_sequential() {
        let data = payload(300_000, 4);
        let z = [
            bzip2(&["-1"], &data[..150_000]),
            bzip2(&["-1"], &data[150_000..]),
        ]
        .concat();
        let feeds = [(1, usize::MAX / 2, 1 << 16), (2, 5000, 70_000)];
        for len in (0..z.len()).step_by(997).chain(z.len() - 30..z.len()) {
            let r = assert_same(&z[..len], &feeds, &SETUPS[..2]);
            assert!(r.is_err() || len == z.len() / 2, "len {len}");
        }
    }

    #[test]
    fn corruptions_fail_as_sequential() {
        let data = payload(300_000, 5);
        let z = bzip2(&["-1"], &data);
        let feeds = [(1, usize::MAX / 2, 1 << 16), (2, 20_000, 50_000)];
        let mut rng = Rng(6);
        let mut failed = 0;
        for _ in 0..60 {
            let mut bad = z.clone();
            let i = rng.below(bad.len());
            bad[i] ^= 1 << rng.below(8);
            if assert_same(&bad, &feeds, &SETUPS[..3]).is_err() {
                failed += 1;
            }
        }
        assert!(failed > 50, "only {failed} of 60 corruptions detected");
    }

    #[test]
    fn dropping_mid_stream_is_fine() {
        let data = payload(500_000, 7);
        let z = bzip2(&["-1"], &data);
        for cut in [z.len() / 3, z.len() - 10] {
            let mut d = decoder(SETUPS[1]);
            let mut out = vec![0; 1000];
            let mut input = &z[..cut];
            while !input.is_empty() {
                let (c, _) = d.decode(input, &mut out).unwrap();
                input = &input[c..];
            }
        }
    }
}
