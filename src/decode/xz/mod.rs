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

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use liblzma_sys as lz;
use sha2::{Digest as _, Sha256};

use super::parallel::{BUFFER_MAX, Crew, Done, OUTPUT_SLICE};
use super::{Decode, Helpers};
use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;

const HEADER_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0x00];
const FOOTER_MAGIC: [u8; 2] = [b'Y', b'Z'];
/// Stream header and stream footer are both this long.
const STREAM_HEADER_SIZE: usize = 12;
const BLOCK_HEADER_SIZE_MAX: usize = 1024;
/// The largest value of an xz variable-length integer.
const VLI_MAX: u64 = u64::MAX / 2;
const UNPADDED_SIZE_MIN: u64 = 5;
const UNPADDED_SIZE_MAX: u64 = VLI_MAX & !3;
/// The largest index the stream footer's Backward Size can describe.
const BACKWARD_SIZE_MAX: u64 = 1 << 34;
/// `LZMA_FILTERS_MAX + 1`: liblzma's block header decoder writes this many entries.
const FILTER_SLOTS: usize = 5;

/// The integrity check of a stream: the four types containers/image knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    None,
    Crc32,
    Crc64,
    Sha256,
}

impl Check {
    fn from_id(id: u8) -> Option<Check> {
        match id {
            0x00 => Some(Check::None),
            0x01 => Some(Check::Crc32),
            0x04 => Some(Check::Crc64),
            0x0a => Some(Check::Sha256),
            _ => None,
        }
    }

    fn size(self) -> usize {
        match self {
            Check::None => 0,
            Check::Crc32 => 4,
            Check::Crc64 => 8,
            Check::Sha256 => 32,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Check::None => "none",
            Check::Crc32 => "CRC32",
            Check::Crc64 => "CRC64",
            Check::Sha256 => "SHA-256",
        }
    }

    fn lzma(self) -> lz::lzma_check {
        match self {
            Check::None => lz::LZMA_CHECK_NONE,
            Check::Crc32 => lz::LZMA_CHECK_CRC32,
            Check::Crc64 => lz::LZMA_CHECK_CRC64,
            Check::Sha256 => lz::LZMA_CHECK_SHA256,
        }
    }
}

/// The running integrity check of one block's decoded data. We compute it ourselves (liblzma
/// is told to ignore it) so that a mismatch gets its own message instead of liblzma's one
/// "data is corrupt" code.
enum CheckState {
    None,
    Crc32(crc32fast::Hasher),
    Crc64(u64),
    Sha256(Box<Sha256>),
}

impl CheckState {
    fn new(check: Check) -> CheckState {
        match check {
            Check::None => CheckState::None,
            Check::Crc32 => CheckState::Crc32(crc32fast::Hasher::new()),
            Check::Crc64 => CheckState::Crc64(0),
            Check::Sha256 => CheckState::Sha256(Box::default()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            CheckState::None => {}
            CheckState::Crc32(h) => h.update(data),
            CheckState::Crc64(crc) => {
                // SAFETY: `data` is a valid slice for reads of `data.len()` bytes and
                // lzma_crc64 only reads that range.
                *crc = unsafe { lz::lzma_crc64(data.as_ptr(), data.len(), *crc) };
            }
            CheckState::Sha256(h) => h.update(data),
        }
    }

    /// The check value as it is stored after the block (little-endian CRCs).
    fn finish(&mut self) -> Vec<u8> {
        match std::mem::replace(self, CheckState::None) {
            CheckState::None => Vec::new(),
            CheckState::Crc32(h) => h.finalize().to_le_bytes().to_vec(),
            CheckState::Crc64(crc) => crc.to_le_bytes().to_vec(),
            CheckState::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// Which block of which stream (both counted from 1), for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockId {
    pub(crate) stream: u64,
    pub(crate) block: u64,
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "block {} of stream {}", self.block, self.stream)
    }
}

/// What a block may use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockPolicy {
    /// Accept any filter chain liblzma decodes, not only a lone LZMA2.
    pub(crate) full_xz: bool,
    /// The most memory the filter chain of one block may need.
    pub(crate) memory_limit: u64,
}

impl BlockPolicy {
    pub(crate) fn new(opts: &Options) -> BlockPolicy {
        BlockPolicy {
            full_xz: opts.full_xz,
            memory_limit: opts.decoder_memory_limit,
        }
    }
}

/// The readable name of a filter ID.
fn filter_name(id: u64) -> String {
    match id {
        lz::LZMA_FILTER_LZMA2 => "LZMA2".into(),
        lz::LZMA_FILTER_LZMA1 => "LZMA1".into(),
        lz::LZMA_FILTER_DELTA => "delta".into(),
        lz::LZMA_FILTER_X86 => "BCJ x86".into(),
        lz::LZMA_FILTER_POWERPC => "BCJ PowerPC".into(),
        lz::LZMA_FILTER_IA64 => "BCJ IA-64".into(),
        lz::LZMA_FILTER_ARM => "BCJ ARM".into(),
        lz::LZMA_FILTER_ARMTHUMB => "BCJ ARM-Thumb".into(),
        lz::LZMA_FILTER_SPARC => "BCJ SPARC".into(),
        lz::LZMA_FILTER_ARM64 => "BCJ ARM64".into(),
        lz::LZMA_FILTER_RISCV => "BCJ RISC-V".into(),
        other => format!("filter 0x{other:x}"),
    }
}

fn chain_name(ids: &[u64]) -> String {
    ids.iter()
        .map(|&id| filter_name(id))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// Decodes one complete variable-length integer from `buf` at `*pos` (for block headers,
/// which are buffered whole). Messages only: liblzma's decoding of the header is the one
/// that counts.
fn read_vli(buf: &[u8], pos: &mut usize) -> std::result::Result<u64, &'static str> {
    let mut vli = Vli::default();
    loop {
        let &b = buf
            .get(*pos)
            .ok_or("a field runs past the end of the header")?;
        *pos += 1;
        if let Some(v) = vli.push(b)? {
            return Ok(v);
        }
    }
}

/// Our own reading of a block header, used only to explain why liblzma refused it: the filter
/// IDs, or what is wrong with the header.
fn explain_block_header(header: &[u8], check: Check) -> std::result::Result<Vec<u64>, String> {
    let end = header.len() - 4;
    let flags = header[1];
    if flags & 0x3c != 0 {
        return Err(format!("reserved block flags are set (0x{flags:02x})"));
    }
    let mut pos = 2;
    if flags & 0x40 != 0 {
        let size =
            read_vli(&header[..end], &mut pos).map_err(|e| format!("compressed size: {e}"))?;
        if size == 0 {
            return Err("the compressed size is zero".into());
        }
        let overhead = (header.len() + check.size()) as u64;
        if size > UNPADDED_SIZE_MAX - overhead {
            return Err(format!(
                "the compressed size ({size}) is larger than the format allows"
            ));
        }
    }
    if flags & 0x80 != 0 {
        read_vli(&header[..end], &mut pos).map_err(|e| format!("uncompressed size: {e}"))?;
    }
    let mut ids = Vec::new();
    for _ in 0..(flags & 3) + 1 {
        let id = read_vli(&header[..end], &mut pos).map_err(|e| format!("filter ID: {e}"))?;
        let props = read_vli(&header[..end], &mut pos)
            .map_err(|e| format!("filter properties size: {e}"))?;
        if props > (end - pos) as u64 {
            return Err("filter properties run past the end of the header".into());
        }
        pos += props as usize;
        ids.push(id);
    }
    if header[pos..end].iter().any(|&b| b != 0) {
        return Err("the header padding is not zero (a field this decoder does not know?)".into());
    }
    Ok(ids)
}

/// The filter chain liblzma decoded from a block header. Owns the filters' option
/// allocations and frees them on drop, on every path.
struct FilterChain([lz::lzma_filter; FILTER_SLOTS]);

impl FilterChain {
    fn new() -> FilterChain {
        FilterChain(
            [lz::lzma_filter {
                id: lz::LZMA_VLI_UNKNOWN,
                options: std::ptr::null_mut(),
            }; FILTER_SLOTS],
        )
    }

