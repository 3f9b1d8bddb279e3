//! What containers/image's bzip2 decoder (Go's `compress/bzip2`) refuses and libbzip2 decodes.
//!
//! diffid decodes with libbzip2 (the `bzip2` crate) and accepts only what both accept, so the
//! blocks libbzip2 decodes are also read here the way Go reads them, and a block Go refuses is
//! an error. The conditions, from Go's `compress/bzip2` (go1.26, `bzip2.go`, `huffman.go`),
//! under which Go returns an error on a stream libbzip2 1.0.8 decodes:
//!
//! 1. the block's obsolete "randomised" bit is set ("deprecated randomized files"; libbzip2
//!    still de-randomises such blocks, written by bzip2 0.9.0);
//! 2. a run-length byte of 0 (four equal bytes followed by a count of 0) followed by the same
//!    byte: Go keeps counting that byte as part of the run, libbzip2 starts a new run, so Go's
//!    output differs and fails the block CRC ("block checksum mismatch");
//! 3. a Huffman table whose code lengths do not make a complete prefix code: Go builds its
//!    tree by a different rule than libbzip2's canonical tables (codes are assigned from the
//!    longest down, and a level that splits nothing is skipped), so an over-full table is an
//!    error ("equal symbols in Huffman tree") and an incomplete table that a group uses decodes
//!    to other symbols than libbzip2's (a CRC mismatch or another structural error). An
//!    incomplete table no group uses is accepted by both.
//!
//! Every other error of Go's reader is also one of libbzip2's (bad magics and levels, 2 to 6
//! tables, selectors, code lengths 1..20, runs and data past the block size, the origin
//! pointer, the block and stream CRCs, what follows a stream). Rather than approximate
//! conditions 2 and 3, this module runs Go's block decoding itself (entropy decoding, inverse
//! BWT, Go's run-length stage and CRC), so any error Go's reader would return on a block is
//! found, whichever condition causes it.
//!
//! It runs only where it can matter. diffid's libbzip2 (third_party/libbz2-rs-sys, patched)
//! notes each of the three conditions as it meets it (a randomised bit; a table that is not a
//! complete code; four equal bytes, a count of 0 and the same byte, a superset of condition
//! 2), and where each block starts. Without those notes Go reads every block as libbzip2 does
//! (the same codes, the same output, the same CRC), so it refuses only what libbzip2 refuses
//! too. [`GoCheck`] therefore only keeps the bytes Go's reading would need (from the block
//! before the last one begun), and starts Go's reading on them when a note is set, when
//! libbzip2 reports an error, or when the data ends inside a stream: the answer, message and
//! place are those of Go's reading fed all along.

use std::collections::VecDeque;

use super::forge::crc_update;
use super::raw::GoNotes;
use super::scan::{BLOCK_MAGIC, EOS_MAGIC, bits, scan};
use libbz2_rs_sys::{GO_ENDED, GO_INCOMPLETE_TABLE, GO_RANDOMISED, GO_ZERO_RUN};

/// A block Go's reader refuses: what it says, the bit (of the bytes fed) where the block's
/// magic starts, and which block of its stream it is (counted from 1, among the bytes fed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    pub(super) what: &'static str,
    pub(super) magic_bit: u64,
    pub(super) block: u64,
}

/// Where the fault libbzip2 found lies, as far as the bytes it consumed tell (see
/// [`GoCheck::locate`]). Bits count from the first byte fed; blocks from 1 in their stream,
/// among the bytes fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// Inside block `n`, whose magic starts at `bit`.
    Block { n: u64, bit: u64 },
    /// At the header (block or end-of-stream magic) that starts at `bit`, after block `n`
    /// (0: the stream's first).
    After { n: u64, bit: u64 },
    /// At the end-of-stream marker starting at `bit`: the stream's combined CRC.
    End { bit: u64 },
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// A stream header at this byte.
    Header { byte: u64 },
    /// A block or end-of-stream magic at this bit.
    Unit { bit: u64, level: u8 },
    /// A block whose magic is at `magic`.
    Block { magic: u64, level: u8 },
    /// Not a stream Go and libbzip2 could both read any more: libbzip2 reports it.
    Off,
}

