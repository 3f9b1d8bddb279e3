//! zstd (RFC 8878) through libzstd: concatenated frames, skippable frames after the first
//! (zstd:chunked keeps its table of contents in them; they add nothing to the DiffID),
//! content checksums verified, windows up to 512 MiB, no dictionaries.
//!
//! One frame cannot be decoded in parallel, but several can: [`ParZstdDecoder`] finds where
//! each frame ends by walking the frame and block headers (each block header gives the
//! block's size), and decodes whole frames on helper threads. Large frames, and anything the
//! walker does not recognise, go through the streaming [`ZstdDecoder`] as they come, so the
//! output and every error are the same as decoding sequentially.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

use zstd::zstd_safe::{self, DCtx, DParameter, InBuffer, OutBuffer, ResetDirective};

use super::parallel::{BUFFER_MAX, Crew, Done, OUTPUT_SLICE};
use super::{Decode, Helpers};
use crate::error::{Error, ErrorKind, Result};

/// containers/image (klauspost/compress) refuses windows over 512 MiB = 2^29.
const WINDOW_LOG_MAX: u32 = 29;

pub(crate) struct ZstdDecoder {
    dctx: DCtx<'static>,
    /// The last call ended exactly at a frame boundary with everything flushed.
    at_boundary: bool,
    /// Frames (skippable included) completed so far.
    frames: u64,
    offset: u64,
    frame_start: u64,
}

/// A decompression context with our limits.
fn new_dctx() -> Result<DCtx<'static>> {
    let mut dctx = DCtx::try_create()
        .ok_or_else(|| Error::new(ErrorKind::Internal, "cannot allocate a zstd context"))?;
    dctx.set_parameter(DParameter::WindowLogMax(WINDOW_LOG_MAX))
        .map_err(|code| zstd_error(code, false))?;
    Ok(dctx)
}

impl ZstdDecoder {
    pub(crate) fn new() -> Result<Self> {
        ZstdDecoder::resume(0, 0)
    }

    /// A decoder in the state the sequential one has after `frames` frames ending at
    /// `offset` (the parallel decoder hands frames over to it there).
    fn resume(frames: u64, offset: u64) -> Result<Self> {
        Ok(ZstdDecoder {
            dctx: new_dctx()?,
            at_boundary: frames > 0,
            frames,
            offset,
            frame_start: offset,
        })
    }

    fn run(&mut self, input: &[u8], output: &mut [u8]) -> Result<(usize, usize)> {
        let mut inb = InBuffer::around(input);
        let mut outb = OutBuffer::around(output);
        let result = self.dctx.decompress_stream(&mut outb, &mut inb);
        let (consumed, produced) = (inb.pos(), outb.pos());
        match result {
            Ok(hint) => {
                self.offset += consumed as u64;
                if consumed > 0 || produced > 0 {
                    let ended = hint == 0;
                    // libzstd stops at the end of each frame, so a call that consumed input
                    // and ended a frame ended a new one, even when it began at a boundary.
                    if ended && (consumed > 0 || !self.at_boundary) {
                        self.frames += 1;
                        self.frame_start = self.offset;
                    }
                    self.at_boundary = ended;
                }
                Ok((consumed, produced))
            }
            Err(code) => {
                let err = zstd_error(code, self.at_boundary && self.frames > 0);
                Err(err.at(self.frame_start))
            }
        }
    }
}

/// Maps a libzstd error code to our kinds; `between_frames` tells whether the decoder was
/// waiting for a new frame when it saw the bad bytes.
fn zstd_error(code: usize, between_frames: bool) -> Error {
    let name = zstd_safe::get_error_name(code);
    // ZSTD_ErrorCode values (zstd_errors.h), stable since libzstd 1.3.
    // SAFETY: ZSTD_getErrorCode only inspects the integer it is given.
    let code_enum = unsafe { zstd_safe::zstd_sys::ZSTD_getErrorCode(code) };
    let kind = match code_enum as u32 {
        10 if between_frames => {
            return Error::new(
                ErrorKind::TrailingData,
                "data after the last zstd frame is not a zstd frame",
            );
        }
        32 => {
            return Error::new(
                ErrorKind::Unsupported,
                "frame needs a dictionary (containers/image supports none)",
            );
        }
        16 => {
            return Error::new(
                ErrorKind::LimitExceeded,
                "frame window larger than 512 MiB (containers/image's limit)",
            );
        }
        // dstSize_tooSmall: our output buffers never are, so the frame decodes to more than
        // its header says. libzstd reports that as corruption_detected when it streams and
        // as this when it decodes the whole frame into a buffer of the declared size (the
        // parallel path; or the sequential one, when a whole frame fits in the input): one
        // answer, whatever the threads.
        70 => {
            return Error::new(
                ErrorKind::Corrupt,
                "invalid frame: Data corruption detected",
            );
        }
        12 | 14 | 40 | 42 => ErrorKind::Unsupported,
        _ => ErrorKind::Corrupt,
    };
    Error::new(kind, format!("invalid frame: {name}"))
}

