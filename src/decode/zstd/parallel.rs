//! One frame cannot be decoded in parallel, but several can: [`ParZstdDecoder`] finds where
//! each frame ends by walking the frame and block headers (each block header gives the
//! block's size), and decodes whole frames on helper threads. Large frames, and anything the
//! walker does not recognise, go through the streaming [`ZstdDecoder`] as they come, so the
//! output and every error are the same as decoding sequentially.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

use zstd::zstd_safe::{DCtx, InBuffer, OutBuffer, ResetDirective};

use super::frame::{Units, Walk, Walker};
use super::{ZstdDecoder, check_units, in_unit, new_dctx, zstd_error};
use crate::decode::parallel::{BUFFER_MAX, Crew, Done, OUTPUT_SLICE};
use crate::decode::{Decode, Helpers};
use crate::error::{Error, ErrorKind, Result};

/// A frame decoded whole on the crew: its length, or the error decoding it.
type FrameResult = Result<usize>;

/// The parallel zstd decoder: frames cut out by walking their headers, decoded on a crew,
/// written out in order. See the module documentation.
pub(in crate::decode) struct ParZstdDecoder {
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
    pub(super) submitted: u64,
    /// Frames with a window over `2^window_log` are refused (see `super::window_log`).
    window_log: u32,
}

impl ParZstdDecoder {
    /// A decoder with `helpers`; `None` if no helper thread could start.
    pub(in crate::decode) fn new(helpers: Helpers, window_log: u32) -> Option<Self> {
        let crew = Crew::new(helpers.permit, helpers.max, || None, "zstd")?;
        Some(ParZstdDecoder {
            crew,
            seq: None,
            replay: Vec::new(),
            replay_pos: 0,
            frame: Vec::new(),
            walker: Walker::limited(window_log),
            window_log,
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
        self.seq = Some(ZstdDecoder::resume(
            self.frames,
            self.frame_start,
            self.window_log,
        )?);
        self.replay = std::mem::take(&mut self.frame);
        self.replay_pos = 0;
        self.walker = Walker::limited(self.window_log);
        Ok(())
    }

    fn submit(&mut self) {
        let charge = self.charge();
        self.charges.push_back(charge);
        self.charged += charge;
        let frame = std::mem::take(&mut self.frame);
        let (bound, start, number) = (
            self.walker.output_bound(),
            self.frame_start,
            self.frames + 1,
        );
        let log = self.window_log;
        self.crew.submit(Box::new(move |dctx, out, stop| {
            decode_frame(dctx, &frame, (start, number), bound, out, stop, log)
        }));
        self.submitted += 1;
        self.frames += 1;
        self.frame_start = self.pos;
        self.walker = Walker::limited(self.window_log);
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
                    self.walker = Walker::limited(self.window_log);
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
                format!(
                    "data ends inside skippable frame {} (which starts at byte {})",
                    self.frames + 1,
                    self.frame_start
                ),
            )
            .at(self.pos)),
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
/// `at` is the frame's offset in the input and its number (from 1), `bound` the most it can
/// decode to. Like the streaming decoder, it feeds libzstd one unit at a time, so its errors
/// name the same unit at the same offset.
fn decode_frame(
    dctx: &mut Option<DCtx<'static>>,
    frame: &[u8],
    (start, number): (u64, u64),
    bound: u64,
    out: &mut Vec<u8>,
    stop: &AtomicBool,
    window_log: u32,
) -> Result<usize> {
    let dctx = match dctx {
        Some(d) => {
            d.reset(ResetDirective::SessionOnly)
                .map_err(|code| zstd_error(code, false))?;
            d
        }
        None => dctx.insert(new_dctx(window_log)?),
    };
    // One spare byte, so that a frame decoding to more than it may fails as when streamed.
    let mut n = usize::try_from(bound).expect("bounded by BUFFER_MAX") + 1;
    if out.len() < n {
        out.resize(n, 0);
    }
    let mut units = Units::at(start);
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
        let feed = &frame[ip..ip + units.limit().min(frame.len() - ip)];
        let mut inb = InBuffer::around(feed);
        let mut outb = OutBuffer::around(&mut out[op..end]);
        let hint = dctx
            .decompress_stream(&mut outb, &mut inb)
            .map_err(|code| in_unit(zstd_error(code, false), &units, number))?;
        let (c, p) = (inb.pos(), outb.pos());
        units.advance(&feed[..c]);
        check_units(&mut units, number)?;
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