/// Go's reading of the bytes fed to a libbzip2 decoder, fed the same bytes as they are
/// consumed: the reading itself, block by block. Holds at most two blocks' compressed bytes
/// (the one being read and the one before, for [`locate`](Self::locate)) and Go's block array
/// (4 bytes per byte of the block size).
struct Full {
    buf: Vec<u8>,
    /// Fed byte of `buf[0]`.
    base: u64,
    state: State,
    /// Bits (fed) below which the magics in the current block were looked for.
    scanned: u64,
    cands: VecDeque<u64>,
    tt: Vec<u32>,
    /// Blocks of the current stream begun so far.
    blocks: u64,
    /// The last end-of-stream marker read, until the next stream header.
    last_end: Option<u64>,
    /// Where the bytes stopped being a stream both could read, if at a unit header: the
    /// blocks before it and its bit.
    off_after: Option<(u64, u64)>,
    /// The block read last (number, magic bit, level), whose CRC Go's reading took on
    /// libbzip2's word: libbzip2 checks it after writing the block out, and may have read
    /// the next magic by then (it reads ahead). Its bytes are kept until the next one.
    prev: Option<(u64, u64, u8)>,
}

impl Full {
    /// A reader whose first byte fed is a stream header.
    fn new() -> Full {
        Full {
            buf: Vec::new(),
            base: 0,
            state: State::Header { byte: 0 },
            scanned: 0,
            cands: VecDeque::new(),
            tt: Vec::new(),
            blocks: 0,
            last_end: None,
            off_after: None,
            prev: None,
        }
    }

    /// Where a fault libbzip2 reported after consuming the bytes fed lies: in the block read
    /// before if its CRC does not match (libbzip2 checks it only once the block is written
    /// out, and may have read on by then); else in the block being read, unless Go reads
    /// that block whole, CRC included, from those bytes (then at the header after it); at a
    /// header that is no magic; or at an end-of-stream marker just read (its combined CRC). `None` when the bytes fed never made a stream (a bad stream header): the stream
    /// is the unit. The answer depends only on the data up to the fault, not on how far past
    /// it libbzip2 read, so every path gives the same one.
    fn locate(&mut self) -> Option<Place> {
        if let Some((n, magic, level)) = self.prev {
            let rel = magic + 48 - self.base * 8;
            let size = 100_000 * usize::from(level);
            if read_block(&self.buf, rel, size, &mut self.tt, true).is_err() {
                return Some(Place::Block { n, bit: magic });
            }
        }
        match self.state {
            State::Block { magic, level } => {
                let rel = magic + 48 - self.base * 8;
                let size = 100_000 * usize::from(level);
                Some(match read_block(&self.buf, rel, size, &mut self.tt, true) {
                    Ok(end) => Place::After {
                        n: self.blocks,
                        bit: end + self.base * 8,
                    },
                    Err(_) => Place::Block {
                        n: self.blocks,
                        bit: magic,
                    },
                })
            }
            State::Unit { bit, .. } => Some(Place::After {
                n: self.blocks,
                bit,
            }),
            State::Header { .. } => self.last_end.map(|bit| Place::End { bit }),
            State::Off => self.off_after.map(|(n, bit)| Place::After { n, bit }),
        }
    }

    /// Reads `input` (the next bytes libbzip2 consumed); `Err` on the first block Go refuses.
    fn feed(&mut self, input: &[u8]) -> Result<(), Refusal> {
        if matches!(self.state, State::Off) || input.is_empty() {
            return Ok(());
        }
        self.buf.extend_from_slice(input);
        self.settle()
    }

    /// Reads on as far as the bytes held go, then drops what is no longer needed.
    fn settle(&mut self) -> Result<(), Refusal> {
        let r = self.advance();
        // Drop the bytes before the current unit.
        let keep = match self.state {
            State::Header { byte } => byte,
            State::Unit { bit, .. } => bit / 8,
            State::Block { magic, .. } => magic / 8,
            State::Off => self.base + self.buf.len() as u64,
        };
        let keep = self.prev.map_or(keep, |(_, magic, _)| keep.min(magic / 8));
        let dead = (keep - self.base) as usize;
        if dead > (1 << 16) || dead == self.buf.len() {
            self.buf.drain(..dead);
            self.base = keep;
        }
        r
    }