impl Decode for ZstdDecoder {
    fn decode(&mut self, input: &[u8], output: &mut [u8]) -> Result<(usize, usize)> {
        self.run(input, output)
    }

    fn finish(&mut self, output: &mut [u8]) -> Result<(usize, bool)> {
        if self.at_boundary {
            return Ok((0, true));
        }
        let (_, produced) = self.run(&[], output)?;
        if produced > 0 {
            return Ok((produced, false));
        }
        if self.at_boundary {
            return Ok((0, true));
        }
        Err(Error::new(
            ErrorKind::Truncated,
            format!("data ends inside frame {}", self.frames + 1),
        )
        .at(self.frame_start))
    }
}

const ZSTD_MAGIC: u32 = 0xFD2F_B528;
/// Skippable frames: magic 0x184D2A50 to 0x184D2A5F, a 4-byte length, that many bytes.
const SKIPPABLE_MASK: u32 = 0xFFFF_FFF0;
const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;
const BLOCK_SIZE_MAX: u64 = 128 << 10;

/// Where a frame walk stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
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
struct Walker {
    /// Offset in the frame of the next header to read.
    cursor: usize,
    /// After the frame header: blocks.
    in_blocks: bool,
    block_max: u64,
    checksum: bool,
    content_size: Option<u64>,
    /// Decoded bytes the blocks walked so far can produce at most.
    bound: u64,
    done: bool,
}

