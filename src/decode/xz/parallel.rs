//! Whole blocks decoded on the crew: gathered while they stream in, written out in order.

use std::sync::atomic::{AtomicBool, Ordering};

use super::block::{BlockDecoder, BlockPolicy, read_vli};
use super::check::Check;
use super::{BlockId, HEADER_MAGIC, STREAM_HEADER_SIZE, State, XzDecoder};
use crate::decode::parallel::{BUFFER_MAX, Done, OUTPUT_SLICE};
use crate::error::{Error, ErrorKind, Result};

/// A block whose header gives its sizes, gathered whole to be decoded on the crew.
pub(super) struct Gathered {
    pub(super) header: Vec<u8>,
    pub(super) header_start: u64,
    pub(super) data: Vec<u8>,
    /// Length of data, padding and check.
    pub(super) need: usize,
    pub(super) data_start: u64,
    pub(super) id: BlockId,
    pub(super) unpadded: u64,
    pub(super) uncompressed: u64,
    pub(super) memusage: u64,
}

impl Gathered {
    /// Memory the block takes while in flight: its input and its decoded bytes.
    pub(super) fn charge(&self) -> u64 {
        self.need as u64 + self.uncompressed
    }
}

/// A decoded block being written out.
pub(super) struct Emitting {
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    error: Option<Error>,
}

/// One block decoded whole on the crew.
struct BlockJob<'a> {
    header: &'a [u8],
    header_start: u64,
    /// Data, padding and check.
    data: &'a [u8],
    data_start: u64,
    check: Check,
    policy: &'a BlockPolicy,
    id: BlockId,
    uncompressed: u64,
}

impl BlockJob<'_> {
    /// Decodes the block into `out` (resized to hold it); returns its length. Errors are the
    /// ones the streaming decoder gives, at the same offsets.
    fn run(self, bd: &mut BlockDecoder, out: &mut Vec<u8>, stop: &AtomicBool) -> Result<usize> {
        bd.start(self.header, self.check, self.policy, self.id)
            .map_err(|e| e.at(self.header_start))?;
        let n = usize::try_from(self.uncompressed).expect("bounded by BUFFER_MAX");
        // One spare byte: a block longer than its header says fails as it does when streamed.
        if out.len() < n + 1 {
            out.resize(n + 1, 0);
        }
        let (mut ip, mut op) = (0, 0);
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(Error::new(ErrorKind::Cancelled, "decoding stopped"));
            }
            let end = (op + OUTPUT_SLICE).min(n + 1);
            let (c, p, done) = bd
                .decode(&self.data[ip..], &mut out[op..end])
                .map_err(|e| e.at(self.data_start + bd.fault_offset()))?;
            ip += c;
            op += p;
            if done {
                return Ok(op);
            }
            if c == 0 && p == 0 {
                // liblzma holds the block to the sizes in its header, so this cannot happen.
                return Err(Error::new(
                    ErrorKind::Internal,
                    format!("the decoder of {} stopped short", self.id),
                )
                .at(self.data_start + bd.fault_offset()));
            }
        }
    }
}

/// Whether an xz input whose first bytes are `first` is worth decoding in parallel: its first
/// block header declares both sizes (as `xz -T` writes them) and the block is small enough to
/// be decoded whole.
pub(in crate::decode) fn splits(first: &[u8]) -> bool {
    let Some(&size) = first.get(STREAM_HEADER_SIZE) else {
        return false;
    };
    let len = (usize::from(size) + 1) * 4;
    let Some(header) = first.get(STREAM_HEADER_SIZE..STREAM_HEADER_SIZE + len) else {
        return false;
    };
    if size == 0 || first[..HEADER_MAGIC.len()] != HEADER_MAGIC || header[1] & 0xc0 != 0xc0 {
        return false;
    }
    let mut pos = 2;
    let end = len - 4;
    let (Ok(_), Ok(uncompressed)) = (
        read_vli(&header[..end], &mut pos),
        read_vli(&header[..end], &mut pos),
    ) else {
        return false;
    };
    uncompressed <= BUFFER_MAX / 2
}

impl XzDecoder {
    /// Blocks in flight: submitted to the crew or being written out.
    pub(super) fn outstanding(&self) -> bool {
        self.emitting.is_some() || self.crew.as_ref().is_some_and(|c| c.pending() > 0)
    }

    /// Whether what comes next must wait for the blocks in flight to be written out.
    pub(super) fn must_drain(&self) -> bool {
        self.finishing
            || self.deferred.is_some()
            || self.state == State::BlockData
            || self
                .gathering
                .as_ref()
                .is_some_and(|g| g.data.len() == g.need && !self.room_for(g))
    }