    /// The bytes fed are all there is (libbzip2 found the last stream's end): a block Go
    /// was still reading is one it reads past the end of the data ("unexpected EOF").
    fn finish(&mut self) -> Result<(), Refusal> {
        let State::Block { magic, level } = self.state else {
            return Ok(());
        };
        self.state = State::Off;
        let rel = magic + 48 - self.base * 8;
        match read_block(
            &self.buf,
            rel,
            100_000 * usize::from(level),
            &mut self.tt,
            false,
        ) {
            Ok(_) => Ok(()),
            Err(Fault::NeedMore) => Err(Refusal {
                what: "unexpected EOF (Go reads the block on past the end of the data)",
                magic_bit: magic,
                block: self.blocks,
            }),
            Err(Fault::Go(what)) => Err(Refusal {
                what,
                magic_bit: magic,
                block: self.blocks,
            }),
        }
    }

    fn end_bit(&self) -> u64 {
        (self.base + self.buf.len() as u64) * 8
    }

    fn advance(&mut self) -> Result<(), Refusal> {
        loop {
            match self.state {
                State::Off => return Ok(()),
                State::Header { byte } => {
                    let at = (byte - self.base) as usize;
                    let Some(h) = self.buf.get(at..at + 4) else {
                        return Ok(());
                    };
                    if &h[..3] != b"BZh" || !(b'1'..=b'9').contains(&h[3]) {
                        self.state = State::Off;
                        self.off_after = None;
                        return Ok(());
                    }
                    self.blocks = 0;
                    self.last_end = None;
                    self.prev = None;
                    self.state = State::Unit {
                        bit: (byte + 4) * 8,
                        level: h[3] - b'0',
                    };
                }
                State::Unit { bit, level } => {
                    if self.end_bit() < bit + 48 {
                        return Ok(());
                    }
                    let rel = bit - self.base * 8;
                    match bits(&self.buf, rel, 48) {
                        BLOCK_MAGIC => {
                            self.blocks += 1;
                            self.state = State::Block { magic: bit, level };
                            self.scanned = bit + 48;
                            self.cands.clear();
                        }
                        EOS_MAGIC => {
                            if self.end_bit() < bit + 80 {
                                return Ok(());
                            }
                            // libbzip2 read the end marker: the block before it was checked.
                            self.last_end = Some(bit);
                            self.prev = None;
                            self.state = State::Header {
                                byte: (bit + 80).div_ceil(8),
                            };
                        }
                        _ => {
                            self.state = State::Off;
                            self.off_after = Some((self.blocks, bit));
                            return Ok(());
                        }
                    }
                }
                State::Block { magic, level } => {
                    // Read the block once a magic follows it (it ends at one, if libbzip2
                    // decoded it); a magic inside the block's data only costs a retry.
                    let end = self.end_bit();
                    if end >= 48 && end - 47 > self.scanned {
                        let rel0 = self.base * 8;
                        let mut found = VecDeque::new();
                        scan(&self.buf, self.scanned - rel0, end - 47 - rel0, &mut found);
                        self.cands.extend(found.into_iter().map(|b| b + rel0));
                        self.scanned = end - 47;
                    }
                    if self.cands.pop_front().is_none() {
                        return Ok(());
                    }
                    let rel = magic + 48 - self.base * 8;
                    let size = 100_000 * usize::from(level);
                    match read_block(&self.buf, rel, size, &mut self.tt, false) {
                        Ok(end) => {
                            self.prev = Some((self.blocks, magic, level));
                            self.state = State::Unit {
                                bit: end + self.base * 8,
                                level,
                            };
                        }
                        Err(Fault::NeedMore) => {}
                        Err(Fault::Go(what)) => {
                            self.state = State::Off;
                            return Err(Refusal {
                                what,
                                magic_bit: magic,
                                block: self.blocks,
                            });
                        }
                    }
                }
            }
        }
    }
}

