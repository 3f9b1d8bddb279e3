//! xz: the `.xz` container is parsed here; liblzma decodes only block headers and block data.
//!
//! Why not `lzma_stream_decoder`? Three reasons. The policy: containers/image (ulikunitz/xz)
//! accepts only a lone LZMA2 filter and the check types none, CRC32, CRC64 and SHA-256, and
//! liblzma's stream decoder would silently accept BCJ, delta and unknown checks. The messages:
//! every error names the structure, the block and the stream it concerns and its offset. And
//! the future: blocks are independent, so a later pipeline can hand whole blocks to several
//! threads; [`BlockDecoder`] decodes one block given its header and knows nothing else.
//!
//! The container (xz file format 1.2.1): each stream is a 12-byte header (magic, flags,
//! CRC32), blocks (a header of 8..=1024 bytes, LZMA2 data, zero padding to 4 bytes, the check),
//! an index (one record of unpadded and uncompressed size per block, padding, CRC32) and a
//! 12-byte footer (CRC32, backward size, the header's flags, `YZ`). Streams may be followed by
//! stream padding: zero bytes in groups of four, then the end of input or another stream.
//!
//! Memory stays bounded whatever the input: headers and footers are at most 1 KiB, the index
//! is parsed byte by byte, and the blocks are compared with the index through sums and a
//! SHA-256 of their records (as liblzma's `index_hash` does) rather than a list of them.
//!
//! The files: this one walks the container ([`XzDecoder`]); `stream.rs` checks stream headers
//! and footers, `block.rs` block headers and the filter policy and holds [`BlockDecoder`],
//! `check.rs` the integrity checks, `index.rs` the index, `lzma2.rs` walks the LZMA2 chunks
//! of a block's data for what containers/image refuses there and liblzma decodes, and
//! `parallel.rs` gathers whole blocks for the crew.

mod block;
mod check;
mod index;
mod lzma2;
mod parallel;
mod stream;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;

use self::block::{BlockDecoder, BlockPolicy, check_header};
use self::check::Check;
use self::index::{IndexParser, Tally};
pub(super) use self::parallel::splits;
use self::parallel::{Emitting, Gathered};
use super::parallel::{BUFFER_MAX, Crew};
use super::{Decode, Helpers};
use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;

const HEADER_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0x00];
/// Stream header and stream footer are both this long.
const STREAM_HEADER_SIZE: usize = 12;
const BLOCK_HEADER_SIZE_MAX: usize = 1024;
/// The largest value of an xz variable-length integer.
const VLI_MAX: u64 = u64::MAX / 2;
const UNPADDED_SIZE_MAX: u64 = VLI_MAX & !3;

/// Which block of which stream (both counted from 1), for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BlockId {
    stream: u64,
    block: u64,
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "block {} of stream {}", self.block, self.stream)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a stream header into `buf` (checking the magic byte by byte).
    StreamHeader,
    /// Expecting a block header's size byte, or 0x00, the index indicator.
    BlockOrIndex,
    /// Reading a block header into `buf`.
    BlockHeader,
    /// liblzma decodes a block's data, padding and check.
    BlockData,
    /// Gathering the data, padding and check of a block to decode on the crew.
    BlockGather,
    Index,
    /// Reading a stream footer into `buf`.
    StreamFooter,
    /// After a stream: stream padding, the end of input, or another stream.
    Padding,
}

/// The streaming `.xz` decoder.
pub(super) struct XzDecoder {
    policy: BlockPolicy,
    state: State,
    /// Offset, in the compressed input, of the next byte to consume.
    pos: u64,
    /// A header or footer being gathered (at most 1 KiB).
    buf: Vec<u8>,
    /// Offset of `buf[0]`.
    buf_start: u64,
    /// How many bytes `buf` must hold.
    need: usize,
    /// The current stream, counted from 1.
    stream: u64,
    /// Blocks of the current stream begun so far.
    block_no: u64,
    stream_flags: [u8; 2],
    check: Check,
    blocks: Tally,
    index: IndexParser,
    index_start: u64,
    padding: u64,
    padding_start: u64,
    block: BlockDecoder,
    block_data_start: u64,
    /// The first error; every later call returns it again.
    failed: Option<Error>,

    // Parallel decoding (see `with_helpers`); all unused when `crew` is `None`.
    crew: Option<Crew<BlockDecoder, Result<usize>>>,
    /// The block being gathered for the crew.
    gathering: Option<Gathered>,
    /// The oldest decoded block not yet all written out.
    emitting: Option<Emitting>,
    /// Memory charged for each block in flight (submitted, not all written out), in order.
    charges: VecDeque<u64>,
    /// Their sum.
    charged: u64,
    /// The most memory any block's filter chain needed so far.
    memusage: u64,
    /// An error found past blocks still in flight, reported once they are out.
    deferred: Option<Error>,
    /// A gathered block the input ended inside: decoded here as the sequential decoder would.
    replay: Vec<u8>,
    replay_pos: usize,
    /// `finish` was called: everything in flight must go out.
    finishing: bool,
    /// Blocks submitted to the crew so far.
    submitted: u64,
}