    fn ids(&self) -> Vec<u64> {
        self.0
            .iter()
            .map(|f| f.id)
            .take_while(|&id| id != lz::LZMA_VLI_UNKNOWN)
            .collect()
    }
}

impl Drop for FilterChain {
    fn drop(&mut self) {
        // SAFETY: the array is terminated by LZMA_VLI_UNKNOWN (we initialise every slot so,
        // and liblzma keeps it so), and every non-null `options` was allocated by liblzma
        // with the default allocator. lzma_filters_free resets each slot after freeing it.
        unsafe { lz::lzma_filters_free(self.0.as_mut_ptr(), std::ptr::null()) };
    }
}

/// A block header that passed every check: what liblzma read from it (sizes, filters) and the
/// memory its filter chain needs.
pub(crate) struct BlockHeader {
    /// `filters` is null here; the chain is in `filters`.
    block: lz::lzma_block,
    filters: FilterChain,
    memusage: u64,
}

impl BlockHeader {
    /// The compressed size the header declares, if it does.
    pub(crate) fn compressed_size(&self) -> Option<u64> {
        (self.block.compressed_size != lz::LZMA_VLI_UNKNOWN).then_some(self.block.compressed_size)
    }

    /// The uncompressed size the header declares, if it does.
    pub(crate) fn uncompressed_size(&self) -> Option<u64> {
        (self.block.uncompressed_size != lz::LZMA_VLI_UNKNOWN)
            .then_some(self.block.uncompressed_size)
    }

    /// Memory the block's filter chain needs to decode.
    pub(crate) fn memusage(&self) -> u64 {
        self.memusage
    }
}

/// Checks the complete block header `header` (its size byte first, `(header[0] + 1) * 4`
/// bytes) of a stream whose check is `check`: its CRC32, that liblzma can read it, and that
/// `policy` allows its filter chain and memory. Errors carry no offset; the header's offset is
/// the caller's to add.
pub(crate) fn check_header(
    header: &[u8],
    check: Check,
    policy: &BlockPolicy,
    id: BlockId,
) -> Result<BlockHeader> {
    assert!(header.len() >= 8 && header.len() == (usize::from(header[0]) + 1) * 4);
    let crc_at = header.len() - 4;
    let stored = u32::from_le_bytes(header[crc_at..].try_into().unwrap());
    if crc32fast::hash(&header[..crc_at]) != stored {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!("block header CRC32 mismatch at {id}"),
        ));
    }

    let mut filters = FilterChain::new();
    let mut block = {
        // SAFETY: a blank lzma_block, as in `BlockDecoder::new`.
        let mut b: lz::lzma_block = unsafe { std::mem::zeroed() };
        b.version = 1;
        b.header_size = header.len() as u32;
        b.check = check.lzma();
        b.filters = filters.0.as_mut_ptr();
        b
    };
    // SAFETY: `block` is initialised with header_size matching `header[0]`, a valid
    // check and `filters` pointing to FILTER_SLOTS (LZMA_FILTERS_MAX + 1) entries, as
    // lzma_block_header_decode requires; `header` holds header_size readable bytes.
    let ret =
        unsafe { lz::lzma_block_header_decode(&mut block, std::ptr::null(), header.as_ptr()) };
    block.filters = std::ptr::null_mut();
    if ret != lz::LZMA_OK {
        let explained = explain_block_header(header, check);
        return Err(match (ret, explained) {
            (lz::LZMA_OPTIONS_ERROR, Ok(ids)) => {
                if ids.len() == 1 && ids[0] == lz::LZMA_FILTER_LZMA2 {
                    Error::new(
                        ErrorKind::Unsupported,
                        format!("unsupported LZMA2 properties in the block header at {id}"),
                    )
                } else {
                    Error::new(
                        ErrorKind::Unsupported,
                        format!("unsupported filter chain ({}) at {id}", chain_name(&ids)),
                    )
                }
            }
            (lz::LZMA_OPTIONS_ERROR, Err(why)) => Error::new(
                ErrorKind::Unsupported,
                format!("unsupported block header at {id}: {why}"),
            ),
            (lz::LZMA_MEM_ERROR, _) => Error::new(
                ErrorKind::LimitExceeded,
                format!("out of memory reading the block header at {id}"),
            ),
            (_, Err(why)) => Error::new(
                ErrorKind::Corrupt,
                format!("invalid block header at {id}: {why}"),
            ),
            (ret, Ok(_)) => Error::new(
                ErrorKind::Corrupt,
                format!("invalid block header at {id} (liblzma: error {ret})"),
            ),
        });
    }

    let ids = filters.ids();
    // SAFETY: `filters` is a filter array terminated by LZMA_VLI_UNKNOWN, as decoded by
    // lzma_block_header_decode.
    let memusage = unsafe { lz::lzma_raw_decoder_memusage(filters.0.as_ptr()) };
    if memusage == u64::MAX {
        // Filters in an order no encoder produces (delta last, LZMA2 twice, ...).
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "unsupported filter chain ({}) at {id}: not a valid chain",
                chain_name(&ids)
            ),
        ));
    }
    if !policy.full_xz && ids != [lz::LZMA_FILTER_LZMA2] {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "unsupported filter chain ({}) at {id}; decode it with full_xz",
                chain_name(&ids)
            ),
        ));
    }
    if memusage > policy.memory_limit {
        return Err(Error::new(
            ErrorKind::LimitExceeded,
            format!(
                "{id} needs {memusage} bytes of decoder memory, more than the limit of {} \
                     (decoder_memory_limit)",
                policy.memory_limit
            ),
        ));
    }

    Ok(BlockHeader {
        block,
        filters,
        memusage,
    })
}

/// Decodes the data of one block, given its header: LZMA2 (or, with `full_xz`, any chain
/// liblzma knows) through `lzma_block_decoder`, which also checks the block padding and the
/// sizes the header declares; the integrity check is verified here.
///
/// One `BlockDecoder` decodes many blocks in turn and reuses liblzma's allocations (the
/// dictionary above all) between them. It knows nothing of streams or indexes, so a pipeline
/// can run one per thread.
pub(crate) struct BlockDecoder {
    // Boxed: liblzma keeps a pointer to `block` while decoding, and neither may move under it.
    strm: Box<lz::lzma_stream>,
    block: Box<lz::lzma_block>,
    id: BlockId,
    check: Check,
    check_state: CheckState,
    header_size: u64,
    /// Compressed bytes of the current block consumed after its header.
    data_consumed: u64,
    uncompressed: u64,
}

// SAFETY: the liblzma stream and block are owned by this value alone, liblzma state has no
// thread affinity, and every use goes through `&mut self`, so moving the decoder to another
// thread is sound. (It is not Sync, and need not be.)
unsafe impl Send for BlockDecoder {}

impl BlockDecoder {
    pub(crate) fn new() -> BlockDecoder {
        BlockDecoder {
            // SAFETY: all-zero is LZMA_STREAM_INIT for lzma_stream, and a valid (blank)
            // lzma_block: both are plain C structs of integers, pointers and C enums whose
            // zero value is valid.
            strm: Box::new(unsafe { std::mem::zeroed() }),
            // SAFETY: as above.
            block: Box::new(unsafe { std::mem::zeroed() }),
            id: BlockId {
                stream: 0,
                block: 0,
            },
            check: Check::None,
            check_state: CheckState::None,
            header_size: 0,
            data_consumed: 0,
            uncompressed: 0,
        }
    }

    /// Compressed bytes of the current block consumed after its header (for error offsets).
    pub(crate) fn data_consumed(&self) -> u64 {
        self.data_consumed
    }