/// Go's reading of the bytes fed to a libbzip2 decoder (see the module docs), fed the same
/// bytes as they are consumed with the decoder's notes on them.
///
/// It starts cheap: it only holds the bytes Go's reading would have to go back to and follows
/// the blocks' starts in the notes. Go's own reading ([`Full`]) starts from those bytes when
/// the notes say the stream holds something Go may read otherwise (`GO_RANDOMISED`,
/// `GO_INCOMPLETE_TABLE`, `GO_ZERO_RUN`), or when libbzip2 reports an error or the data ends
/// inside a stream ([`full_reading`](Self::full_reading)), and goes on from there. Its
/// answers are those of Go's reading fed all along: without those notes, Go reads each block
/// as libbzip2 did and accepts what libbzip2 accepted, and where Go's reading would have
/// refused a block earlier, libbzip2 consumed no byte since (it was writing the block out).
pub(super) struct GoCheck {
    mode: Mode,
}

enum Mode {
    Cheap(Cheap),
    Full(Box<Full>),
}

/// The bytes Go's reading would go back to, and where the notes say the blocks start.
struct Cheap {
    buf: Vec<u8>,
    /// Fed byte of `buf[0]`.
    base: u64,
    /// Fed byte where the current stream (and its decompressor's notes) starts.
    stream: u64,
    /// The stream's level, once its header is fed.
    level: Option<u8>,
    /// The current stream's notes.
    notes: GoNotes,
    /// Fed bit of the end-of-stream magic of the stream before, if any.
    last_end: Option<u64>,
}

/// The notes on which Go's reading starts.
const GO_READS_OTHERWISE: u8 = GO_RANDOMISED | GO_INCOMPLETE_TABLE | GO_ZERO_RUN;

/// Whether the notes say Go reads the stream as libbzip2 did (then Go accepts what libbzip2
/// decoded without error); if not, only Go's reading can tell.
pub(super) fn go_reads_alike(notes: &GoNotes) -> bool {
    notes.flags & GO_READS_OTHERWISE == 0
}

impl Cheap {
    /// The state of Go's reading at the start of the bytes it needs: the block before the
    /// last one begun (Go has read it, as libbzip2 began the next), or the stream's header.
    /// Once a note calls for Go's reading, the block begun last when it was set is the last
    /// (libbzip2 may have begun more in the same call).
    fn anchor(&self) -> (State, u64, Option<u64>) {
        let n = &self.notes;
        let (blocks, bits) = if n.flags & GO_READS_OTHERWISE != 0 {
            (n.flagged_blocks, n.flagged_bits)
        } else {
            (n.blocks, n.block_bits)
        };
        match self.level {
            Some(level) if blocks >= 2 => (
                State::Unit {
                    bit: self.stream * 8 + bits[1],
                    level,
                },
                blocks - 2,
                None,
            ),
            _ => (State::Header { byte: self.stream }, 0, self.last_end),
        }
    }

    fn anchor_byte(&self) -> u64 {
        match self.anchor().0 {
            State::Header { byte } => byte,
            State::Unit { bit, .. } => bit / 8,
            _ => unreachable!("an anchor is a header or a unit"),
        }
    }

    /// Go's reading of the bytes held, as if fed all along.
    fn replay(&mut self) -> (Box<Full>, Result<(), Refusal>) {
        let (state, blocks, last_end) = self.anchor();
        let mut full = Box::new(Full::new());
        full.buf = std::mem::take(&mut self.buf);
        full.base = self.base;
        full.state = state;
        full.blocks = blocks;
        full.last_end = last_end;
        let r = full.settle();
        (full, r)
    }
}

impl GoCheck {
    /// A checker whose first byte fed is a stream header.
    pub(super) fn new() -> GoCheck {
        GoCheck {
            mode: Mode::Cheap(Cheap {
                buf: Vec::new(),
                base: 0,
                stream: 0,
                level: None,
                notes: GoNotes::default(),
                last_end: None,
            }),
        }
    }

    /// A checker that reads every block Go's way from the start (what [`GoCheck::new`] does
    /// once the notes call for it).
    pub(super) fn full() -> GoCheck {
        GoCheck {
            mode: Mode::Full(Box::new(Full::new())),
        }
    }