impl XzDecoder {
    fn new(opts: &Options) -> Result<XzDecoder> {
        Ok(XzDecoder {
            policy: BlockPolicy::new(opts),
            state: State::StreamHeader,
            pos: 0,
            buf: Vec::with_capacity(BLOCK_HEADER_SIZE_MAX),
            buf_start: 0,
            need: STREAM_HEADER_SIZE,
            stream: 1,
            block_no: 0,
            stream_flags: [0; 2],
            check: Check::None,
            blocks: Tally::default(),
            index: IndexParser::new(),
            index_start: 0,
            padding: 0,
            padding_start: 0,
            block: BlockDecoder::new(),
            block_data_start: 0,
            failed: None,
            crew: None,
            gathering: None,
            emitting: None,
            charges: VecDeque::new(),
            charged: 0,
            memusage: 0,
            deferred: None,
            replay: Vec::new(),
            replay_pos: 0,
            finishing: false,
            submitted: 0,
        })
    }

    /// A decoder that decodes blocks on `helpers` too, when their headers declare their sizes
    /// and they are small enough to hold whole (see [`BUFFER_MAX`]); other blocks, and every
    /// block without helpers, are decoded as they stream in. The output and every error are
    /// the same either way: blocks are written out in order, and an error found past blocks
    /// still in flight waits until they are out (one of them may fail first).
    ///
    /// Memory: besides the decoders' windows (one per helper, all within
    /// `decoder_memory_limit` together with the blocks in flight), at most `BUFFER_MAX` of
    /// gathered and decoded blocks, and at most two blocks per decoder.
    pub(super) fn with_helpers(opts: &Options, helpers: Helpers) -> Result<XzDecoder> {
        let mut dec = XzDecoder::new(opts)?;
        if helpers.max > 0 {
            dec.crew = Crew::new(helpers.permit, helpers.max, BlockDecoder::new, "xz");
        }
        Ok(dec)
    }

    fn block_id(&self) -> BlockId {
        BlockId {
            stream: self.stream,
            block: self.block_no,
        }
    }

