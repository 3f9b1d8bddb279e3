//! The frame walker: where a frame ends, found from its frame and block headers alone.

use super::WINDOW_LOG_MAX;
use super::weights;
use crate::decode::parallel::BUFFER_MAX;

const ZSTD_MAGIC: u32 = 0xFD2F_B528;
/// Skippable frames: magic 0x184D2A50 to 0x184D2A5F, a 4-byte length, that many bytes.
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;
const BLOCK_SIZE_MAX: u64 = 128 << 10;

/// Where a frame walk stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Walk {
    /// Needs this many more bytes of the frame to go on.
    Need(usize),
    /// The frame is whole: this many bytes.
    Frame,
    /// A skippable frame: its remaining bytes (after the 8-byte header) are to be skipped.
    Skip(u64),
    /// Not a frame the walker can cut out (unknown magic, reserved bits, a dictionary, a window
    /// over the limit, an invalid block, or too large to hold): decode it as it streams.
    Stream,
}

/// Walks the headers of one frame, held from its first byte in a buffer that grows as the
/// walk asks for bytes.
#[derive(Debug, Default)]
pub(super) struct Walker {
    /// Offset in the frame of the next header to read.
    cursor: usize,
    /// After the frame header: blocks.
    in_blocks: bool,
    block_max: u64,
    checksum: bool,
    content_size: Option<u64>,
    /// Decoded bytes the blocks walked so far can produce at most.
    bound: u64,
    pub(super) done: bool,
    /// Frames with a window over `2^window_log` are left to the streaming decoder, which
    /// refuses them (0: 2^29, containers/image's limit).
    window_log: u32,
}

impl Walker {
    /// A walker that leaves frames with a window over `2^window_log` to the streaming decoder.
    pub(super) fn limited(window_log: u32) -> Walker {
        Walker {
            window_log,
            ..Walker::default()
        }
    }

    /// Goes as far as `frame` allows.
    pub(super) fn walk(&mut self, frame: &[u8]) -> Walk {
        loop {
            if self.done {
                return Walk::Frame;
            }
            if !self.in_blocks {
                if frame.len() < 5 {
                    return Walk::Need(5 - frame.len());
                }
                let magic = u32::from_le_bytes(frame[..4].try_into().unwrap());
                if magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC {
                    if frame.len() < 8 {
                        return Walk::Need(8 - frame.len());
                    }
                    return Walk::Skip(u64::from(u32::from_le_bytes(
                        frame[4..8].try_into().unwrap(),
                    )));
                }
                if magic != ZSTD_MAGIC {
                    return Walk::Stream;
                }
                let fhd = frame[4];
                let single_segment = fhd & 0x20 != 0;
                let dict_id_size = [0, 1, 2, 4][usize::from(fhd & 3)];
                let fcs_size = match fhd >> 6 {
                    0 => usize::from(single_segment),
                    1 => 2,
                    2 => 4,
                    _ => 8,
                };
                let header = 5 + usize::from(!single_segment) + dict_id_size + fcs_size;
                if frame.len() < header {
                    return Walk::Need(header - frame.len());
                }
                if fhd & 0x08 != 0
                    || frame[5 + usize::from(!single_segment)..][..dict_id_size]
                        .iter()
                        .any(|&b| b != 0)
                {
                    return Walk::Stream;
                }
                let fcs_at = header - fcs_size;
                let mut fcs = [0u8; 8];
                fcs[..fcs_size].copy_from_slice(&frame[fcs_at..header]);
                let fcs = u64::from_le_bytes(fcs) + if fcs_size == 2 { 256 } else { 0 };
                self.content_size = (fcs_size > 0).then_some(fcs);
                let window = if single_segment {
                    fcs
                } else {
                    let wd = frame[5];
                    let log = 10 + u32::from(wd >> 3);
                    let base = 1u64 << log;
                    base + (base / 8) * u64::from(wd & 7)
                };
                let log = if self.window_log == 0 {
                    WINDOW_LOG_MAX
                } else {
                    self.window_log
                };
                if window > 1 << log || self.content_size.is_some_and(|n| n > BUFFER_MAX / 2) {
                    return Walk::Stream;
                }
                self.block_max = window.min(BLOCK_SIZE_MAX);
                self.checksum = fhd & 0x04 != 0;
                self.cursor = header;
                self.in_blocks = true;
            }
            let at = self.cursor;
            if frame.len() < at + 3 {
                return Walk::Need(at + 3 - frame.len());
            }
            let h = u32::from_le_bytes([frame[at], frame[at + 1], frame[at + 2], 0]);
            let (last, kind, size) = (h & 1 != 0, (h >> 1) & 3, u64::from(h >> 3));
            let body = match kind {
                0 => size,
                1 => 1,
                2 => size,
                _ => return Walk::Stream,
            };
            if size > self.block_max {
                return Walk::Stream;
            }
            self.bound += if kind == 2 { self.block_max } else { size };
            let end = at + 3 + body as usize + if last && self.checksum { 4 } else { 0 };
            if self.bound.min(self.content_size.unwrap_or(u64::MAX)) > BUFFER_MAX / 2
                || end as u64 > BUFFER_MAX / 2
            {
                return Walk::Stream;
            }
            if frame.len() < end {
                // Come back to this block header once its body is here.
                self.bound -= if kind == 2 { self.block_max } else { size };
                return Walk::Need(end - frame.len());
            }
            self.cursor = end;
            if last {
                self.done = true;
            }
        }
    }