    /// Reads `input` (the next bytes libbzip2 consumed), `notes` being its notes after
    /// consuming them; `Err` on the first block Go refuses.
    pub(super) fn feed(&mut self, input: &[u8], notes: &GoNotes) -> Result<(), Refusal> {
        let c = match &mut self.mode {
            Mode::Full(full) => return full.feed(input),
            Mode::Cheap(c) => c,
        };
        c.buf.extend_from_slice(input);
        c.notes = *notes;
        if c.level.is_none() {
            let at = (c.stream - c.base) as usize;
            if let Some(&[b'B', b'Z', b'h', l]) = c.buf.get(at..at + 4) {
                c.level = Some(l.wrapping_sub(b'0'));
            }
        }
        if notes.flags & GO_READS_OTHERWISE != 0 {
            return self.full_reading();
        }
        let keep = c.anchor_byte();
        let dead = (keep - c.base) as usize;
        if dead > (1 << 16) || dead == c.buf.len() {
            c.buf.drain(..dead);
            c.base = keep;
        }
        Ok(())
    }

    /// The decompressor that was fed ended its stream (libbzip2 read its end) where the bytes
    /// fed end; the next bytes fed are a new decompressor's, with notes of their own.
    pub(super) fn next_stream(&mut self) {
        if let Mode::Cheap(c) = &mut self.mode {
            if c.notes.flags & GO_ENDED != 0 {
                c.last_end = Some(c.stream * 8 + c.notes.end_bit);
            }
            c.stream = c.base + c.buf.len() as u64;
            c.level = None;
            c.notes = GoNotes::default();
            c.buf.clear();
            c.base = c.stream;
        }
    }

    /// Go's own reading from here on, caught up with the bytes fed: `Err` if it refuses a
    /// block in them. Called before [`locate`](Self::locate) and when libbzip2 reports an
    /// error, since Go's reading may have refused a block in the bytes fed by then.
    pub(super) fn full_reading(&mut self) -> Result<(), Refusal> {
        let Mode::Cheap(c) = &mut self.mode else {
            return Ok(());
        };
        let (full, r) = c.replay();
        self.mode = Mode::Full(full);
        r
    }

    /// Where a fault libbzip2 reported lies (see [`Full::locate`]); call
    /// [`full_reading`](Self::full_reading) first.
    pub(super) fn locate(&mut self) -> Option<Place> {
        let _ = self.full_reading();
        match &mut self.mode {
            Mode::Full(full) => full.locate(),
            Mode::Cheap(_) => unreachable!("Go's reading has started"),
        }
    }

    /// The bytes fed are all there is (libbzip2 found the last stream's end): a block Go
    /// was still reading is one it reads past the end of the data ("unexpected EOF").
    pub(super) fn finish(&mut self) -> Result<(), Refusal> {
        self.full_reading()?;
        match &mut self.mode {
            Mode::Full(full) => full.finish(),
            Mode::Cheap(_) => unreachable!("Go's reading has started"),
        }
    }
}

/// Why a block was not read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Fault {
    /// The block goes on past the bytes there are.
    NeedMore,
    /// Go's reader returns this error.
    Go(&'static str),
}

struct Bits<'a> {
    buf: &'a [u8],
    bit: u64,
    end: u64,
}

impl Bits<'_> {
    fn read(&mut self, n: u32) -> Result<u32, Fault> {
        if self.bit + u64::from(n) > self.end {
            return Err(Fault::NeedMore);
        }
        let v = bits(self.buf, self.bit, n) as u32;
        self.bit += u64::from(n);
        Ok(v)
    }

    fn bit(&mut self) -> Result<bool, Fault> {
        Ok(self.read(1)? != 0)
    }
}

/// Go's Huffman tree (`huffman.go`): inner nodes; a child is a node index, or a leaf.
#[derive(Clone, Copy)]
enum Child {
    Node(u16),
    Leaf(u16),
}

struct Tree {
    /// (taken on a 1 bit, taken on a 0 bit).
    nodes: Vec<(Child, Child)>,
}

#[derive(Clone, Copy)]
struct Code {
    code: u32,
    value: u16,
}