    fn run(&mut self, input: &[u8], output: &mut [u8]) -> Result<(usize, usize)> {
        let mut ip = 0;
        let mut op = 0;
        loop {
            if self.crew.is_some() {
                // Blocks decoded in parallel go out first, in order.
                op += self.emit(&mut output[op..])?;
                if self.outstanding() && self.must_drain() {
                    if op == output.len() {
                        break;
                    }
                    self.wait();
                    continue;
                }
                if let Some(e) = self.deferred.take() {
                    return Err(e);
                }
            }
            if self.state == State::BlockData {
                let from_replay = self.replay_pos < self.replay.len();
                let src = if from_replay {
                    &self.replay[self.replay_pos..]
                } else {
                    &input[ip..]
                };
                let (c, p, done) = self
                    .block
                    .decode(src, &mut output[op..])
                    .map_err(|e| e.at(self.block_data_start + self.block.fault_offset()))?;
                if from_replay {
                    // Already counted in `pos` when it was gathered.
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
                if done {
                    self.end_block()?;
                } else if c == 0 && p == 0 {
                    break;
                }
                continue;
            }
            if self.state == State::BlockGather {
                if !self.gather(input, &mut ip) {
                    break;
                }
                continue;
            }
            if ip == input.len() {
                break;
            }
            if let Err(e) = self.step(input, &mut ip) {
                if self.outstanding() {
                    // Blocks before this point may fail first: report it after them.
                    self.deferred = Some(e);
                } else {
                    return Err(e);
                }
            }
        }
        Ok((ip, op))
    }

    /// Parses container bytes (everything but block data) at `input[*ip..]`.
    fn step(&mut self, input: &[u8], ip: &mut usize) -> Result<()> {
        match self.state {
            State::BlockData | State::BlockGather => unreachable!(),
            State::StreamHeader => {
                let b = input[*ip];
                *ip += 1;
                self.pos += 1;
                self.stream_header_byte(b)?;
            }
            State::BlockOrIndex => {
                let b = input[*ip];
                *ip += 1;
                self.pos += 1;
                if b == 0 {
                    self.index = IndexParser::new();
                    self.index.crc.update(&[0]);
                    self.index.size = 1;
                    self.index_start = self.pos - 1;
                    self.state = State::Index;
                } else {
                    self.block_no += 1;
                    self.buf.clear();
                    self.buf.push(b);
                    self.buf_start = self.pos - 1;
                    self.need = (usize::from(b) + 1) * 4;
                    self.state = State::BlockHeader;
                }
            }
            State::BlockHeader | State::StreamFooter => {
                let n = (self.need - self.buf.len()).min(input.len() - *ip);
                self.buf.extend_from_slice(&input[*ip..*ip + n]);
                *ip += n;
                self.pos += n as u64;
                if self.buf.len() == self.need {
                    if self.state == State::BlockHeader {
                        self.start_block()?;
                    } else {
                        self.end_stream()?;
                    }
                }
            }
            State::Index => {
                let b = input[*ip];
                *ip += 1;
                self.pos += 1;
                self.index_byte(b)?;
            }
            State::Padding => {
                let zeros = input[*ip..].iter().take_while(|&&b| b == 0).count();
                self.padding += zeros as u64;
                *ip += zeros;
                self.pos += zeros as u64;
                if *ip < input.len() {
                    // Not padding: the next stream's header, or trailing garbage.
                    self.stream += 1;
                    self.block_no = 0;
                    self.buf.clear();
                    self.buf_start = self.pos;
                    self.need = STREAM_HEADER_SIZE;
                    self.state = State::StreamHeader;
                }
            }
        }
        Ok(())
    }

    fn start_block(&mut self) -> Result<()> {
        let id = self.block_id();
        if let Some(crew) = &self.crew {
            let header = check_header(&self.buf, self.check, &self.policy, id)
                .map_err(|e| e.at(self.buf_start))?;
            if let (Some(compressed), Some(uncompressed)) =
                (header.compressed_size(), header.uncompressed_size())
            {
                let need = compressed.saturating_add(3) & !3;
                let need = need.saturating_add(self.check.size() as u64);
                let charge = need.saturating_add(uncompressed);
                let windows = self
                    .memusage
                    .max(header.memusage())
                    .saturating_mul(crew.decoders() as u64);
                let budget = BUFFER_MAX.min(self.policy.memory_limit.saturating_sub(windows));
                // Worth it only if two such blocks fit in flight at once.
                if charge <= budget / 2 {
                    let need = need as usize;
                    self.gathering = Some(Gathered {
                        header: self.buf.clone(),
                        header_start: self.buf_start,
                        data: Vec::with_capacity(need),
                        need,
                        data_start: self.pos,
                        id,
                        unpadded: self.buf.len() as u64 + compressed + self.check.size() as u64,
                        uncompressed,
                        memusage: header.memusage(),
                    });
                    self.block_data_start = self.pos;
                    self.state = State::BlockGather;
                    return Ok(());
                }
            }
        }
        self.block
            .start(&self.buf, self.check, &self.policy, id)
            .map_err(|e| e.at(self.buf_start))?;
        self.block_data_start = self.pos;
        self.state = State::BlockData;
        Ok(())
    }

    fn end_block(&mut self) -> Result<()> {
        let (unpadded, uncompressed) = self.block.sizes();
        let id = self.block_id();
        self.blocks
            .add(unpadded, uncompressed)
            .map_err(|why| Error::new(ErrorKind::Corrupt, format!("{why} at {id}")).at(self.pos))?;
        self.state = State::BlockOrIndex;
        Ok(())
    }

    fn finish_inner(&mut self, output: &mut [u8]) -> Result<(usize, bool)> {
        if self.crew.is_some() {
            // Blocks in flight go out first; a block the input ended inside is decoded as
            // the sequential decoder would.
            self.finishing = true;
            let (_, p) = self.run(&[], output)?;
            if p > 0 || self.outstanding() {
                return Ok((p, false));
            }
        }
        let s = self.stream;
        if self.state == State::BlockData {
            if output.is_empty() {
                return Ok((0, false));
            }
            let (_, p, done) = self
                .block
                .decode(&[], output)
                .map_err(|e| e.at(self.block_data_start + self.block.fault_offset()))?;
            if done {
                self.end_block()?;
            }
            if p > 0 {
                return Ok((p, false));
            }
        }
        let truncated = |what: String| {
            Error::new(ErrorKind::Truncated, format!("the input ends {what}")).at(self.pos)
        };
        let b = self.block_no;
        Err(match self.state {
            State::Padding if self.padding % 4 == 0 => return Ok((0, true)),
            State::Padding => Error::new(
                ErrorKind::Corrupt,
                format!(
                    "stream padding is not a multiple of 4 bytes: {} zero bytes after stream {s}",
                    self.padding
                ),
            )
            .at(self.padding_start),
            State::StreamHeader if s == 1 && self.buf.is_empty() => {
                truncated("before the xz stream header".into())
            }
            State::StreamHeader => truncated(format!("inside the header of stream {s}")),
            State::BlockOrIndex if b == 0 => {
                truncated(format!("after the header of stream {s}, before its index"))
            }
            State::BlockOrIndex => truncated(format!(
                "after block {b} of stream {s}, before the stream's index"
            )),
            State::BlockHeader => {
                truncated(format!("inside the header of block {b} of stream {s}"))
            }
            State::BlockData | State::BlockGather => {
                truncated(format!("inside block {b} of stream {s}"))
            }
            State::Index => truncated(format!("inside the index of stream {s}")),
            State::StreamFooter => truncated(format!("inside the footer of stream {s}")),
        })
    }
}

impl Decode for XzDecoder {
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