    /// Whether `g` may be submitted now without exceeding the bounds on blocks in flight.
    fn room_for(&self, g: &Gathered) -> bool {
        let Some(crew) = &self.crew else {
            return false;
        };
        let decoders = crew.decoders() as u64;
        let windows = self.memusage.max(g.memusage).saturating_mul(decoders);
        let budget = BUFFER_MAX.min(self.policy.memory_limit.saturating_sub(windows));
        self.charges.len() < 2 * decoders as usize && self.charged + g.charge() <= budget
    }

    /// Writes decoded blocks out, in order, as far as `out` and the finished blocks go.
    pub(super) fn emit(&mut self, out: &mut [u8]) -> Result<usize> {
        let mut n = 0;
        loop {
            if self.emitting.is_none() {
                let Some(done) = self.crew.as_mut().and_then(|c| c.try_take()) else {
                    return Ok(n);
                };
                self.emitting = Some(self.accept(done));
            }
            let e = self.emitting.as_mut().expect("a block being written out");
            let k = (e.len - e.pos).min(out.len() - n);
            out[n..n + k].copy_from_slice(&e.buf[e.pos..e.pos + k]);
            e.pos += k;
            n += k;
            if e.pos < e.len {
                return Ok(n);
            }
            let e = self.emitting.take().expect("a block being written out");
            self.charged -= self
                .charges
                .pop_front()
                .expect("a charge per block in flight");
            if let Some(err) = e.error {
                return Err(err);
            }
            if let Some(crew) = &mut self.crew {
                crew.recycle(e.buf);
            }
        }
    }

    /// Waits for the oldest block in flight (decoding one itself meanwhile).
    pub(super) fn wait(&mut self) {
        if self.emitting.is_none() {
            if let Some(done) = self.crew.as_mut().and_then(|c| c.take()) {
                self.emitting = Some(self.accept(done));
            }
        }
    }

    fn accept(&self, (buf, result): Done<Result<usize>>) -> Emitting {
        let (len, error) = match result {
            Some(Ok(len)) => (len, None),
            Some(Err(e)) => (0, Some(e)),
            None => (
                0,
                Some(Error::new(
                    ErrorKind::Internal,
                    "a block decoder thread panicked",
                )),
            ),
        };
        Emitting {
            buf,
            pos: 0,
            len,
            error,
        }
    }

    /// Gathers the block's bytes from `input[*ip..]`; submits the block once it is whole and
    /// there is room. Returns false when it can do nothing more with this input.
    pub(super) fn gather(&mut self, input: &[u8], ip: &mut usize) -> bool {
        let g = self.gathering.as_mut().expect("a block being gathered");
        let n = (g.need - g.data.len()).min(input.len() - *ip);
        g.data.extend_from_slice(&input[*ip..*ip + n]);
        *ip += n;
        self.pos += n as u64;
        if g.data.len() < g.need {
            if self.finishing && !self.outstanding() {
                // The input ended inside the block: decode what there is as it streamed in,
                // for exactly the sequential decoder's output and error.
                let g = self.gathering.take().expect("a block being gathered");
                if let Err(e) = self.block.start(&g.header, self.check, &self.policy, g.id) {
                    self.deferred = Some(e.at(g.header_start));
                    return true;
                }
                self.block_data_start = g.data_start;
                self.replay = g.data;
                self.replay_pos = 0;
                self.state = State::BlockData;
                return true;
            }
            return false;
        }
        let g = self.gathering.as_ref().expect("a block being gathered");
        if !self.room_for(g) {
            // `must_drain` now holds: the caller waits for room.
            return true;
        }
        let g = self.gathering.take().expect("a block being gathered");
        self.memusage = self.memusage.max(g.memusage);
        self.charges.push_back(g.charge());
        self.charged += g.charge();
        let added = self.blocks.add(g.unpadded, g.uncompressed);
        let (check, policy) = (self.check, self.policy);
        let Gathered {
            header,
            header_start,
            data,
            data_start,
            id,
            uncompressed,
            ..
        } = g;
        self.crew
            .as_mut()
            .expect("a crew")
            .submit(Box::new(move |bd, out, stop| {
                let job = BlockJob {
                    header: &header,
                    header_start,
                    data: &data,
                    data_start,
                    check,
                    policy: &policy,
                    id,
                    uncompressed,
                };
                job.run(bd, out, stop)
            }));
        self.submitted += 1;
        self.state = State::BlockOrIndex;
        if let Err(why) = added {
            self.deferred =
                Some(Error::new(ErrorKind::Corrupt, format!("{why} at {id}")).at(self.pos));
        }
        true
    }
}