    /// Prepares to decode the block whose complete header is `header` (its size byte first,
    /// `(header[0] + 1) * 4` bytes), in a stream whose check is `check`. Enforces `policy`
    /// (see [`check_header`]). Errors carry no offset; the header's offset is the caller's
    /// to add.
    pub(crate) fn start(
        &mut self,
        header: &[u8],
        check: Check,
        policy: &BlockPolicy,
        id: BlockId,
    ) -> Result<()> {
        self.id = id;
        self.check = check;
        self.header_size = header.len() as u64;
        self.data_consumed = 0;
        self.uncompressed = 0;
        let BlockHeader {
            block, mut filters, ..
        } = check_header(header, check, policy, id)?;
        *self.block = block;
        let ids = filters.ids();

        // Verified here, not by liblzma (see CheckState). Must be set after the header was
        // decoded, which resets it.
        self.block.ignore_check = 1;
        self.check_state = CheckState::new(check);
        self.block.filters = filters.0.as_mut_ptr();
        // SAFETY: `self.strm` is LZMA_STREAM_INIT or a stream liblzma initialised before;
        // `self.block` was filled by lzma_block_header_decode and is boxed, so the pointer
        // liblzma keeps to it stays valid until the next `start` or drop. The filter options
        // are read only during this call.
        let ret = unsafe { lz::lzma_block_decoder(&mut *self.strm, &mut *self.block) };
        self.block.filters = std::ptr::null_mut();
        drop(filters);
        match ret {
            lz::LZMA_OK => Ok(()),
            lz::LZMA_MEM_ERROR => Err(Error::new(
                ErrorKind::LimitExceeded,
                format!("out of memory allocating the decoder of {id}"),
            )),
            lz::LZMA_OPTIONS_ERROR => Err(Error::new(
                ErrorKind::Unsupported,
                format!("unsupported filter options ({}) at {id}", chain_name(&ids)),
            )),
            ret => Err(Error::new(
                ErrorKind::Corrupt,
                format!("invalid block header at {id} (liblzma: error {ret})"),
            )),
        }
    }

    /// Decodes from `input` into `output`; returns `(consumed, produced, done)`. `done`: the
    /// block ended (data, padding and check all read and verified); [`sizes`](Self::sizes)
    /// then tells its sizes. With empty `input` it only writes out what it still holds.
    pub(crate) fn decode(
        &mut self,
        input: &[u8],
        output: &mut [u8],
    ) -> Result<(usize, usize, bool)> {
        let strm = &mut *self.strm;
        strm.next_in = input.as_ptr();
        strm.avail_in = input.len();
        strm.next_out = output.as_mut_ptr();
        strm.avail_out = output.len();
        // SAFETY: the stream was set up by lzma_block_decoder in `start` (if it was not, or
        // it already ended, liblzma returns LZMA_PROG_ERROR); next_in/next_out point to
        // `input.len()` readable and `output.len()` writable bytes that outlive the call.
        let ret = unsafe { lz::lzma_code(strm, lz::LZMA_RUN) };
        let consumed = input.len() - strm.avail_in;
        let produced = output.len() - strm.avail_out;
        strm.next_in = std::ptr::null();
        strm.avail_in = 0;
        strm.next_out = std::ptr::null_mut();
        strm.avail_out = 0;
        self.data_consumed += consumed as u64;
        self.uncompressed += produced as u64;
        self.check_state.update(&output[..produced]);
        let id = self.id;
        match ret {
            // BUF_ERROR: no progress was possible (no input, or no output space); not fatal.
            lz::LZMA_OK | lz::LZMA_BUF_ERROR => Ok((consumed, produced, false)),
            lz::LZMA_STREAM_END => {
                let computed = self.check_state.finish();
                let stored = &self.block.raw_check[..self.check.size()];
                if computed != stored {
                    return Err(Error::new(
                        ErrorKind::Corrupt,
                        format!(
                            "integrity check ({}) mismatch at {id}: stored {}, computed {}",
                            self.check.name(),
                            hex(stored),
                            hex(&computed)
                        ),
                    ));
                }
                Ok((consumed, produced, true))
            }
            lz::LZMA_DATA_ERROR => Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "corrupt compressed data at {id} (invalid LZMA2 data, non-zero block \
                     padding, or sizes that differ from the block header)"
                ),
            )),
            lz::LZMA_MEM_ERROR => Err(Error::new(
                ErrorKind::LimitExceeded,
                format!("out of memory decoding {id}"),
            )),
            lz::LZMA_OPTIONS_ERROR => Err(Error::new(
                ErrorKind::Unsupported,
                format!("unsupported options inside the compressed data of {id}"),
            )),
            ret => Err(Error::new(
                ErrorKind::Internal,
                format!("liblzma returned error {ret} decoding {id}"),
            )),
        }
    }

    /// `(unpadded size, uncompressed size)` of the block that just ended, as the index
    /// records them.
    pub(crate) fn sizes(&self) -> (u64, u64) {
        let unpadded = self.header_size + self.block.compressed_size + self.check.size() as u64;
        (unpadded, self.block.uncompressed_size)
    }
}

