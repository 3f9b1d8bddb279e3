//! One block: its header (read by liblzma, checked against the filter policy) and the
//! [`BlockDecoder`] that decodes its data, padding and check.

use liblzma_sys as lz;

use super::check::{Check, CheckState};
use super::index::Vli;
use super::lzma2::Lzma2Chunks;
use super::{BlockId, UNPADDED_SIZE_MAX};
use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;

/// `LZMA_FILTERS_MAX + 1`: liblzma's block header decoder writes this many entries.
const FILTER_SLOTS: usize = 5;

/// What a block may use.
#[derive(Debug, Clone, Copy)]
pub(super) struct BlockPolicy {
    /// Accept any filter chain liblzma decodes, not only a lone LZMA2.
    pub(super) full_xz: bool,
    /// The most memory the filter chain of one block may need.
    pub(super) memory_limit: u64,
}

impl BlockPolicy {
    pub(super) fn new(opts: &Options) -> BlockPolicy {
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
pub(super) fn read_vli(buf: &[u8], pos: &mut usize) -> std::result::Result<u64, &'static str> {
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
    pub(super) fn new() -> FilterChain {
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
pub(super) struct BlockHeader {
    /// `filters` is null here; the chain is in `filters`.
    block: lz::lzma_block,
    filters: FilterChain,
    memusage: u64,
}

impl BlockHeader {
    /// The compressed size the header declares, if it does.
    pub(super) fn compressed_size(&self) -> Option<u64> {
        (self.block.compressed_size != lz::LZMA_VLI_UNKNOWN).then_some(self.block.compressed_size)
    }

    /// The uncompressed size the header declares, if it does.
    pub(super) fn uncompressed_size(&self) -> Option<u64> {
        (self.block.uncompressed_size != lz::LZMA_VLI_UNKNOWN)
            .then_some(self.block.uncompressed_size)
    }

    /// Memory the block's filter chain needs to decode.
    pub(super) fn memusage(&self) -> u64 {
        self.memusage
    }
}

/// Checks the complete block header `header` (its size byte first, `(header[0] + 1) * 4`
/// bytes) of a stream whose check is `check`: its CRC32, that liblzma can read it, and that
/// `policy` allows its filter chain and memory. Errors carry no offset; the header's offset is
/// the caller's to add.
pub(super) fn check_header(
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
                "unsupported filter chain ({}) at {id}; decode it with option full_xz",
                chain_name(&ids)
            ),
        ));
    }
    if memusage > policy.memory_limit {
        return Err(Error::new(
            ErrorKind::LimitExceeded,
            format!(
                "{id} needs {memusage} bytes of decoder memory, more than the limit of {} \
                     (option decoder_memory_limit)",
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
pub(super) struct BlockDecoder {
    // Boxed: liblzma keeps a pointer to `block` while decoding, and neither may move under it.
    strm: Box<lz::lzma_stream>,
    block: Box<lz::lzma_block>,
    id: BlockId,
    check: Check,
    check_state: CheckState,
    header_size: u64,
    /// Compressed bytes of the current block consumed after its header.
    data_consumed: u64,
    /// How far before `data_consumed` the last error's fault lies (the bad padding byte was
    /// consumed; a check is a field, not a point).
    fault_back: u64,
    uncompressed: u64,
    /// The LZMA2 chunks of the block's data, for what containers/image refuses in them.
    chunks: Lzma2Chunks,
}

// SAFETY: the liblzma stream and block are owned by this value alone, liblzma state has no
// thread affinity, and every use goes through `&mut self`, so moving the decoder to another
// thread is sound. (It is not Sync, and need not be.)
unsafe impl Send for BlockDecoder {}

impl BlockDecoder {
    pub(super) fn new() -> BlockDecoder {
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
            fault_back: 0,
            uncompressed: 0,
            chunks: Lzma2Chunks::new(),
        }
    }

    /// Offset, counted from the end of the block header, of the fault behind the last error
    /// of [`decode`](Self::decode): the non-zero padding byte, the first byte of a check that
    /// does not match, or else where liblzma stopped.
    pub(super) fn fault_offset(&self) -> u64 {
        self.data_consumed - self.fault_back
    }

    /// Prepares to decode the block whose complete header is `header` (its size byte first,
    /// `(header[0] + 1) * 4` bytes), in a stream whose check is `check`. Enforces `policy`
    /// (see [`check_header`]). Errors carry no offset; the header's offset is the caller's
    /// to add.
    pub(super) fn start(
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
        self.fault_back = 0;
        self.uncompressed = 0;
        self.chunks = Lzma2Chunks::new();
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
    pub(super) fn decode(
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
        // Before liblzma's verdict: liblzma stops consuming at a fault, so a refused chunk
        // among the bytes it consumed comes first, however the input was cut.
        if let Err(r) = self.chunks.feed(&input[..consumed]) {
            self.fault_back = self.data_consumed - r.chunk_start;
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "LZMA2 chunk {} of {id}, which containers/image \
                     (ulikunitz/xz) refuses and xz-utils decodes: {}",
                    r.chunk, r.what
                ),
            ));
        }
        match ret {
            // BUF_ERROR: no progress was possible (no input, or no output space); not fatal.
            lz::LZMA_OK | lz::LZMA_BUF_ERROR => Ok((consumed, produced, false)),
            lz::LZMA_STREAM_END => {
                let computed = self.check_state.finish();
                let stored = &self.block.raw_check[..self.check.size()];
                if computed != stored {
                    self.fault_back = self.check.size() as u64;
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
            // liblzma's block decoder sets the compressed size once the LZMA2 data has ended
            // (or had it from the header) and then reads the padding a byte at a time,
            // failing just after a non-zero one; a fault in the data or the sizes is found at
            // or before that size.
            lz::LZMA_DATA_ERROR
                if self.block.compressed_size != lz::LZMA_VLI_UNKNOWN
                    && self.data_consumed > self.block.compressed_size
                    && consumed > 0
                    && input[consumed - 1] != 0 =>
            {
                self.fault_back = 1;
                Err(Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "block padding is not zero at {id} (byte 0x{:02x})",
                        input[consumed - 1]
                    ),
                ))
            }
            lz::LZMA_DATA_ERROR => Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "corrupt compressed data at {id} (invalid LZMA2 data, or sizes that \
                     differ from the block header)"
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
    pub(super) fn sizes(&self) -> (u64, u64) {
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