impl Tree {
    /// `newHuffmanTree`: codes assigned from the longest down, sorted by code, split bit by bit.
    fn new(lengths: &[u8]) -> Result<Tree, Fault> {
        let mut pairs: Vec<(u8, u16)> = lengths
            .iter()
            .enumerate()
            .map(|(i, &l)| (l, i as u16))
            .collect();
        pairs.sort_unstable();
        let mut codes = vec![Code { code: 0, value: 0 }; pairs.len()];
        let (mut code, mut length) = (0u32, 32u8);
        for i in (0..pairs.len()).rev() {
            length = length.min(pairs[i].0);
            codes[i] = Code {
                code,
                value: pairs[i].1,
            };
            code = code.wrapping_add(1u32.wrapping_shl(32 - u32::from(length)));
        }
        codes.sort_by_key(|c| c.code);
        let mut t = Tree {
            nodes: Vec::with_capacity(codes.len()),
        };
        t.build(&codes, 0)?;
        Ok(t)
    }

    /// `buildHuffmanNode`.
    fn build(&mut self, codes: &[Code], level: u32) -> Result<u16, Fault> {
        let test = 1u32 << (31 - level);
        let first_right = codes
            .iter()
            .position(|c| c.code & test != 0)
            .unwrap_or(codes.len());
        let (left, right) = codes.split_at(first_right);
        if left.is_empty() || right.is_empty() {
            if codes.len() < 2 {
                return Err(Fault::Go("empty Huffman tree"));
            }
            if level == 31 {
                return Err(Fault::Go("equal symbols in Huffman tree"));
            }
            return self.build(if left.is_empty() { right } else { left }, level + 1);
        }
        let index = self.nodes.len();
        self.nodes.push((Child::Leaf(0), Child::Leaf(0)));
        let l = if left.len() == 1 {
            Child::Leaf(left[0].value)
        } else {
            Child::Node(self.build(left, level + 1)?)
        };
        let r = if right.len() == 1 {
            Child::Leaf(right[0].value)
        } else {
            Child::Node(self.build(right, level + 1)?)
        };
        self.nodes[index] = (l, r);
        Ok(index as u16)
    }

    /// A table of the first [`PEEK`] bits: the leaf reached and the bits it took, or the
    /// inner node reached after all of them.
    fn table(&self) -> Vec<(Child, u8)> {
        (0..1u32 << PEEK)
            .map(|prefix| {
                let mut node = 0usize;
                for depth in 1..=PEEK {
                    let (l, r) = self.nodes[node];
                    match if prefix >> (PEEK - depth) & 1 != 0 {
                        l
                    } else {
                        r
                    } {
                        Child::Leaf(v) => return (Child::Leaf(v), depth as u8),
                        Child::Node(n) => node = usize::from(n),
                    }
                }
                (Child::Node(node as u16), PEEK as u8)
            })
            .collect()
    }

    /// `huffmanTree.Decode`: a symbol, `table` being [`Tree::table`].
    fn decode(&self, table: &[(Child, u8)], br: &mut Bits<'_>) -> Result<u16, Fault> {
        let (first, used) = table[bits(br.buf, br.bit, PEEK) as usize];
        if br.bit + u64::from(used) > br.end {
            return Err(Fault::NeedMore);
        }
        br.bit += u64::from(used);
        let mut node = match first {
            Child::Leaf(v) => return Ok(v),
            Child::Node(n) => usize::from(n),
        };
        loop {
            let (l, r) = self.nodes[node];
            match if br.bit()? { l } else { r } {
                Child::Leaf(v) => return Ok(v),
                Child::Node(n) => node = usize::from(n),
            }
        }
    }
}

/// Bits looked up at once when decoding a Huffman symbol.
const PEEK: u32 = 10;