impl Drop for BlockDecoder {
    fn drop(&mut self) {
        // SAFETY: `strm` is LZMA_STREAM_INIT or was initialised by liblzma; lzma_end frees
        // whatever liblzma allocated and accepts a never-initialised stream.
        unsafe { lz::lzma_end(&mut *self.strm) };
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Incremental decoder of one xz variable-length integer (at most 9 bytes, 7 bits each,
/// little-endian, no superfluous trailing zero byte).
#[derive(Debug, Default, Clone, Copy)]
struct Vli {
    value: u64,
    len: u32,
}

impl Vli {
    /// Feeds one byte; the value once the integer is complete.
    fn push(&mut self, b: u8) -> std::result::Result<Option<u64>, &'static str> {
        self.value |= u64::from(b & 0x7f) << (7 * self.len);
        self.len += 1;
        if b & 0x80 == 0 {
            if b == 0 && self.len > 1 {
                return Err("an integer is encoded with a superfluous zero byte");
            }
            let value = self.value;
            *self = Vli::default();
            Ok(Some(value))
        } else if self.len == 9 {
            Err("an integer is longer than 9 bytes")
        } else {
            Ok(None)
        }
    }
}

/// The blocks of a stream, or the records of its index, summed up so the two can be compared
/// without keeping a list.
#[derive(Clone, Default)]
struct Tally {
    count: u64,
    unpadded: u64,
    uncompressed: u64,
    records: Sha256,
}

impl Tally {
    fn add(&mut self, unpadded: u64, uncompressed: u64) -> std::result::Result<(), &'static str> {
        self.count += 1;
        self.unpadded = self
            .unpadded
            .checked_add(unpadded)
            .filter(|&s| s <= VLI_MAX)
            .ok_or("the block sizes add up to more than the format allows")?;
        self.uncompressed = self
            .uncompressed
            .checked_add(uncompressed)
            .filter(|&s| s <= VLI_MAX)
            .ok_or("the uncompressed sizes add up to more than the format allows")?;
        self.records.update(unpadded.to_le_bytes());
        self.records.update(uncompressed.to_le_bytes());
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IndexStep {
    Count,
    Unpadded,
    Uncompressed,
    Padding,
    Crc,
}

/// The index of one stream, parsed byte by byte.
struct IndexParser {
    step: IndexStep,
    vli: Vli,
    /// Records the index declares.
    declared: u64,
    unpadded: u64,
    tally: Tally,
    /// Bytes of the index read so far, its indicator byte included.
    size: u64,
    crc: crc32fast::Hasher,
    stored_crc: [u8; 4],
    crc_len: usize,
}

impl IndexParser {
    fn new() -> IndexParser {
        IndexParser {
            step: IndexStep::Count,
            vli: Vli::default(),
            declared: 0,
            unpadded: 0,
            tally: Tally::default(),
            size: 0,
            crc: crc32fast::Hasher::new(),
            stored_crc: [0; 4],
            crc_len: 0,
        }
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
pub(crate) struct XzDecoder {
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

/// A block whose header gives its sizes, gathered whole to be decoded on the crew.
struct Gathered {
    header: Vec<u8>,
    header_start: u64,
    data: Vec<u8>,
    /// Length of data, padding and check.
    need: usize,
    data_start: u64,
    id: BlockId,
    unpadded: u64,
    uncompressed: u64,
    memusage: u64,
}

impl Gathered {
    /// Memory the block takes while in flight: its input and its decoded bytes.
    fn charge(&self) -> u64 {
        self.need as u64 + self.uncompressed
    }
}

/// A decoded block being written out.
struct Emitting {
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
                .map_err(|e| e.at(self.data_start + bd.data_consumed()))?;
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
                .at(self.data_start + bd.data_consumed()));
            }
        }
    }
}

/// Whether an xz input whose first bytes are `first` is worth decoding in parallel: its first
/// block header declares both sizes (as `xz -T` writes them) and the block is small enough to
/// be decoded whole.
pub(crate) fn splits(first: &[u8]) -> bool {
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
    pub(crate) fn new(opts: &Options) -> Result<XzDecoder> {
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
    pub(crate) fn with_helpers(opts: &Options, helpers: Helpers) -> Result<XzDecoder> {
        let mut dec = XzDecoder::new(opts)?;
        if helpers.max > 0 {
            dec.crew = Crew::new(helpers.permit, helpers.max, BlockDecoder::new, "xz");
        }
        Ok(dec)
    }

    /// Blocks in flight: submitted to the crew or being written out.
    fn outstanding(&self) -> bool {
        self.emitting.is_some() || self.crew.as_ref().is_some_and(|c| c.pending() > 0)
    }

    /// Whether what comes next must wait for the blocks in flight to be written out.
    fn must_drain(&self) -> bool {
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
    fn emit(&mut self, out: &mut [u8]) -> Result<usize> {
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
    fn wait(&mut self) {
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
    fn gather(&mut self, input: &[u8], ip: &mut usize) -> bool {
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
                    .map_err(|e| e.at(self.block_data_start + self.block.data_consumed()))?;
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

    fn stream_header_byte(&mut self, b: u8) -> Result<()> {
        let i = self.buf.len();
        self.buf.push(b);
        if i < HEADER_MAGIC.len() && b != HEADER_MAGIC[i] {
            return Err(if self.stream == 1 {
                Error::new(
                    ErrorKind::Corrupt,
                    "not an xz stream: bad header magic bytes",
                )
                .at(self.buf_start)
            } else {
                Error::new(
                    ErrorKind::TrailingData,
                    format!(
                        "the bytes after the end of stream {} are neither stream padding nor \
                         another xz stream",
                        self.stream - 1
                    ),
                )
                .at(self.buf_start)
            });
        }
        if i + 1 == HEADER_MAGIC.len() && self.stream > 1 && self.padding % 4 != 0 {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "stream padding is not a multiple of 4 bytes: {} zero bytes between stream \
                     {} and stream {}",
                    self.padding,
                    self.stream - 1,
                    self.stream
                ),
            )
            .at(self.padding_start));
        }
        if self.buf.len() < STREAM_HEADER_SIZE {
            return Ok(());
        }

        let s = self.stream;
        let flags = [self.buf[6], self.buf[7]];
        let stored = u32::from_le_bytes(self.buf[8..12].try_into().unwrap());
        if crc32fast::hash(&flags) != stored {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("stream header CRC32 mismatch in stream {s}"),
            )
            .at(self.buf_start + 8));
        }
        if flags[0] != 0 || flags[1] & 0xf0 != 0 {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the header of stream {s} sets reserved stream flags ({:02x} {:02x}); a \
                     newer xz format?",
                    flags[0], flags[1]
                ),
            )
            .at(self.buf_start + 6));
        }
        let id = flags[1] & 0x0f;
        self.check = Check::from_id(id).ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                format!(
                    "unsupported integrity check type 0x{id:02x} in stream {s} (containers/image \
                     accepts only none, CRC32, CRC64 and SHA-256)"
                ),
            )
            .at(self.buf_start + 7)
        })?;
        self.stream_flags = flags;
        self.blocks = Tally::default();
        self.block_no = 0;
        self.padding = 0;
        self.state = State::BlockOrIndex;
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

    fn index_byte(&mut self, b: u8) -> Result<()> {
        let s = self.stream;
        let at = self.pos - 1;
        let corrupt = |msg: String| Error::new(ErrorKind::Corrupt, msg).at(at);
        let ix = &mut self.index;
        ix.size += 1;
        if ix.size > BACKWARD_SIZE_MAX {
            return Err(corrupt(format!(
                "the index of stream {s} is larger than the format allows"
            )));
        }
        if ix.step != IndexStep::Crc {
            ix.crc.update(&[b]);
        }
        let vli_error = |why: &str| corrupt(format!("invalid index of stream {s}: {why}"));
        match ix.step {
            IndexStep::Count => {
                if let Some(n) = ix.vli.push(b).map_err(vli_error)? {
                    if n != self.blocks.count {
                        return Err(corrupt(format!(
                            "the index of stream {s} lists {n} blocks but the stream has {}",
                            self.blocks.count
                        )));
                    }
                    ix.declared = n;
                    ix.step = if n == 0 {
                        IndexStep::Padding
                    } else {
                        IndexStep::Unpadded
                    };
                }
            }
            IndexStep::Unpadded => {
                if let Some(v) = ix.vli.push(b).map_err(vli_error)? {
                    if !(UNPADDED_SIZE_MIN..=UNPADDED_SIZE_MAX).contains(&v) {
                        return Err(corrupt(format!(
                            "index record {} of stream {s} has an invalid unpadded size ({v})",
                            ix.tally.count + 1
                        )));
                    }
                    ix.unpadded = v;
                    ix.step = IndexStep::Uncompressed;
                }
            }
            IndexStep::Uncompressed => {
                if let Some(v) = ix.vli.push(b).map_err(vli_error)? {
                    ix.tally
                        .add(ix.unpadded, v)
                        .map_err(|why| corrupt(format!("index of stream {s}: {why}")))?;
                    ix.step = if ix.tally.count == ix.declared {
                        IndexStep::Padding
                    } else {
                        IndexStep::Unpadded
                    };
                }
            }
            IndexStep::Padding => {
                if b != 0 {
                    return Err(corrupt(format!(
                        "non-zero byte in the index padding of stream {s}"
                    )));
                }
            }
            IndexStep::Crc => {
                ix.stored_crc[ix.crc_len] = b;
                ix.crc_len += 1;
                if ix.crc_len == 4 {
                    return self.end_index();
                }
                return Ok(());
            }
        }
        // The index records and padding end at a multiple of four bytes; the CRC32 follows.
        if ix.step == IndexStep::Padding && ix.size % 4 == 0 {
            ix.step = IndexStep::Crc;
        }
        Ok(())
    }

    fn end_index(&mut self) -> Result<()> {
        let s = self.stream;
        let ix = &mut self.index;
        let computed = std::mem::take(&mut ix.crc).finalize();
        if computed != u32::from_le_bytes(ix.stored_crc) {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("index CRC32 mismatch in stream {s}"),
            )
            .at(self.pos - 4));
        }
        let mismatch = if ix.tally.unpadded != self.blocks.unpadded {
            Some("the unpadded sizes in the index")
        } else if ix.tally.uncompressed != self.blocks.uncompressed {
            Some("the uncompressed sizes in the index")
        } else if ix.tally.records.clone().finalize() != self.blocks.records.clone().finalize() {
            Some("the index records")
        } else {
            None
        };
        if let Some(what) = mismatch {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("{what} of stream {s} do not match its blocks"),
            )
            .at(self.index_start));
        }
        self.buf.clear();
        self.buf_start = self.pos;
        self.need = STREAM_HEADER_SIZE;
        self.state = State::StreamFooter;
        Ok(())
    }

    fn end_stream(&mut self) -> Result<()> {
        let s = self.stream;
        let f = &self.buf;
        let at = self.buf_start;
        if f[10..12] != FOOTER_MAGIC {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("bad footer magic bytes in stream {s}"),
            )
            .at(at + 10));
        }
        if crc32fast::hash(&f[4..10]) != u32::from_le_bytes(f[0..4].try_into().unwrap()) {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("stream footer CRC32 mismatch in stream {s}"),
            )
            .at(at));
        }
        if f[8..10] != self.stream_flags {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!("the stream flags in the footer of stream {s} differ from its header"),
            )
            .at(at + 8));
        }
        let backward = (u64::from(u32::from_le_bytes(f[4..8].try_into().unwrap())) + 1) * 4;
        if backward != self.index.size {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "the footer of stream {s} gives the index size as {backward} bytes, but the \
                     index is {} bytes",
                    self.index.size
                ),
            )
            .at(at + 4));
        }
        self.padding = 0;
        self.padding_start = self.pos;
        self.state = State::Padding;
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
                .map_err(|e| e.at(self.block_data_start + self.block.data_consumed()))?;
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