impl Walker {
    /// Goes as far as `frame` allows.
    fn walk(&mut self, frame: &[u8]) -> Walk {
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
                if window > 1 << WINDOW_LOG_MAX
                    || self.content_size.is_some_and(|n| n > BUFFER_MAX / 2)
                {
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
    fn output_bound(&self) -> u64 {
        self.content_size.unwrap_or(self.bound).min(self.bound)
    }
}

/// Whether a zstd input whose first bytes are `prefix` is worth decoding in parallel: its
/// first frame is small (it says so in its header, or it ends within `prefix` and another
/// frame follows). `None` when the first frame has no content size and goes on past `prefix`.
pub(crate) fn splits(prefix: &[u8]) -> Option<bool> {
    let mut w = Walker::default();
    match w.walk(prefix) {
        Walk::Frame => prefix
            .get(w.cursor..w.cursor + 4)
            .map(|m| u32::from_le_bytes(m.try_into().unwrap()) == ZSTD_MAGIC),
        Walk::Need(_) if w.content_size.is_some() => Some(true),
        Walk::Need(_) => None,
        Walk::Skip(_) | Walk::Stream => Some(false),
    }
}

/// A frame decoded whole on the crew: its length, or the error decoding it.
type FrameResult = Result<usize>;

/// The parallel zstd decoder: frames cut out by walking their headers, decoded on a crew,
/// written out in order. See the module documentation.
pub(crate) struct ParZstdDecoder {
    crew: Crew<Option<DCtx<'static>>, FrameResult>,
    /// Decoding the current frame as it streams in (a large or odd frame, or the input's end).
    seq: Option<ZstdDecoder>,
    /// Gathered bytes handed to `seq`, fed to it before new input.
    replay: Vec<u8>,
    replay_pos: usize,
    /// The frame being gathered, from its first byte.
    frame: Vec<u8>,
    walker: Walker,
    /// Bytes of a skippable frame still to skip.
    skipping: u64,
    /// Frames (skippable included) completed so far, as the sequential decoder counts them.
    frames: u64,
    /// Offset of the next input byte, and of the current frame.
    pos: u64,
    frame_start: u64,
    emitting: Option<(Vec<u8>, usize, usize, Option<Error>)>,
    charges: VecDeque<u64>,
    charged: u64,
    finishing: bool,
    failed: Option<Error>,
    submitted: u64,
}

impl ParZstdDecoder {
    /// A decoder with `helpers`; `None` if no helper thread could start.
    pub(crate) fn new(helpers: Helpers) -> Option<Self> {
        let crew = Crew::new(helpers.permit, helpers.max, || None, "zstd")?;
        Some(ParZstdDecoder {
            crew,
            seq: None,
            replay: Vec::new(),
            replay_pos: 0,
            frame: Vec::new(),
            walker: Walker::default(),
            skipping: 0,
            frames: 0,
            pos: 0,
            frame_start: 0,
            emitting: None,
            charges: VecDeque::new(),
            charged: 0,
            finishing: false,
            failed: None,
            submitted: 0,
        })
    }

    fn outstanding(&self) -> bool {
        self.emitting.is_some() || self.crew.pending() > 0
    }

    fn room(&self, charge: u64) -> bool {
        self.charges.len() < 2 * self.crew.decoders() && self.charged + charge <= BUFFER_MAX
    }

    /// Whether what comes next must wait for the frames in flight to be written out.
    fn must_drain(&self) -> bool {
        self.finishing || self.seq.is_some() || (self.walker.done && !self.room(self.charge()))
    }

    fn charge(&self) -> u64 {
        self.frame.len() as u64 + self.walker.output_bound()
    }

    fn emit(&mut self, out: &mut [u8]) -> Result<usize> {
        let mut n = 0;
        loop {
            if self.emitting.is_none() {
                let Some(done) = self.crew.try_take() else {
                    return Ok(n);
                };
                self.emitting = Some(accept(done));
            }
            let (buf, pos, len, _) = self.emitting.as_mut().expect("a frame being written");
            let k = (*len - *pos).min(out.len() - n);
            out[n..n + k].copy_from_slice(&buf[*pos..*pos + k]);
            *pos += k;
            n += k;
            if *pos < *len {
                return Ok(n);
            }
            let (buf, _, _, error) = self.emitting.take().expect("a frame being written");
            self.charged -= self.charges.pop_front().expect("a charge per frame");
            if let Some(e) = error {
                return Err(e);
            }
            self.crew.recycle(buf);
        }
    }

    fn wait(&mut self) {
        if self.emitting.is_none() {
            if let Some(done) = self.crew.take() {
                self.emitting = Some(accept(done));
            }
        }
    }

    /// Hands the current frame, as gathered so far, to the streaming decoder.
    fn stream_frame(&mut self) -> Result<()> {
        self.seq = Some(ZstdDecoder::resume(self.frames, self.frame_start)?);
        self.replay = std::mem::take(&mut self.frame);
        self.replay_pos = 0;
        self.walker = Walker::default();
        Ok(())
    }

    fn submit(&mut self) {
        let charge = self.charge();
        self.charges.push_back(charge);
        self.charged += charge;
        let frame = std::mem::take(&mut self.frame);
        let (bound, start) = (self.walker.output_bound(), self.frame_start);
        self.crew.submit(Box::new(move |dctx, out, stop| {
            decode_frame(dctx, &frame, bound, out, stop).map_err(|e| e.at(start))
        }));
        self.submitted += 1;
        self.frames += 1;
        self.frame_start = self.pos;
        self.walker = Walker::default();
    }

    fn run(&mut self, input: &[u8], output: &mut [u8]) -> Result<(usize, usize)> {
        let (mut ip, mut op) = (0, 0);
        loop {
            op += self.emit(&mut output[op..])?;
            if self.outstanding() && self.must_drain() {
                if op == output.len() {
                    break;
                }
                self.wait();
                continue;
            }
            if let Some(seq) = &mut self.seq {
                let from_replay = self.replay_pos < self.replay.len();
                let src = if from_replay {
                    &self.replay[self.replay_pos..]
                } else {
                    &input[ip..]
                };
                let (c, p) = seq.run(src, &mut output[op..])?;
                if from_replay {
                    self.replay_pos += c;
                    if self.replay_pos == self.replay.len() {
                        self.replay = Vec::new();
                        self.replay_pos = 0;
                    }
                } else {
                    ip += c;
                    self.pos += c as u64;
                }
                op += p;
                if seq.at_boundary && self.replay_pos == self.replay.len() {
                    // The frame ended: walk the next ones again.
                    self.frames = seq.frames;
                    self.frame_start = self.pos;
                    self.seq = None;
                    self.replay = Vec::new();
                    self.replay_pos = 0;
                } else if c == 0 && p == 0 {
                    break;
                }
                continue;
            }
            if self.skipping > 0 {
                let n = self.skipping.min((input.len() - ip) as u64);
                self.skipping -= n;
                ip += n as usize;
                self.pos += n;
                if self.skipping == 0 {
                    self.frames += 1;
                    self.frame_start = self.pos;
                } else {
                    break;
                }
                continue;
            }
            match self.walker.walk(&self.frame) {
                Walk::Frame => {
                    if self.room(self.charge()) {
                        self.submit();
                    }
                    // Else `must_drain` holds: wait for room above.
                    continue;
                }
                Walk::Skip(len) => {
                    self.frame.clear();
                    self.walker = Walker::default();
                    self.skipping = len;
                    if len == 0 {
                        self.frames += 1;
                        self.frame_start = self.pos;
                    }
                    continue;
                }
                Walk::Stream => {
                    self.stream_frame()?;
                    continue;
                }
                Walk::Need(n) => {
                    if ip == input.len() {
                        if self.finishing && !self.outstanding() {
                            // The input ends inside a frame, or before the first: the
                            // streaming decoder says how.
                            if !self.frame.is_empty() || self.frames == 0 {
                                self.stream_frame()?;
                                continue;
                            }
                        }
                        break;
                    }
                    let n = n.min(input.len() - ip);
                    self.frame.extend_from_slice(&input[ip..ip + n]);
                    ip += n;
                    self.pos += n as u64;
                }
            }
        }
        Ok((ip, op))
    }

    fn finish_inner(&mut self, output: &mut [u8]) -> Result<(usize, bool)> {
        self.finishing = true;
        let (_, p) = self.run(&[], output)?;
        if p > 0 || self.outstanding() {
            return Ok((p, false));
        }
        match &mut self.seq {
            Some(seq) => seq.finish(output),
            None if self.skipping > 0 => Err(Error::new(
                ErrorKind::Truncated,
                format!("data ends inside frame {}", self.frames + 1),
            )
            .at(self.frame_start)),
            None => Ok((0, true)),
        }
    }
}

fn accept((buf, result): Done<FrameResult>) -> (Vec<u8>, usize, usize, Option<Error>) {
    match result {
        Some(Ok(len)) => (buf, 0, len, None),
        Some(Err(e)) => (buf, 0, 0, Some(e)),
        None => (
            buf,
            0,
            0,
            Some(Error::new(
                ErrorKind::Internal,
                "a zstd decoder thread panicked",
            )),
        ),
    }
}

/// Decodes one whole frame (walked, so its end is known) into `out`; returns its length.
/// `bound` is the most it can decode to. Errors carry no offset.
fn decode_frame(
    dctx: &mut Option<DCtx<'static>>,
    frame: &[u8],
    bound: u64,
    out: &mut Vec<u8>,
    stop: &AtomicBool,
) -> Result<usize> {
    let dctx = match dctx {
        Some(d) => {
            d.reset(ResetDirective::SessionOnly)
                .map_err(|code| zstd_error(code, false))?;
            d
        }
        None => dctx.insert(new_dctx()?),
    };
    // One spare byte, so that a frame decoding to more than it may fails as when streamed.
    let mut n = usize::try_from(bound).expect("bounded by BUFFER_MAX") + 1;
    if out.len() < n {
        out.resize(n, 0);
    }
    let (mut ip, mut op) = (0, 0);
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(Error::new(ErrorKind::Cancelled, "decoding stopped"));
        }
        if op == n {
            // More than the frame header allows: libzstd reports it once it sees it.
            if n as u64 > BUFFER_MAX {
                return Err(Error::new(
                    ErrorKind::Internal,
                    "a zstd frame decodes to more than its blocks allow",
                ));
            }
            n += OUTPUT_SLICE;
            if out.len() < n {
                out.resize(n, 0);
            }
        }
        let end = (op + OUTPUT_SLICE).min(n);
        let mut inb = InBuffer::around(&frame[ip..]);
        let mut outb = OutBuffer::around(&mut out[op..end]);
        let hint = dctx
            .decompress_stream(&mut outb, &mut inb)
            .map_err(|code| zstd_error(code, false))?;
        let (c, p) = (inb.pos(), outb.pos());
        ip += c;
        op += p;
        if hint == 0 {
            if ip != frame.len() {
                return Err(Error::new(
                    ErrorKind::Internal,
                    "a zstd frame ended elsewhere than its headers say",
                ));
            }
            return Ok(op);
        }
        if c == 0 && p == 0 && op < n {
            return Err(Error::new(
                ErrorKind::Internal,
                "a zstd frame needs more bytes than its headers say",
            ));
        }
    }
}

