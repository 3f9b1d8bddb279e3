//! libbzip2 (libbz2-rs-sys, the decoder behind the `bzip2` crate) called directly, as the
//! crate's `Decompress` calls it, so that the notes of diffid's patched copy can be read
//! (third_party/libbz2-rs-sys/PATCH.md): where the stream's blocks start, and whether it
//! holds anything containers/image's Go decoder reads otherwise (see `gocheck.rs`).

use std::ffi::c_uint;

use bzip2::{Error as BzError, Status};
use libbz2_rs_sys as ffi;

pub(super) use ffi::GoNotes;

/// A libbzip2 decompressor for one stream (`small` off), with its notes.
pub(super) struct Decompress {
    raw: Box<ffi::bz_stream>,
}

// SAFETY: the stream owns its state (allocated by the Rust allocator) and holds pointers into
// the caller's buffers only during `decompress`; nothing is shared between threads.
unsafe impl Send for Decompress {}

impl Decompress {
    pub(super) fn new() -> Decompress {
        // SAFETY: an all-zero bz_stream (null allocator functions: the default allocator) is
        // what BZ2_bzDecompressInit takes; the Box keeps its address fixed.
        let mut raw: Box<ffi::bz_stream> = Box::new(unsafe { std::mem::zeroed() });
        // SAFETY: `raw` is a valid, zeroed bz_stream.
        let rc = unsafe { ffi::BZ2_bzDecompressInit(&mut *raw, 0, 0) };
        assert_eq!(rc, ffi::BZ_OK, "libbzip2 could not start a decompressor");
        Decompress { raw }
    }

    /// Decodes from `input` into `output`, as `bzip2::Decompress::decompress`.
    pub(super) fn decompress(
        &mut self,
        input: &[u8],
        output: &mut [u8],
    ) -> Result<Status, BzError> {
        // SAFETY: `output` is writable for its length.
        unsafe { self.call(input, output.as_mut_ptr(), output.len()) }
    }

    /// Decodes into the spare capacity of `output`, as `bzip2::Decompress::decompress_vec`.
    pub(super) fn decompress_vec(
        &mut self,
        input: &[u8],
        output: &mut Vec<u8>,
    ) -> Result<Status, BzError> {
        let (len, before) = (output.len(), self.total_out());
        let spare = output.spare_capacity_mut();
        // SAFETY: the spare capacity is writable for its length.
        let status = unsafe { self.call(input, spare.as_mut_ptr().cast(), spare.len()) };
        // SAFETY: libbzip2 wrote `total_out - before` bytes of the spare capacity.
        unsafe { output.set_len(len + (self.total_out() - before) as usize) };
        status
    }

    /// # Safety
    ///
    /// `out` is writable for `len` bytes.
    unsafe fn call(&mut self, input: &[u8], out: *mut u8, len: usize) -> Result<Status, BzError> {
        self.raw.next_in = input.as_ptr() as *mut _;
        self.raw.avail_in = input.len().min(c_uint::MAX as usize) as c_uint;
        self.raw.next_out = out.cast();
        self.raw.avail_out = len.min(c_uint::MAX as usize) as c_uint;
        // SAFETY: the stream was initialized; `next_in` is readable for `avail_in` bytes and
        // `next_out` writable for `avail_out` bytes for the duration of the call.
        let rc = unsafe { ffi::BZ2_bzDecompress(&mut *self.raw) };
        self.raw.next_in = std::ptr::null_mut();
        self.raw.avail_in = 0;
        self.raw.next_out = std::ptr::null_mut();
        self.raw.avail_out = 0;
        match rc {
            ffi::BZ_OK => Ok(Status::Ok),
            ffi::BZ_MEM_ERROR => Ok(Status::MemNeeded),
            ffi::BZ_STREAM_END => Ok(Status::StreamEnd),
            ffi::BZ_PARAM_ERROR => Err(BzError::Param),
            ffi::BZ_DATA_ERROR => Err(BzError::Data),
            ffi::BZ_DATA_ERROR_MAGIC => Err(BzError::DataMagic),
            ffi::BZ_SEQUENCE_ERROR => Err(BzError::Sequence),
            c => panic!("libbzip2 returned {c}"),
        }
    }

    pub(super) fn total_in(&self) -> u64 {
        u64::from(self.raw.total_in_hi32) << 32 | u64::from(self.raw.total_in_lo32)
    }

    pub(super) fn total_out(&self) -> u64 {
        u64::from(self.raw.total_out_hi32) << 32 | u64::from(self.raw.total_out_lo32)
    }

    /// What the patched decoder noted of the stream so far.
    pub(super) fn notes(&self) -> GoNotes {
        // SAFETY: the stream was initialized and is not ended.
        unsafe { ffi::BZ2_bzDecompressGoNotes(&*self.raw) }
            .expect("the notes of a stream this decompressor started")
    }
}

impl Drop for Decompress {
    fn drop(&mut self) {
        // SAFETY: the stream was initialized and is ended once.
        unsafe { ffi::BZ2_bzDecompressEnd(&mut *self.raw) };
    }
}