#[cfg(test)]
mod tests {
    //! The oracle is the `xz` program (xz-utils): what it decodes we must decode to the same
    //! bytes (unless the filter chain is one containers/image rejects), what it rejects we
    //! must reject. Inputs are fed in pieces of every size down to one byte and decoded into
    //! output buffers down to one byte.

    use std::io::Write as _;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    use super::*;

    /// A small deterministic generator (xorshift64*), so failures reproduce.
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

    /// Compressible but not trivial data: words, runs and random bytes.
    fn payload(len: usize, seed: u64) -> Vec<u8> {
        let words: [&[u8]; 6] = [
            b"layer ",
            b"diffid ",
            b"tar\n",
            b"\0\0\0\0",
            b"usr/share/",
            b"xz ",
        ];
        let mut rng = Rng(seed | 1);
        let mut v = Vec::with_capacity(len + 16);
        while v.len() < len {
            match rng.below(4) {
                0 => v.extend((0..rng.below(20)).map(|_| rng.next() as u8)),
                _ => v.extend_from_slice(words[rng.below(words.len())]),
            }
        }
        v.truncate(len);
        v
    }

    /// Runs `xz` with `args`, `input` on stdin; `Some(stdout)` if it exits with status 0.
    fn run_xz(args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
        let mut child = Command::new("xz")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the xz program must be installed to run these tests");
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        out.status.success().then_some(out.stdout)
    }

    fn compress(args: &[&str], data: &[u8]) -> Vec<u8> {
        let mut all = vec!["-c", "-q"];
        all.extend_from_slice(args);
        run_xz(&all, data).unwrap_or_else(|| panic!("xz {args:?} failed"))
    }

    /// What `xz -dc` makes of `data`, or `None` if it rejects it.
    fn xz_dc(data: &[u8]) -> Option<Vec<u8>> {
        run_xz(&["-dc", "-q", "-q"], data)
    }

    fn full() -> Options {
        Options {
            full_xz: true,
            ..Options::default()
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Feed {
        /// The whole input in one call, 64 KiB output buffers.
        Whole,
        /// One byte of input per call, output buffers of `out` bytes.
        Bytes { out: usize },
        /// Random input pieces up to `max_in` bytes, random output buffers up to `max_out`.
        Random {
            seed: u64,
            max_in: usize,
            max_out: usize,
        },
    }

    /// Decodes `data` as the pipeline would: pieces of input, arbitrary output buffers,
    /// `finish` at the end. Checks the trait's progress contract on the way.
    fn decode_with(data: &[u8], opts: &Options, feed: Feed) -> Result<Vec<u8>> {
        decode_on(data, opts, feed, 0)
    }

    /// A decoder with `helpers` helper threads (not taken from the process budget).
    fn decoder(opts: &Options, helpers: usize) -> Result<XzDecoder> {
        XzDecoder::with_helpers(
            opts,
            Helpers {
                permit: crate::budget::Permit::for_tests(helpers),
                max: helpers,
            },
        )
    }

    /// [`decode_with`] on a decoder with `helpers` helper threads.
    fn decode_on(data: &[u8], opts: &Options, feed: Feed, helpers: usize) -> Result<Vec<u8>> {
        let mut dec = decoder(opts, helpers)?;
        let mut rng = Rng(match feed {
            Feed::Random { seed, .. } => seed | 1,
            _ => 1,
        });
        let piece = |rng: &mut Rng| match feed {
            Feed::Whole => usize::MAX,
            Feed::Bytes { .. } => 1,
            Feed::Random { max_in, .. } => 1 + rng.below(max_in),
        };
        let out_size = |rng: &mut Rng| match feed {
            Feed::Whole => 1 << 16,
            Feed::Bytes { out } => out,
            Feed::Random { max_out, .. } => 1 + rng.below(max_out),
        };
        let mut buf = vec![0u8; 1 << 17];
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let end = pos + piece(&mut rng).min(data.len() - pos);
            let mut chunk = &data[pos..end];
            while !chunk.is_empty() {
                let n = out_size(&mut rng);
                let (c, p) = dec.decode(chunk, &mut buf[..n])?;
                assert!(c > 0 || p > 0, "no progress with input and output space");
                assert!(c <= chunk.len() && p <= n);
                out.extend_from_slice(&buf[..p]);
                chunk = &chunk[c..];
            }
            pos = end;
        }
        loop {
            let n = out_size(&mut rng);
            let (p, done) = dec.finish(&mut buf[..n])?;
            out.extend_from_slice(&buf[..p]);
            if done {
                assert_eq!(p, 0);
                // Finishing again is harmless.
                assert_eq!(dec.finish(&mut buf[..n])?, (0, true));
                return Ok(out);
            }
            assert!(p > 0, "finish neither produced nor finished nor failed");
        }
    }

    const FEEDS: [Feed; 5] = [
        Feed::Whole,
        Feed::Bytes { out: 1 },
        Feed::Bytes { out: 4096 },
        Feed::Random {
            seed: 7,
            max_in: 300,
            max_out: 300,
        },
        Feed::Random {
            seed: 11,
            max_in: 70_000,
            max_out: 70_000,
        },
    ];

    /// Decodes `data` with every feed; each must give `expected`.
    fn assert_decodes(data: &[u8], opts: &Options, expected: &[u8]) {
        for feed in FEEDS {
            match decode_with(data, opts, feed) {
                Ok(out) => assert!(
                    out == expected,
                    "{feed:?}: wrong output ({} bytes)",
                    out.len()
                ),
                Err(e) => panic!("{feed:?}: {e}"),
            }
        }
    }

    /// Decodes `data` with every feed; each must fail with `kind`. Returns the first error.
    fn assert_fails(data: &[u8], opts: &Options, kind: ErrorKind) -> Error {
        let mut first = None;
        for feed in FEEDS {
            match decode_with(data, opts, feed) {
                Ok(_) => panic!("{feed:?}: decoded, expected {kind:?}"),
                Err(e) => {
                    assert_eq!(e.kind(), kind, "{feed:?}: {e}");
                    assert!(e.offset().is_some(), "{feed:?}: no offset in {e}");
                    if let Some(f) = &first {
                        assert_eq!(&e, f, "{feed:?}: the error depends on the feed");
                    }
                    first.get_or_insert(e);
                }
            }
        }
        first.unwrap()
    }

    #[test]
    fn checks_and_block_layouts_round_trip() {
        let big = payload(200_000, 1);
        let inputs: [&[u8]; 3] = [b"", b"x", &big];
        for data in inputs {
            for check in ["none", "crc32", "crc64", "sha256"] {
                let check_arg = format!("--check={check}");
                let layouts: [&[&str]; 3] = [
                    &["-6"],
                    &["-1", "-T1", "--block-size=20000"],
                    &["-1", "-T2", "--block-size=30000"],
                ];
                for layout in layouts {
                    let mut args = layout.to_vec();
                    args.push(&check_arg);
                    let xz = compress(&args, data);
                    assert_eq!(xz_dc(&xz).as_deref(), Some(data), "xz itself disagrees");
                    assert_decodes(&xz, &Options::default(), data);
                    assert_decodes(&xz, &full(), data);
                }
            }
        }
    }

    #[test]
    fn many_small_blocks() {
        let data = payload(300_000, 2);
        let xz = compress(&["-0", "-T2", "--block-size=1000"], &data);
        assert_decodes(&xz, &Options::default(), &data);
    }

    #[test]
    fn concatenated_streams_and_padding() {
        let a = payload(50_000, 3);
        let b = payload(20_000, 4);
        let xa = compress(&["--check=crc32"], &a);
        let xb = compress(&["--check=sha256", "-T2", "--block-size=5000"], &b);
        let xe = compress(&[], b"");
        let ab: Vec<u8> = [a.clone(), b.clone()].concat();
        let cat = |parts: &[&[u8]]| parts.concat();
        let z4 = [0u8; 4];
        let z8 = [0u8; 8];
        let good: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (cat(&[&xa, &xb]), ab.clone()),
            (cat(&[&xa, &z4, &xb]), ab.clone()),
            (cat(&[&xa, &z8, &xb, &z4]), ab.clone()),
            (cat(&[&xa, &z8]), a.clone()),
            (cat(&[&xe, &xa, &xe, &z4, &xe, &xb, &xe]), ab.clone()),
            (cat(&[&xe, &z4]), Vec::new()),
        ];
        for (xz, expected) in &good {
            assert_eq!(xz_dc(xz).as_ref(), Some(expected));
            assert_decodes(xz, &Options::default(), expected);
        }

        // Padding that is not a multiple of 4 bytes, at the end or between streams.
        for n in [1, 2, 3, 5, 7] {
            let zeros = vec![0u8; n];
            for xz in [cat(&[&xa, &zeros]), cat(&[&xa, &zeros, &xb])] {
                assert_eq!(xz_dc(&xz), None);
                let e = assert_fails(&xz, &Options::default(), ErrorKind::Corrupt);
                assert!(
                    e.message()
                        .contains("stream padding is not a multiple of 4 bytes"),
                    "{e}"
                );
                assert_eq!(e.offset(), Some(xa.len() as u64), "{e}");
            }
        }

        // Anything that is neither padding nor a stream.
        for tail in [
            &b"garbage"[..],
            &[0, 0, 0, 0, 1],
            &[0xfd, b'7', b'z', b'X', b'Y'],
            &[1],
        ] {
            let xz = cat(&[&xa, tail]);
            assert_eq!(xz_dc(&xz), None);
            let e = assert_fails(&xz, &Options::default(), ErrorKind::TrailingData);
            let first = tail.iter().position(|&b| b != 0).unwrap();
            assert_eq!(e.offset(), Some((xa.len() + first) as u64), "{e}");
            assert!(e.message().contains("after the end of stream 1"), "{e}");
        }
        // A stream that starts but ends early is truncated, not trailing data.
        let xz = cat(&[&xa, &z4, &xb[..3]]);
        let e = assert_fails(&xz, &Options::default(), ErrorKind::Truncated);
        assert!(e.message().contains("stream 2"), "{e}");
    }

