//! Raw deflate through ISA-L's `isal_inflate` (Intel's igzip): the fast backend, used with the
//! default `isal` feature.
//!
//! The inflate called is `vendor/isa-l`'s copy of ISA-L's (`isal_strict_inflate`, compiled by
//! `build.rs`), which also rejects a dynamic block whose Huffman code is incomplete, as zlib
//! and containers/image do and ISA-L itself does not ([`INCOMPLETE_CODE`]); the assembly
//! block decoders and the CRC32 are isal-sys's.
//!
//! ISA-L is run in `ISAL_GZIP_NO_HDR` mode: it inflates raw deflate data and keeps the CRC32
//! of what it wrote (over each call's output while it is still in cache, as `igzip` does), so
//! the CRC is computed once. The member framing (header, trailer, CRC32 and ISIZE checks)
//! stays in `gzip.rs`.
//!
//! ISA-L reads its input ahead into a 64-bit bit buffer, so when the deflate data ends it may
//! already have taken up to 8 bytes that follow it (the start of the trailer) from the input:
//! [`Inflate::leftover`] hands those back.

use std::mem::MaybeUninit;

use isal_sys::igzip_lib as isal;

use super::{Inflate, InflateError, InflateFault, Step};

/// `isal_strict_inflate`'s error for a dynamic block whose code length, literal/length or
/// distance code is incomplete (`ISAL_INCOMPLETE_CODE` in `vendor/isa-l/igzip/igzip_inflate.c`).
const INCOMPLETE_CODE: i32 = -20;

// The patched copy of ISA-L's inflate (vendor/isa-l, compiled by build.rs): the same functions
// as isal-sys's, renamed.
unsafe extern "C" {
    fn isal_strict_inflate_init(state: *mut isal::inflate_state);
    fn isal_strict_inflate_reset(state: *mut isal::inflate_state);
    fn isal_strict_inflate(state: *mut isal::inflate_state) -> std::ffi::c_int;
    /// `sizeof(struct inflate_state)` as the C copy was compiled.
    fn isal_strict_state_size() -> usize;
}

pub(crate) struct IsalInflater {
    /// About 90 KiB (a 64 KiB history buffer and the decoding tables): boxed.
    state: Box<isal::inflate_state>,
}

// SAFETY: the state holds raw pointers only into buffers of the current `inflate` call (they
// are cleared before it returns); it owns no thread-bound resource.
unsafe impl Send for IsalInflater {}

impl Inflate for IsalInflater {
    const NAME: &'static str = "ISA-L";

    fn new() -> Self {
        // SAFETY: a pure function of the compiled layout.
        let c_size = unsafe { isal_strict_state_size() };
        assert_eq!(
            c_size,
            std::mem::size_of::<isal::inflate_state>(),
            "vendor/isa-l and isal-sys disagree on the size of inflate_state: they must be \
             the same ISA-L version"
        );
        let mut state: Box<MaybeUninit<isal::inflate_state>> = Box::new_uninit();
        // SAFETY: isal_inflate_init writes every field the inflater reads before writing it;
        // zeroing first makes the whole struct initialized for Rust's purposes too.
        let mut state = unsafe {
            std::ptr::write_bytes(state.as_mut_ptr(), 0, 1);
            isal_strict_inflate_init(state.as_mut_ptr());
            state.assume_init()
        };
        state.crc_flag = isal::ISAL_GZIP_NO_HDR;
        IsalInflater { state }
    }

    /// Keeps `crc_flag`.
    fn reset(&mut self) {
        // SAFETY: the state was initialized by isal_inflate_init.
        unsafe { isal_strict_inflate_reset(&mut *self.state) };
    }

    fn inflate(&mut self, input: &[u8], output: &mut [u8]) -> Result<Step, InflateError> {
        let in_len = input.len().min(u32::MAX as usize);
        let out_len = output.len().min(u32::MAX as usize);
        let st = &mut *self.state;
        st.next_in = input.as_ptr().cast_mut();
        st.avail_in = in_len as u32;
        st.next_out = output.as_mut_ptr();
        st.avail_out = out_len as u32;
        // SAFETY: next_in/avail_in and next_out/avail_out describe the two live slices; ISA-L
        // reads at most avail_in bytes and writes at most avail_out bytes (what does not fit
        // waits in its own buffer), and it never writes through next_in.
        let ret = unsafe { isal_strict_inflate(st) };
        let (avail_in, avail_out) = (st.avail_in as usize, st.avail_out as usize);
        st.next_in = std::ptr::null_mut();
        st.avail_in = 0;
        st.next_out = std::ptr::null_mut();
        st.avail_out = 0;
        if ret == INCOMPLETE_CODE {
            // Found while reading a block header, before any of that block's output.
            let consumed = in_len.saturating_sub(avail_in);
            return Err(InflateError {
                consumed,
                what: "incomplete Huffman code".to_string(),
                fault: InflateFault::IncompleteCode,
            });
        }
        if ret < 0 {
            let what = match ret {
                isal::ISAL_INVALID_BLOCK => "invalid block".to_string(),
                isal::ISAL_INVALID_SYMBOL => "invalid code".to_string(),
                isal::ISAL_INVALID_LOOKBACK => "invalid distance too far back".to_string(),
                other => format!("ISA-L error {other}"),
            };
            // When its assembly decoder stops on invalid data, ISA-L leaves avail_in and
            // avail_out short by the 8-byte slop of its fast loop (avail_in may even wrap
            // below zero): the position is approximate, and nothing else is used.
            let consumed = in_len.saturating_sub(avail_in);
            return Err(InflateError {
                consumed,
                what,
                fault: InflateFault::Other,
            });
        }
        if avail_in > in_len || avail_out > out_len {
            return Err(InflateError {
                consumed: 0,
                what: format!(
                    "ISA-L reported {avail_in} of {in_len} input bytes and {avail_out} of \
                     {out_len} output bytes left"
                ),
                fault: InflateFault::Other,
            });
        }
        let (consumed, produced) = (in_len - avail_in, out_len - avail_out);
        Ok(Step {
            consumed,
            produced,
            end: self.state.block_state == isal::isal_block_state_ISAL_BLOCK_FINISH,
        })
    }

    fn crc(&self) -> u32 {
        self.state.crc
    }

    /// After the end of the deflate data: the whole bytes that follow it and that ISA-L had
    /// already taken from the input into its bit buffer (at most 8), in input order. The
    /// partial byte holding the end of the deflate data is padding and is dropped.
    fn leftover(&mut self) -> ([u8; 8], usize) {
        let st = &mut *self.state;
        let bits = u32::try_from(st.read_in_length).unwrap_or(0);
        let n = (bits / 8) as usize;
        // Bits above read_in_length may hold input bytes ISA-L loaded but did not count: mask
        // them off (n == 8 means the whole word is valid).
        let word = if n == 0 { 0 } else { st.read_in >> (bits % 8) };
        let word = if n >= 8 {
            word
        } else {
            word & ((1u64 << (8 * n)) - 1)
        };
        st.read_in = 0;
        st.read_in_length = 0;
        (word.to_le_bytes(), n.min(8))
    }
}