/// Whether the block may hold four equal bytes `b`, a 0, then `b` again: the only place where
/// Go's run-length stage parts from libbzip2's. A necessary condition, found without walking
/// the block (the walk's random reads are what a block's decoding costs). `tt` is Go's block
/// array after the inverse BWT's pointer pass: row `r` has the BWT's last column `L[r]` in its
/// low byte and in its upper bits the row after it in the text; `start[b]` is the first row
/// whose first column byte `F` is `b`. A row `x` stands for the text byte `L[x]` followed by
/// `F[x]`; the row before `x` is `LF(x) = start[L[x]] + (L[x]s above x in L)`. Byte 0's rows
/// come first, and the `k`-th of them points to the `k`-th 0 of `L`, so for each 0 of the text
/// the byte after it (`F` of that 0's row) and the byte before it (`L[k]`) come from a forward
/// pass; only a 0 between two equal bytes costs more, going back two more bytes.
fn count_zero_then_same(tt: &[u32], start: &[usize; 257]) -> bool {
    let low = |i: usize| (tt[i] & 0xff) as usize;
    // base[b]: the b's of L above start[b].
    let mut base = [0usize; 256];
    let mut counts = [0usize; 256];
    for b in 0..256 {
        base[b] = counts[b];
        for i in start[b]..start[b + 1] {
            counts[low(i)] += 1;
        }
    }
    let zeros = &tt[..start[1]];
    let mut budget = tt.len();
    let mut lf = |b: usize, y: usize| -> Option<usize> {
        if b == 0 {
            return Some(zeros.partition_point(|&p| ((p >> 8) as usize) < y));
        }
        let n = y - start[b];
        budget = budget.checked_sub(n)?;
        Some(start[b] + base[b] + (start[b]..y).filter(|&i| low(i) == b).count())
    };
    let mut running = [0usize; 256];
    let mut after = 0;
    for (k, &row) in zeros.iter().enumerate() {
        let before = low(k);
        let x = (row >> 8) as usize;
        while start[after + 1] <= x {
            after += 1;
        }
        let y2 = start[before] + running[before];
        running[before] += 1;
        if before != after || low(y2) != before {
            continue;
        }
        let b = before;
        let Some(y3) = lf(b, y2) else {
            return true;
        };
        if low(y3) != b {
            continue;
        }
        let Some(y4) = lf(b, y3) else {
            return true;
        };
        if low(y4) == b {
            return true;
        }
    }
    false
}

fn mtf(list: &mut [u8], n: usize) -> u8 {
    let b = list[n];
    list.copy_within(0..n, 1);
    list[0] = b;
    b
}