    #[test]
    fn every_truncation_fails() {
        let data = payload(3000, 5);
        let one = compress(&["-T2", "--block-size=1000", "--check=crc64"], &data);
        let two = [one.clone(), compress(&["--check=none"], b"abc")].concat();
        for xz in [&one, &two] {
            for len in 0..xz.len() {
                if len == one.len() && xz.len() > len {
                    // `two` cut right after its first stream is a valid file.
                    assert_eq!(
                        decode_with(&xz[..len], &Options::default(), Feed::Whole).unwrap(),
                        data
                    );
                    continue;
                }
                for feed in [Feed::Whole, Feed::Bytes { out: 1 }] {
                    match decode_with(&xz[..len], &Options::default(), feed) {
                        Ok(_) => panic!("prefix of {len} bytes decoded"),
                        Err(e) => assert_eq!(e.kind(), ErrorKind::Truncated, "len {len}: {e}"),
                    }
                }
            }
        }
    }

    #[test]
    fn filter_chains_need_full_xz() {
        let data = payload(100_000, 6);
        let cases: [(&[&str], &str); 5] = [
            (&["--x86", "--lzma2"], "BCJ x86 + LZMA2"),
            (&["--delta=dist=4", "--lzma2"], "delta + LZMA2"),
            (&["--arm64", "--lzma2"], "BCJ ARM64 + LZMA2"),
            (
                &["--x86", "--delta", "--lzma2=preset=1"],
                "BCJ x86 + delta + LZMA2",
            ),
            (
                &["-T2", "--block-size=30000", "--arm", "--lzma2"],
                "BCJ ARM + LZMA2",
            ),
        ];
        for (args, chain) in cases {
            let xz = compress(args, &data);
            let e = assert_fails(&xz, &Options::default(), ErrorKind::Unsupported);
            let want = format!(
                "unsupported filter chain ({chain}) at block 1 of stream 1; decode it with full_xz"
            );
            assert_eq!(e.message(), want);
            assert_eq!(e.offset(), Some(12));
            assert_decodes(&xz, &full(), &data);
        }
        // The chain of a later block, in a later stream.
        let plain = compress(&["-T2", "--block-size=30000"], &data);
        let bcj = compress(&["-T2", "--block-size=30000", "--x86", "--lzma2"], &data);
        let xz = [plain.clone(), bcj].concat();
        let e = assert_fails(&xz, &Options::default(), ErrorKind::Unsupported);
        assert!(e.message().contains("at block 1 of stream 2"), "{e}");
        assert_eq!(e.offset(), Some(plain.len() as u64 + 12));
    }

    #[test]
    fn memory_limit() {
        let data = payload(10_000, 7);
        let xz = compress(&["--lzma2=dict=64MiB"], &data);
        let small = Options {
            decoder_memory_limit: 1 << 20,
            ..Options::default()
        };
        let e = assert_fails(&xz, &small, ErrorKind::LimitExceeded);
        assert!(e.message().contains("block 1 of stream 1 needs"), "{e}");
        assert_decodes(&xz, &Options::default(), &data);
        let exact = Options {
            decoder_memory_limit: 64 << 20,
            ..Options::default()
        };
        assert_fails(&xz, &exact, ErrorKind::LimitExceeded);
        let enough = Options {
            decoder_memory_limit: 65 << 20,
            ..Options::default()
        };
        assert_decodes(&xz, &enough, &data);
    }