impl Decode for ParZstdDecoder {
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
    //! containers/image and the `zstd` program): the same output, the same errors, on inputs
    //! the `zstd` program makes.

    use std::io::Write as _;
    use std::path::Path;
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
            b"zstd ",
            b"\0\0\0\0\0\0",
            b"usr/lib/",
            b"frame\n",
        ];
        let mut rng = Rng(seed | 1);
        let mut v = Vec::with_capacity(len + 32);
        while v.len() < len {
            match rng.below(3) {
                0 => v.extend((0..rng.below(30)).map(|_| rng.next() as u8)),
                _ => v.extend_from_slice(words[rng.below(words.len())]),
            }
        }
        v.truncate(len);
        v
    }

    fn zstd(args: &[&str], data: &[u8]) -> Vec<u8> {
        let mut child = Command::new("zstd")
            .args(["-c", "-q"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the zstd program must be installed to run these tests");
        let mut stdin = child.stdin.take().unwrap();
        let input = data.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(out.status.success(), "zstd {args:?} failed");
        out.stdout
    }

    /// Frames of `piece` bytes each, as zstd:chunked and concatenated files have them.
    fn frames(data: &[u8], piece: usize, args: &[&str]) -> Vec<u8> {
        data.chunks(piece.max(1))
            .flat_map(|c| zstd(args, c))
            .collect()
    }

    fn skippable(payload: &[u8]) -> Vec<u8> {
        let mut v = 0x184D_2A5Eu32.to_le_bytes().to_vec();
        v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        v.extend_from_slice(payload);
        v
    }

    fn decoder(helpers: usize) -> Box<dyn Decode> {
        if helpers == 0 {
            return Box::new(ZstdDecoder::new().unwrap());
        }
        let helpers = Helpers {
            permit: Permit::for_tests(helpers),
            max: helpers,
        };
        Box::new(ParZstdDecoder::new(helpers).unwrap())
    }

    /// Feeds `data` in pieces of up to `max_in` bytes into output buffers of up to `max_out`
    /// (random sizes from `seed`), checking the trait's progress contract.
    fn decode(
        data: &[u8],
        helpers: usize,
        seed: u64,
        max_in: usize,
        max_out: usize,
    ) -> Result<Vec<u8>> {
        let mut dec = decoder(helpers);
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

    const FEEDS: [(u64, usize, usize); 4] = [
        (1, usize::MAX / 2, 1 << 16),
        (2, 1, 1),
        (3, 700, 300),
        (4, 100_000, 70_000),
    ];

    /// Sequential and parallel decoding agree, output and errors alike, with every feed.
    fn assert_same(data: &[u8]) -> Result<Vec<u8>> {
        let mut first = None;
        for (seed, max_in, max_out) in FEEDS {
            let max_in = max_in.min(data.len().max(1));
            let seq = decode(data, 0, seed, max_in, max_out);
            for helpers in [1, 3] {
                let par = decode(data, helpers, seed, max_in, max_out);
                match (&seq, &par) {
                    (Ok(a), Ok(b)) => {
                        assert!(a == b, "feed {seed}, {helpers} helpers: outputs differ")
                    }
                    _ => assert_eq!(seq, par, "feed {seed}, {helpers} helpers"),
                }
            }
            first.get_or_insert(seq);
        }
        first.unwrap()
    }

    #[test]
    fn frames_decode_as_sequential() {
        let data = payload(300_000, 1);
        let cases = [
            frames(&data, 10_000, &["-1"]),
            frames(&data, 20_000, &["-3", "--no-check"]),
            frames(&data, 100_000, &["-1", "--no-content-size"]),
            frames(&data, 300_000, &["-1"]),
            zstd(&["-1", "--no-content-size"], &data),
            [
                frames(&data, 7_000, &["-1"]),
                skippable(b"toc"),
                skippable(b""),
            ]
            .concat(),
            [
                frames(&data[..50_000], 5000, &["-1"]),
                skippable(&[7; 3000]),
                frames(&data[50_000..], 60_000, &["-1"]),
            ]
            .concat(),
            [
                zstd(&[], b""),
                zstd(&[], b"x"),
                zstd(&["--no-content-size"], b""),
            ]
            .concat(),
            // Many raw and RLE blocks.
            frames(&[0u8; 400_000], 50_000, &["-1"]),
            frames(
                &(0..200_000u32)
                    .map(|i| (i * 2654435761) as u8)
                    .collect::<Vec<_>>(),
                40_000,
                &["-1"],
            ),
        ];
        for (i, z) in cases.iter().enumerate() {
            let out = assert_same(z).unwrap_or_else(|e| panic!("case {i}: {e}"));
            assert!(!out.is_empty() || i == 7 || out.len() == 1, "case {i}");
        }
    }

    #[test]
    fn bad_inputs_fail_as_sequential() {
        let data = payload(100_000, 2);
        let z = frames(&data, 8000, &["-1"]);
        let cat = |parts: &[&[u8]]| parts.concat();
        let cases = [
            cat(&[&z, b"garbage!"]),
            cat(&[&z, &[0x28, 0xb5]]),
            cat(&[&z, &skippable(b"abc")[..6]]),
            cat(&[&z, &[0; 4]]),
            cat(&[&z[..z.len() / 2], &z]),
            // A window larger than 512 MiB.
            cat(&[&z, &zstd(&["-q", "--long=30"], b"small")]),
            Vec::new(),
            z[..3].to_vec(),
        ];
        for (i, bad) in cases.iter().enumerate() {
            assert!(assert_same(bad).is_err(), "case {i}");
        }
    }

    #[test]
    fn truncations_and_corruptions_fail_as_sequential() {
        let data = payload(50_000, 3);
        let z = frames(&data, 4000, &["-1"]);
        for len in (0..z.len()).step_by(37) {
            assert!(assert_same(&z[..len]).is_err(), "len {len}");
        }
        let mut rng = Rng(4);
        for _ in 0..200 {
            let mut bad = z.clone();
            let i = rng.below(bad.len());
            bad[i] ^= 1 << rng.below(8);
            let _ = assert_same(&bad);
        }
    }

    #[test]
    fn corpus_as_sequential() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/peers/zstd");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let twice = [data.clone(), data.clone()].concat();
            for d in [&data, &twice] {
                let seq = decode(d, 0, 1, usize::MAX / 2, 1 << 16);
                let par = decode(d, 2, 1, usize::MAX / 2, 1 << 16);
                assert!(seq == par, "{}: {seq:?} vs {par:?}", path.display());
            }
        }
    }

    #[test]
    fn splits_wants_small_frames() {
        let data = payload(700_000, 5);
        assert_eq!(splits(&frames(&data, 100_000, &["-1"])), Some(true));
        assert_eq!(
            splits(&frames(&data, 100_000, &["-1", "--no-content-size"])),
            Some(true)
        );
        // A frame without a content size: undecided until it ends or the prefix is long.
        let one = zstd(&["-1", "--no-content-size"], &data);
        assert_eq!(splits(&one[..100_000]), None);
        assert_eq!(splits(&one), None, "one frame, and nothing yet after it");
        let mut two = one.clone();
        two.extend_from_slice(&one);
        assert_eq!(splits(&two), Some(true));
        let mut then_skippable = one.clone();
        then_skippable.extend_from_slice(b"\x50\x2a\x4d\x18\0\0\0\0");
        assert_eq!(splits(&then_skippable), Some(false));
        assert_eq!(splits(b"\x28\xb5\x2f"), None);
        // A large content size says at once: one big frame.
        let big = zstd(&["-1"], &vec![7u8; 100 << 20]);
        assert_eq!(splits(&big), Some(false));
    }

    #[test]
    fn frames_go_to_the_crew() {
        let data = payload(200_000, 6);
        let z = frames(&data, 10_000, &["-1"]);
        let mut dec = ParZstdDecoder::new(Helpers {
            permit: Permit::for_tests(2),
            max: 2,
        })
        .unwrap();
        let mut out = vec![0; 1 << 20];
        let mut input = &z[..];
        let mut all = Vec::new();
        while !input.is_empty() {
            let (c, p) = dec.decode(input, &mut out).unwrap();
            all.extend_from_slice(&out[..p]);
            input = &input[c..];
        }
        loop {
            let (p, done) = dec.finish(&mut out).unwrap();
            all.extend_from_slice(&out[..p]);
            if done {
                break;
            }
        }
        assert!(all == data);
        assert_eq!(dec.submitted, 20);
    }
}