/// Go's `readBlock` and the run-length stage of its `read` on the block whose bits (after
/// the block magic) start at `bit` of `buf`, for a stream of block size `size`: the bit where
/// the block ends, or Go's error. `tt` is scratch. The block CRC is computed only where Go's
/// output may differ from libbzip2's (which checked its own), unless `always_crc`.
pub(super) fn read_block(
    buf: &[u8],
    bit: u64,
    size: usize,
    tt: &mut Vec<u32>,
    always_crc: bool,
) -> Result<u64, Fault> {
    let mut br = Bits {
        buf,
        bit,
        end: buf.len() as u64 * 8,
    };
    let want_crc = br.read(32)?;
    if br.read(1)? != 0 {
        return Err(Fault::Go("deprecated randomized files"));
    }
    let orig_ptr = br.read(24)? as usize;
    let ranges = br.read(16)?;
    let mut symbols = Vec::with_capacity(256);
    for range in 0..16u32 {
        if ranges & (1 << (15 - range)) != 0 {
            let used = br.read(16)?;
            for s in 0..16u32 {
                if used & (1 << (15 - s)) != 0 {
                    symbols.push((16 * range + s) as u8);
                }
            }
        }
    }
    if symbols.is_empty() {
        return Err(Fault::Go("no symbols in input"));
    }
    let trees_n = br.read(3)? as usize;
    if !(2..=6).contains(&trees_n) {
        return Err(Fault::Go("invalid number of Huffman trees"));
    }
    let selectors_n = br.read(15)? as usize;
    let mut tree_mtf: Vec<u8> = (0..trees_n as u8).collect();
    let mut selectors = Vec::with_capacity(selectors_n);
    for _ in 0..selectors_n {
        let mut c = 0;
        while br.bit()? {
            c += 1;
        }
        if c >= trees_n {
            return Err(Fault::Go("tree index too large"));
        }
        selectors.push(mtf(&mut tree_mtf, c));
    }
    let alphabet = symbols.len() + 2;
    let mut lengths = vec![0u8; alphabet];
    let mut trees = Vec::with_capacity(trees_n);
    // Every table is a complete prefix code (Kraft sum 1): Go's codes are then libbzip2's.
    let mut complete = true;
    for _ in 0..trees_n {
        let mut length = br.read(5)? as i32;
        for l in lengths.iter_mut() {
            loop {
                if !(1..=20).contains(&length) {
                    return Err(Fault::Go("Huffman length out of range"));
                }
                if !br.bit()? {
                    break;
                }
                if br.bit()? {
                    length -= 1;
                } else {
                    length += 1;
                }
            }
            *l = length as u8;
        }
        let kraft: u32 = lengths.iter().map(|&l| 1u32 << (20 - l)).sum();
        complete &= kraft == 1 << 20;
        let tree = Tree::new(&lengths)?;
        let table = tree.table();
        trees.push((tree, table));
    }
    if selectors.is_empty() {
        return Err(Fault::Go("no tree selectors given"));
    }
    if tt.len() < size {
        tt.resize(size, 0);
    }
    let mut c = [0u32; 256];
    let mut list = symbols;
    let (mut n, mut selector, mut decoded) = (0usize, 1usize, 0);
    let (mut tree, mut table) = {
        let (t, tab) = &trees[usize::from(selectors[0])];
        (t, &tab[..])
    };
    let (mut repeat, mut power) = (0usize, 0usize);
    loop {
        if decoded == 50 {
            if selector >= selectors_n {
                return Err(Fault::Go(
                    "insufficient selector indices for number of symbols",
                ));
            }
            let (t, tab) = &trees[usize::from(selectors[selector])];
            (tree, table) = (t, &tab[..]);
            selector += 1;
            decoded = 0;
        }
        let v = usize::from(tree.decode(table, &mut br)?);
        decoded += 1;
        if v < 2 {
            if repeat == 0 {
                power = 1;
            }
            repeat += power << v;
            power <<= 1;
            if repeat > 2 * 1024 * 1024 {
                return Err(Fault::Go("repeat count too large"));
            }
            continue;
        }
        if repeat > 0 {
            if repeat > size - n {
                return Err(Fault::Go("repeats past end of block"));
            }
            let b = list[0];
            tt[n..n + repeat].fill(u32::from(b));
            c[usize::from(b)] += repeat as u32;
            n += repeat;
            repeat = 0;
        }
        if v == alphabet - 1 {
            break;
        }
        let b = mtf(&mut list, v - 1);
        if n >= size {
            return Err(Fault::Go("data exceeds block size"));
        }
        tt[n] = u32::from(b);
        c[usize::from(b)] += 1;
        n += 1;
    }
    if orig_ptr >= n {
        return Err(Fault::Go("origPtr out of bounds"));
    }
    // Inverse BWT (`inverseBWT`), then the run-length stage (`readFromBlock`) and its CRC.
    let mut sum = 0;
    for k in c.iter_mut() {
        sum += *k;
        *k = sum - *k;
    }
    let mut start = [n; 257];
    for (s, &k) in start.iter_mut().zip(&c) {
        *s = k as usize;
    }
    for i in 0..n {
        let b = (tt[i] & 0xff) as usize;
        tt[c[b] as usize] |= (i as u32) << 8;
        c[b] += 1;
    }
    // Go's output is libbzip2's, whose CRC libbzip2 checked, unless a table is not a complete
    // code (the two read it differently) or Go's run-length stage parts from libbzip2's (a
    // count of 0 followed by the byte of the run). Walking the block is what costs, so it is
    // walked only when one of them may be so.
    if !always_crc && complete && !count_zero_then_same(&tt[..n], &start) {
        return Ok(br.bit);
    }
    let mut pos = tt[orig_ptr] >> 8;
    let (mut last, mut same) = (-1i32, 0u32);
    let mut crc = !0u32;
    for _ in 0..n {
        pos = tt[pos as usize];
        let b = pos as u8;
        pos >>= 8;
        if same == 3 {
            // Go leaves `last` as it is when the count is 0 (libbzip2 starts a new run).
            for _ in 0..b {
                crc = crc_update(crc, last as u8);
            }
            if b > 0 {
                last = -1;
            }
            same = 0;
            continue;
        }
        if last == i32::from(b) {
            same += 1;
        } else {
            same = 0;
        }
        last = i32::from(b);
        crc = crc_update(crc, b);
    }
    if !crc != want_crc {
        return Err(Fault::Go("block checksum mismatch"));
    }
    Ok(br.bit)
}