    /// Sets the check ID of the (first) stream header and footer and fixes their CRC32s.
    fn set_check(xz: &mut [u8], id: u8) {
        xz[7] = id;
        let crc = crc32fast::hash(&xz[6..8]);
        xz[8..12].copy_from_slice(&crc.to_le_bytes());
        let f = xz.len() - 12;
        xz[f + 9] = id;
        let crc = crc32fast::hash(&xz[f + 4..f + 10]);
        xz[f..f + 4].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn unknown_check_types_are_unsupported() {
        // An empty stream, so that only the flags say which check there is.
        let good = compress(&["--check=crc32"], b"");
        for id in (0..16).filter(|id| ![0, 1, 4, 10].contains(id)) {
            let mut xz = good.clone();
            set_check(&mut xz, id);
            let e = assert_fails(&xz, &Options::default(), ErrorKind::Unsupported);
            assert!(
                e.message().contains(&format!("check type 0x{id:02x}")),
                "{e}"
            );
            assert_fails(&xz, &full(), ErrorKind::Unsupported);
        }
        for id in [0, 1, 4, 10] {
            let mut xz = good.clone();
            set_check(&mut xz, id);
            assert_decodes(&xz, &Options::default(), b"");
        }
    }

    /// Where the index of a single-stream file starts, from its footer's Backward Size.
    fn index_range(xz: &[u8]) -> std::ops::Range<usize> {
        let f = xz.len() - 12;
        let size = (u32::from_le_bytes(xz[f + 4..f + 8].try_into().unwrap()) as usize + 1) * 4;
        f - size..f
    }

    fn fix_index_crc(xz: &mut [u8]) {
        let r = index_range(xz);
        let crc = crc32fast::hash(&xz[r.start..r.end - 4]);
        xz[r.end - 4..r.end].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn index_must_match_the_blocks() {
        // Two blocks of different sizes; the index records are located by reading the index.
        let data = payload(40_000, 8);
        let xz = compress(&["-0", "-T2", "--block-size=30000", "--check=crc32"], &data);
        let r = index_range(&xz);
        let mut pos = r.start + 1;
        let count = read_vli(&xz, &mut pos).unwrap();
        assert_eq!(count, 2);
        let mut fields = Vec::new();
        for _ in 0..4 {
            let start = pos;
            let v = read_vli(&xz, &mut pos).unwrap();
            fields.push((start..pos, v));
        }
        assert_decodes(&xz, &Options::default(), &data);

        // A wrong uncompressed size (same encoded length: flip a low bit).
        let mut bad = xz.clone();
        bad[fields[1].0.start] ^= 1;
        fix_index_crc(&mut bad);
        let e = assert_fails(&bad, &Options::default(), ErrorKind::Corrupt);
        assert_eq!(
            e.message(),
            "the uncompressed sizes in the index of stream 1 do not match its blocks"
        );

        // A wrong unpadded size.
        let mut bad = xz.clone();
        bad[fields[0].0.start] ^= 4;
        fix_index_crc(&mut bad);
        let e = assert_fails(&bad, &Options::default(), ErrorKind::Corrupt);
        assert!(e.message().contains("unpadded sizes"), "{e}");

        // The two records swapped: the sums agree, the order does not.
        let (u1, c1) = (
            &xz[fields[0].0.start..fields[1].0.end],
            &xz[fields[2].0.start..fields[3].0.end],
        );
        let swapped: Vec<u8> = [c1, u1].concat();
        let mut bad = xz.clone();
        bad[fields[0].0.start..fields[3].0.end].copy_from_slice(&swapped);
        fix_index_crc(&mut bad);
        let e = assert_fails(&bad, &Options::default(), ErrorKind::Corrupt);
        assert_eq!(
            e.message(),
            "the index records of stream 1 do not match its blocks"
        );
        assert_eq!(xz_dc(&bad), None);

        // A wrong record count.
        let mut bad = xz.clone();
        bad[r.start + 1] = 3;
        fix_index_crc(&mut bad);
        let e = assert_fails(&bad, &Options::default(), ErrorKind::Corrupt);
        assert!(
            e.message().contains("lists 3 blocks but the stream has 2"),
            "{e}"
        );

        // The index CRC32.
        let mut bad = xz.clone();
        bad[r.end - 1] ^= 0x80;
        let e = assert_fails(&bad, &Options::default(), ErrorKind::Corrupt);
        assert_eq!(e.message(), "index CRC32 mismatch in stream 1");
    }

    /// Every single-byte change of a small file: we accept exactly what xz accepts, and then
    /// produce exactly what it produces.
    #[test]
    fn mutations_agree_with_xz() {
        let data = payload(600, 9);
        let files = [
            compress(&["--check=crc64"], &data),
            compress(&["--check=none", "-T2", "--block-size=300"], &data),
        ];
        for xz in &files {
            for i in 0..xz.len() {
                for bit in [0x01, 0x80] {
                    let mut m = xz.clone();
                    m[i] ^= bit;
                    let ours = decode_with(&m, &full(), Feed::Whole);
                    let theirs = xz_dc(&m);
                    match (&ours, &theirs) {
                        (Ok(a), Some(b)) => assert!(a == b, "byte {i} ^ {bit:#x}: outputs differ"),
                        (Err(_), None) => {}
                        _ => panic!(
                            "byte {i} ^ {bit:#x}: we say {:?}, xz says {}",
                            ours.as_ref().map(|v| v.len()),
                            if theirs.is_some() { "ok" } else { "error" }
                        ),
                    }
                    // The same answer whatever the feed.
                    let bytewise = decode_with(&m, &full(), Feed::Bytes { out: 1 });
                    assert_eq!(ours.is_ok(), bytewise.is_ok(), "byte {i} ^ {bit:#x}");
                    if let (Err(a), Err(b)) = (&ours, &bytewise) {
                        assert_eq!(a.kind(), b.kind(), "byte {i} ^ {bit:#x}: {a} vs {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn errors_stick_and_offsets_are_given() {
        let data = payload(5000, 10);
        let mut xz = compress(&["--check=crc32"], &data);
        let r = index_range(&xz);
        // The check of the only block is the 4 bytes before the index.
        xz[r.start - 1] ^= 0xff;
        let e = assert_fails(&xz, &Options::default(), ErrorKind::Corrupt);
        assert!(
            e.message()
                .starts_with("integrity check (CRC32) mismatch at block 1 of stream 1"),
            "{e}"
        );
        assert_eq!(e.offset(), Some(r.start as u64));
        let mut dec = XzDecoder::new(&Options::default()).unwrap();
        let mut out = vec![0; 1 << 16];
        let mut first = None;
        let mut input = &xz[..];
        while !input.is_empty() {
            match dec.decode(input, &mut out) {
                Ok((c, _)) => input = &input[c..],
                Err(e) => {
                    first = Some(e);
                    break;
                }
            }
        }
        let first = first.expect("decoding must fail");
        assert_eq!(dec.decode(b"more", &mut out), Err(first.clone()));
        assert_eq!(dec.finish(&mut out), Err(first));
    }

    #[test]
    fn dropping_mid_block_is_fine() {
        let data = payload(100_000, 12);
        let xz = compress(&["-9"], &data);
        for _ in 0..20 {
            let mut dec = XzDecoder::new(&Options::default()).unwrap();
            let mut out = vec![0; 1000];
            dec.decode(&xz[..xz.len() / 2], &mut out).unwrap();
        }
    }

    fn corpus_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/peers/xz")
    }

    fn corpus() -> Vec<(String, Vec<u8>)> {
        let dir = corpus_dir();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "xz"))
            .map(|p| {
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect();
        files.sort();
        assert!(files.len() >= 60, "the xz corpus is incomplete");
        files
    }

    /// The good files whose filter chain containers/image rejects.
    const FILTER_CHAIN_FILES: [&str; 5] = [
        "good-1-3delta-lzma2.xz",
        "good-1-arm64-lzma2-1.xz",
        "good-1-arm64-lzma2-2.xz",
        "good-1-delta-lzma2.tiff.xz",
        "good-1-empty-bcj-lzma2.xz",
    ];

    #[test]
    fn corpus_good() {
        for (name, data) in corpus().iter().filter(|(n, _)| n.starts_with("good-")) {
            let expected = xz_dc(data).unwrap_or_else(|| panic!("{name}: xz rejects it"));
            if FILTER_CHAIN_FILES.contains(&name.as_str()) {
                let e = decode_with(data, &Options::default(), Feed::Whole)
                    .expect_err(&format!("{name}: accepted by default"));
                assert_eq!(e.kind(), ErrorKind::Unsupported, "{name}: {e}");
                assert!(
                    e.message().contains("decode it with full_xz"),
                    "{name}: {e}"
                );
                assert_decodes(data, &full(), &expected);
            } else {
                assert_decodes(data, &Options::default(), &expected);
            }
        }
    }

    #[test]
    fn corpus_bad_and_unsupported() {
        for (name, data) in corpus().iter().filter(|(n, _)| !n.starts_with("good-")) {
            for opts in [Options::default(), full()] {
                for feed in [Feed::Whole, Feed::Bytes { out: 1 }] {
                    let e = match decode_with(data, &opts, feed) {
                        Ok(out) => panic!("{name}: decoded {} bytes", out.len()),
                        Err(e) => e,
                    };
                    let want = match name.as_str() {
                        n if n.starts_with("unsupported-") => Some(ErrorKind::Unsupported),
                        "bad-0-empty-truncated.xz" => Some(ErrorKind::Truncated),
                        "bad-0cat-alone.xz" | "bad-0cat-header_magic.xz" => {
                            Some(ErrorKind::TrailingData)
                        }
                        "bad-0pad-empty.xz" | "bad-0catpad-empty.xz" => Some(ErrorKind::Corrupt),
                        _ => None,
                    };
                    if let Some(kind) = want {
                        assert_eq!(e.kind(), kind, "{name}: {e}");
                    } else {
                        assert!(
                            matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Unsupported),
                            "{name}: {e}"
                        );
                    }
                    assert!(e.offset().is_some(), "{name}: {e}");
                }
            }
        }
    }

    // Parallel decoding: the same output and the same errors as the sequential decoder.

    /// Decodes `data` sequentially and in parallel with each feed; the results must be equal,
    /// errors included (kind, message and offset). Returns the sequential result.
    fn assert_parallel_same(data: &[u8], opts: &Options, feeds: &[Feed]) -> Result<Vec<u8>> {
        let mut first = None;
        for &feed in feeds {
            let seq = decode_on(data, opts, feed, 0);
            for helpers in [1, 3] {
                let par = decode_on(data, opts, feed, helpers);
                match (&seq, &par) {
                    (Ok(a), Ok(b)) => {
                        assert!(a == b, "{feed:?}, {helpers} helpers: outputs differ")
                    }
                    _ => assert_eq!(seq, par, "{feed:?}, {helpers} helpers"),
                }
            }
            first.get_or_insert(seq);
        }
        first.unwrap()
    }

    #[test]
    fn parallel_blocks_decode_as_sequential() {
        let big = payload(400_000, 21);
        for data in [&big[..], b"", b"x"] {
            for args in [
                &["-1", "-T2", "--block-size=20000", "--check=crc64"][..],
                &["-0", "-T2", "--block-size=1000", "--check=sha256"],
                &["-1", "-T2", "--block-size=65536", "--check=none"],
                &["-1", "-T2", "--block-size=30000", "--check=crc32"],
                // Single-threaded: no sizes in the headers, decoded as they stream in.
                &["-1", "-T1", "--block-size=30000"],
                &["-6"],
            ] {
                let xz = compress(args, data);
                let out = assert_parallel_same(&xz, &Options::default(), &FEEDS).unwrap();
                assert!(out == data, "{args:?}");
            }
        }
    }

    #[test]
    fn parallel_mixed_streams_padding_and_trailing_data() {
        let a = payload(150_000, 22);
        let b = payload(90_000, 23);
        let xa = compress(&["-0", "-T2", "--block-size=10000"], &a);
        let xb = compress(&["-0", "-T1", "--block-size=20000", "--check=sha256"], &b);
        let xc = compress(&["-0", "-T2", "--block-size=7000", "--check=none"], &b);
        let xe = compress(&[], b"");
        let cat = |parts: &[&[u8]]| parts.concat();
        let z4 = [0u8; 4];
        let inputs = [
            cat(&[&xa, &xb, &xc]),
            cat(&[&xa, &z4, &xe, &xc, &z4, &z4]),
            cat(&[&xc, &xa, &[0, 0]]),
            cat(&[&xa, b"garbage"]),
            cat(&[&xa, &z4, &xc[..xc.len() - 5]]),
            cat(&[&xa, &xa[..100]]),
        ];
        for xz in &inputs {
            let ours = assert_parallel_same(xz, &Options::default(), &FEEDS);
            assert_eq!(ours.is_ok(), xz_dc(xz).is_some());
        }
    }

    #[test]
    fn parallel_truncations_fail_as_sequential() {
        let data = payload(60_000, 24);
        let xz = compress(&["-0", "-T2", "--block-size=5000", "--check=crc32"], &data);
        let feeds = [
            Feed::Whole,
            Feed::Random {
                seed: 5,
                max_in: 3000,
                max_out: 5000,
            },
        ];
        for len in (0..xz.len()).step_by(23).chain(xz.len() - 40..xz.len()) {
            let e = assert_parallel_same(&xz[..len], &Options::default(), &feeds).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Truncated, "len {len}: {e}");
        }
    }

    #[test]
    fn parallel_corruption_fails_as_sequential() {
        let data = payload(40_000, 25);
        let xz = compress(&["-0", "-T2", "--block-size=4000", "--check=crc64"], &data);
        let feeds = [
            Feed::Whole,
            Feed::Random {
                seed: 3,
                max_in: 2000,
                max_out: 9000,
            },
        ];
        let mut rng = Rng(26);
        let mut failures = 0;
        for _ in 0..300 {
            let mut bad = xz.clone();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(bad.len());
                bad[i] ^= 1 << rng.below(8);
            }
            if assert_parallel_same(&bad, &full(), &feeds).is_err() {
                failures += 1;
            }
        }
        assert!(
            failures > 250,
            "only {failures} of 300 corruptions detected"
        );
    }

    #[test]
    fn parallel_respects_the_memory_limit() {
        let data = payload(300_000, 27);
        let xz = compress(&["-0", "-T2", "--block-size=50000"], &data);
        // -0 needs some 300 KiB of decoder memory per block: each limit lets fewer blocks,
        // or none, be in flight (or rejects the file); the result is the same.
        let mut verdicts = Vec::new();
        for limit in [100_000, 400_000, 700_000, 1_000_000, 1_500_000, 1 << 30] {
            let opts = Options {
                decoder_memory_limit: limit,
                ..Options::default()
            };
            verdicts.push(assert_parallel_same(&xz, &opts, &[Feed::Whole]).is_ok());
        }
        assert_eq!(verdicts, [false, true, true, true, true, true]);
    }

    #[test]
    fn parallel_corpus_as_sequential() {
        for (name, data) in corpus() {
            for opts in [Options::default(), full()] {
                let seq = decode_on(&data, &opts, Feed::Whole, 0);
                let par = decode_on(&data, &opts, Feed::Whole, 2);
                assert!(seq == par, "{name}: {seq:?} vs {par:?}");
            }
        }
    }

    #[test]
    fn splits_needs_sizes_in_the_first_block_header() {
        let data = payload(100_000, 28);
        assert!(splits(&compress(
            &["-0", "-T2", "--block-size=10000"],
            &data
        )));
        assert!(!splits(&compress(&["-0", "-T1"], &data)));
        assert!(!splits(&compress(&["-0"], b"")));
        assert!(!splits(b"\xfd7zXZ\0"));
    }

    #[test]
    fn blocks_with_sizes_go_to_the_crew() {
        let data = payload(200_000, 30);
        let count = |xz: &[u8], helpers: usize| {
            let mut dec = decoder(&Options::default(), helpers).unwrap();
            let mut out = vec![0; 1 << 20];
            let (c, _) = dec.decode(xz, &mut out).unwrap();
            assert_eq!(c, xz.len());
            while !dec.finish(&mut out).unwrap().1 {}
            dec.submitted
        };
        let t2 = compress(&["-0", "-T2", "--block-size=10000"], &data);
        assert_eq!(count(&t2, 2), 20);
        assert_eq!(count(&t2, 0), 0);
        assert_eq!(
            count(&compress(&["-0", "-T1", "--block-size=10000"], &data), 2),
            0
        );
    }

    #[test]
    fn dropping_a_parallel_decoder_mid_stream_is_fine() {
        let data = payload(500_000, 29);
        let xz = compress(&["-0", "-T2", "--block-size=10000"], &data);
        for cut in [xz.len() / 3, xz.len() / 2, xz.len() - 20] {
            let mut dec = decoder(&Options::default(), 2).unwrap();
            let mut out = vec![0; 1000];
            let mut input = &xz[..cut];
            while !input.is_empty() {
                let (c, _) = dec.decode(input, &mut out).unwrap();
                input = &input[c..];
            }
        }
    }

    /// Not a test: decoding speed against `xz -dc -T1` on 64 MiB
    /// (`cargo test --release --lib decode::xz::tests::speed -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn speed() {
        let data = payload(64 << 20, 13);
        let xz = compress(&["-3", "-T2", "--block-size=8MiB"], &data);
        let t = std::time::Instant::now();
        let theirs = xz_dc(&xz).unwrap();
        let xz_time = t.elapsed();
        let t = std::time::Instant::now();
        let ours = decode_with(&xz, &Options::default(), Feed::Whole).unwrap();
        let our_time = t.elapsed();
        assert!(ours == theirs && ours == data);
        println!(
            "{} -> {} bytes: xz -dc {xz_time:?}, ours {our_time:?}",
            xz.len(),
            data.len()
        );
    }

    /// Not a test of the decoder: prints what it says about each bad corpus file, for review
    /// (`cargo test corpus_messages -- --nocapture --ignored`).
    #[test]
    #[ignore]
    fn corpus_messages() {
        for (name, data) in corpus() {
            match decode_with(&data, &Options::default(), Feed::Whole) {
                Ok(out) => println!("{name}: ok, {} bytes", out.len()),
                Err(e) => println!("{name}: {:?}: {e}", e.kind()),
            }
        }
    }
}