    /// The most the walked frame decodes to.
    pub(super) fn output_bound(&self) -> u64 {
        self.content_size.unwrap_or(self.bound).min(self.bound)
    }
}

/// Whether a zstd input whose first bytes are `prefix` is worth decoding in parallel: its
/// first frame ends within `prefix` and another frame follows. `None` when the first frame
/// goes on past `prefix`, or nothing follows it yet.
///
/// A small content size in the first frame's header says nothing about what follows: one
/// frame of a few MiB (what `zstd FILE` writes for a small layer) decoded "in parallel" is
/// one job that gathers the whole frame before decoding it and decodes it whole before the
/// DiffID stage sees a byte, so nothing overlaps; streamed, the hashes run beside the decoder.
pub(in crate::decode) fn splits(prefix: &[u8]) -> Option<bool> {
    let mut w = Walker::default();
    match w.walk(prefix) {
        Walk::Frame => prefix
            .get(w.cursor..w.cursor + 4)
            .map(|m| u32::from_le_bytes(m.try_into().unwrap()) == ZSTD_MAGIC),
        Walk::Need(_) => None,
        Walk::Skip(_) | Walk::Stream => Some(false),
    }
}

/// Follows the units of the zstd bytes handed to libzstd — a frame header, each block
/// (header and body), a frame's checksum, a skippable frame — so that the decoders feed
/// libzstd no further than the end of the current unit, and an error names the unit it was
/// found in and where that unit starts (libzstd itself reports no position). It also notes
/// the faults of a header that libzstd lets pass and containers/image does not (see
/// [`Units::fault`]). Anything it does not understand (an unknown magic, a reserved block type) makes it lose track: the frame is
/// then the smallest unit it names.
#[derive(Debug, Clone)]
pub(super) struct Units {
    state: Unit,
    /// The frame or block header gathered so far.
    head: [u8; 18],
    have: usize,
    /// Offsets in the input of the current frame, the current unit and the next byte.
    frame_start: u64,
    unit_start: u64,
    pos: u64,
    /// Blocks of the current frame started so far.
    blocks: u64,
    checksum: bool,
    /// A fault libzstd does not report but containers/image does, found in a header:
    /// what, the block number, and where the block starts. Taken by [`Units::fault`].
    fault: Option<(String, u64, u64)>,
    /// The first bytes of the current compressed block's body, for [`weights::fault`], and
    /// how many to gather (0: none).
    body: Vec<u8>,
    body_want: usize,
}

/// The most [`weights::needed`] asks: a 5-byte literals header, the weights' size byte, 127
/// bytes of weights.
const BODY_MAX: usize = 5 + 1 + 127;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// The first bytes of a frame: its magic and (zstd) its descriptor byte.
    Magic,
    FrameHeader {
        len: usize,
    },
    SkipHeader,
    Skip {
        left: u64,
    },
    BlockHeader,
    BlockBody {
        left: u64,
        last: bool,
    },
    Checksum {
        left: u64,
    },
    Lost,
}

impl Units {
    /// Tracking from a frame that starts at input offset `at`.
    pub(super) fn at(at: u64) -> Units {
        Units {
            state: Unit::Magic,
            head: [0; 18],
            have: 0,
            frame_start: at,
            unit_start: at,
            pos: at,
            blocks: 0,
            checksum: false,
            fault: None,
            body: Vec::new(),
            body_want: 0,
        }
    }

    /// The fault found in the bytes advanced over so far that libzstd does not report (see
    /// [`Units::advance`]), as `(what, block number in its frame, offset of the block)`.
    pub(super) fn fault(&mut self) -> Option<(String, u64, u64)> {
        self.fault.take()
    }

    /// How many more bytes belong to the current unit (at least 1).
    pub(super) fn limit(&self) -> usize {
        let n = match self.state {
            Unit::Magic => 5 - self.have as u64,
            Unit::SkipHeader => 8 - self.have as u64,
            Unit::FrameHeader { len } => (len - self.have) as u64,
            Unit::BlockHeader => 3 - self.have as u64,
            Unit::Skip { left } | Unit::BlockBody { left, .. } | Unit::Checksum { left } => left,
            Unit::Lost => u64::MAX,
        };
        usize::try_from(n).unwrap_or(usize::MAX).max(1)
    }

    /// Notes that `bytes` were handed to libzstd.
    pub(super) fn advance(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = self.limit().min(bytes.len());
            let (now, rest) = bytes.split_at(n);
            bytes = rest;
            self.pos += n as u64;
            match self.state {
                Unit::Magic | Unit::SkipHeader | Unit::FrameHeader { .. } | Unit::BlockHeader => {
                    self.head[self.have..self.have + n].copy_from_slice(now);
                    self.have += n;
                    self.headed();
                }
                Unit::Skip { left } => {
                    self.state = Unit::Skip {
                        left: left - n as u64,
                    };
                    if left == n as u64 {
                        self.next_frame();
                    }
                }
                Unit::BlockBody { left, last } => {
                    if self.body_want > 0 {
                        let k = now.len().min(self.body_want - self.body.len());
                        self.body.extend_from_slice(&now[..k]);
                        if self.body.len() == self.body_want {
                            self.body_want = 0;
                            if let Some(what) = weights::fault(&self.body) {
                                self.fault
                                    .get_or_insert((what, self.blocks, self.unit_start));
                            }
                        }
                    }
                    self.state = Unit::BlockBody {
                        left: left - n as u64,
                        last,
                    };
                    if left == n as u64 {
                        self.block_ended(last);
                    }
                }
                Unit::Checksum { left } => {
                    self.state = Unit::Checksum {
                        left: left - n as u64,
                    };
                    if left == n as u64 {
                        self.next_frame();
                    }
                }
                Unit::Lost => {}
            }
        }
    }

    /// Moves on once the header being gathered is complete.
    fn headed(&mut self) {
        let h = &self.head[..self.have];
        match self.state {
            Unit::Magic if h.len() == 5 => {
                let magic = u32::from_le_bytes(h[..4].try_into().unwrap());
                if magic & SKIPPABLE_MASK == SKIPPABLE_MAGIC {
                    self.state = Unit::SkipHeader;
                } else if magic != ZSTD_MAGIC {
                    self.state = Unit::Lost;
                } else {
                    let fhd = h[4];
                    let single_segment = fhd & 0x20 != 0;
                    let fcs_size = match fhd >> 6 {
                        0 => usize::from(single_segment),
                        1 => 2,
                        2 => 4,
                        _ => 8,
                    };
                    let len = 5
                        + usize::from(!single_segment)
                        + [0, 1, 2, 4][usize::from(fhd & 3)]
                        + fcs_size;
                    self.checksum = fhd & 0x04 != 0;
                    self.state = Unit::FrameHeader { len };
                    self.headed();
                }
            }
            Unit::SkipHeader if h.len() == 8 => {
                let left = u64::from(u32::from_le_bytes(h[4..8].try_into().unwrap()));
                self.state = Unit::Skip { left };
                if left == 0 {
                    self.next_frame();
                }
            }
            Unit::FrameHeader { len } if h.len() == len => self.start_block(),
            Unit::BlockHeader if h.len() == 3 => {
                let v = u32::from_le_bytes([h[0], h[1], h[2], 0]);
                let (last, kind, size) = (v & 1 != 0, (v >> 1) & 3, u64::from(v >> 3));
                let left = match kind {
                    1 => 1,
                    3 => {
                        self.state = Unit::Lost;
                        return;
                    }
                    2 if size < 2 && self.fault.is_none() => {
                        // RFC 8878 3.1.1.3: a compressed block holds at least a literals
                        // section header and a sequences section header. libzstd decodes an
                        // empty one to nothing; containers/image (klauspost/compress
                        // blockDec.reset) refuses it: "block too small".
                        self.fault = Some((
                            format!(
                                "compressed block of {size} bytes (at least 2: a literals and \
                                 a sequences header)"
                            ),
                            self.blocks,
                            self.unit_start,
                        ));
                        size
                    }
                    _ => size,
                };
                if kind == 2 {
                    self.body.clear();
                    self.body_want = usize::try_from(size).map_or(BODY_MAX, |s| s.min(BODY_MAX));
                }
                self.state = Unit::BlockBody { left, last };
                if left == 0 {
                    self.block_ended(last);
                }
            }
            _ => {}
        }
    }

    fn start_block(&mut self) {
        self.body_want = 0;
        self.state = Unit::BlockHeader;
        self.have = 0;
        self.blocks += 1;
        self.unit_start = self.pos;
    }

    fn block_ended(&mut self, last: bool) {
        if !last {
            self.start_block();
        } else if self.checksum {
            self.state = Unit::Checksum { left: 4 };
            self.unit_start = self.pos;
        } else {
            self.next_frame();
        }
    }

    fn next_frame(&mut self) {
        let fault = self.fault.take();
        *self = Units::at(self.pos);
        self.fault = fault;
    }

    /// The unit the next byte belongs to, for frame number `frame` (counted from 1), and the
    /// offset where that unit starts.
    pub(super) fn unit(&self, frame: u64) -> (String, u64) {
        match self.state {
            Unit::BlockHeader | Unit::BlockBody { .. } => (
                format!("block {} of frame {frame}", self.blocks),
                self.unit_start,
            ),
            Unit::Checksum { .. } => (
                format!("the content checksum of frame {frame}"),
                self.unit_start,
            ),
            Unit::FrameHeader { .. } => (format!("the header of frame {frame}"), self.frame_start),
            Unit::SkipHeader | Unit::Skip { .. } => {
                (format!("skippable frame {frame}"), self.frame_start)
            }
            Unit::Magic | Unit::Lost => (format!("frame {frame}"), self.frame_start),
        }
    }
}
