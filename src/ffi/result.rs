//! `diffid_result`: the outcome of a digest computation and its accessors.

use std::ffi::{CString, c_char};

use super::codes::{code_of, diffid_code, diffid_format, format_of};
use super::guard::{OnPanic, c_string, guard};
use crate::{Format, Report, Warning};

/// The outcome of one digest computation: the digests, sizes, format and tar verdict, or
/// the error that replaced them (its code and message). Made by `diffid_digest_file`,
/// `diffid_digest_fd`, `diffid_digest_buffer` and `diffid_stream_finish`; freed with
/// `diffid_result_free`. Every string it returns is NUL-terminated, owned by the result and
/// valid until it is freed.
///
/// Thread-safety: a result never changes; any number of threads may read it at once. Free
/// it once, after every reader is done.
pub struct diffid_result {
    pub(super) code: diffid_code,
    format: Option<Format>,
    format_name: Option<CString>,
    media_type: Option<CString>,
    blob_digest: Option<CString>,
    blob_size: u64,
    diff_id: Option<CString>,
    diff_size: u64,
    tar_valid: bool,
    tar_entries: u64,
    tar_end_marker: bool,
    tar_error: Option<CString>,
    error: Option<CString>,
    error_offset: u64,
    /// (code, message) of each warning.
    warnings: Vec<(&'static std::ffi::CStr, CString)>,
}

impl diffid_result {
    pub(super) fn new(result: crate::Result<Report>) -> Self {
        match result {
            Ok(r) => diffid_result {
                code: diffid_code::DIFFID_OK,
                format: Some(r.format),
                format_name: Some(c_string(r.format.name())),
                media_type: Some(c_string(r.media_type())),
                blob_digest: Some(c_string(&r.blob_digest.to_string())),
                blob_size: r.blob_size,
                diff_id: Some(c_string(&r.diff_id.to_string())),
                diff_size: r.diff_size,
                tar_valid: r.tar.valid,
                tar_entries: r.tar.entries,
                tar_end_marker: r.tar.end_marker,
                tar_error: r.tar.to_error().map(|e| c_string(&e.to_string())),
                error: None,
                error_offset: DIFFID_OFFSET_UNKNOWN,
                warnings: r
                    .warnings
                    .iter()
                    .map(|w| (warning_code(w), c_string(&w.to_string())))
                    .collect(),
            },
            Err(e) => diffid_result {
                code: code_of(e.kind()),
                format: e.format(),
                format_name: e.format().map(|f| c_string(f.name())),
                media_type: None,
                blob_digest: None,
                blob_size: 0,
                diff_id: None,
                diff_size: 0,
                tar_valid: false,
                tar_entries: 0,
                tar_end_marker: false,
                tar_error: None,
                error: Some(c_string(&e.to_string())),
                error_offset: e.offset().unwrap_or(DIFFID_OFFSET_UNKNOWN),
                warnings: Vec::new(),
            },
        }
    }
}

/// `Warning::code()` as static C strings (a test checks they agree).
fn warning_code(w: &Warning) -> &'static std::ffi::CStr {
    match w {
        Warning::EmptyLayer => c"empty_layer",
        Warning::CompressedAfterSkippableFrame { .. } => c"compressed_after_skippable_frame",
        Warning::ExtractorDependentEntry { .. } => c"extractor_dependent_entry",
        Warning::DataAfterEndMarker { .. } => c"data_after_end_marker",
    }
}

/// Reads a field of the result behind `r`, or gives `none` when `r` is NULL.
///
/// # Safety
///
/// `r` is NULL or a result from this library that is not freed during the call.
unsafe fn read<T: OnPanic>(
    r: *const diffid_result,
    none: T,
    f: impl FnOnce(&diffid_result) -> T,
) -> T {
    guard(|| {
        // SAFETY: a non-NULL `r` is a live result (this function's contract).
        unsafe { r.as_ref() }.map_or(none, f)
    })
}

fn c_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

/// The code of the result: `DIFFID_OK`, or the kind of error it holds.
/// `DIFFID_INVALID_ARGUMENT` when `r` is NULL.
///
/// # Safety
///
/// `r` is NULL or a result from this library that has not been freed, and no other thread frees
/// it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_result_code(r: *const diffid_result) -> diffid_code {
    // SAFETY: `r` is as this function's contract requires.
    unsafe { read(r, diffid_code::DIFFID_INVALID_ARGUMENT, |r| r.code) }
}

/// The message of the error the result holds, naming what was wrong and where, e.g.
/// `"gzip: invalid checksum (at compressed byte 1234)"`; NULL on success or when `r` is
/// NULL.
///
/// # Safety
///
/// `r` is NULL or a result from this library that has not been freed, and no other thread frees
/// it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_result_error(r: *const diffid_result) -> *const c_char {
    // SAFETY: `r` is as this function's contract requires.
    unsafe { read(r, std::ptr::null(), |r| c_ptr(&r.error)) }
}

/// What `diffid_result_error_offset` returns when the error concerns no place in the input:
/// `UINT64_MAX`, never a real offset.
pub const DIFFID_OFFSET_UNKNOWN: u64 = u64::MAX;

/// The byte offset in the blob (the compressed input, from 0) of the fault behind the error
/// the result holds: the exact byte when the decoder knows it (a non-zero xz block padding
/// byte, a gzip trailer, the end of a truncated input), else the start of the smallest unit
/// holding it (a zstd block or checksum, a gzip member, ...), which the message names.
/// `DIFFID_OFFSET_UNKNOWN` on success, when the error concerns no place in the input (an
/// option, a cancel, the maximum size, an invalid tar stream), or when `r` is NULL.
///
/// # Safety
///
/// `r` is NULL or a result from this library that has not been freed, and no other thread frees
/// it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_result_error_offset(r: *const diffid_result) -> u64 {
    // SAFETY: `r` is as this function's contract requires.
    unsafe { read(r, DIFFID_OFFSET_UNKNOWN, |r| r.error_offset) }
}

/// The blob digest (over the raw bytes), as `"sha256:<64 hex digits>"` (or `sha512:`,
/// `blake3:`): the layer descriptor's digest. NULL when the result holds an error or `r` is
/// NULL.
///
/// # Safety
///
/// `r` is NULL or a result from this library that has not been freed, and no other thread frees
/// it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_result_blob_digest(r: *const diffid_result) -> *const c_char {
    // SAFETY: `r` is as this function's contract requires.
    unsafe { read(r, std::ptr::null(), |r| c_ptr(&r.blob_digest)) }
}

/// The size of the blob in bytes; 0 when the result holds an error or `r` is NULL.
///
/// # Safety
///
/// `r` is NULL or a result from this library that has not been freed, and no other thread frees
/// it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_result_blob_size(r: *const diffid_result) -> u64 {
    // SAFETY: `r` is as this function's contract requires.
    unsafe { read(r, 0, |r| r.blob_size) }
}

/// The DiffID (the digest of the decompressed stream), as `"sha256:<64 hex digits>"`: the
/// image config's `rootfs.diff_ids` entry. Equal to the blob digest for an uncompressed
/// blob. NULL when the result holds an error or `r` is NULL.
///
/// # Safety
///
/// `r` is NULL or a result from this library that has not been freed, and no other thread frees
/// it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_result_diff_id(r: *const diffid_result) -> *const c_char {
    // SAFETY: `r` is as this function's contract requires.
    unsafe { read(r, std::ptr::null(), |r| c_ptr(&r.diff_id)) }
}

/// The size of the decompressed stream in bytes; 0 when the result holds an error or `r` is
/// NULL.
///
/// # Safety
///
/// `r` is NULL or a result from this library that has not been freed, and no other thread frees
/// it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_result_diff_size(r: *const diffid_result) -> u64 {
    // SAFETY: `r` is as this function's contract requires.
    unsafe { read(r, 0, |r| r.diff_size) }
}

/// The detected compression, on success and on error alike (an error found after the first
/// bytes were read keeps the format: `DIFFID_FORMAT_NONE` for an uncompressed blob).
/// `DIFFID_FORMAT_NONE` also when the format is not known (the input could not be read at
/// all, NULL `r`): `diffid_result_format_name` tells the two apart.
///
/// # Safety
///
/// `r` is NULL or a result from this library that has not been freed, and no other thread frees
/// it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_result_format(r: *const diffid_result) -> diffid_format {
    // SAFETY: `r` is as this function's contract requires.
    unsafe {
        read(r, diffid_format::None, |r| {
            r.format.map_or(diffid_format::None, format_of)
        })
    }
}

/// The name of the detected compression: `"none"`, `"gzip"`, `"bzip2"`, `"xz"` or
/// `"zstd"`, on success and on error alike; NULL only when it is not known (the input could
/// not be read at all, a bad option, NULL `r`).
///
/// # Safety
///
/// `r` is NULL or a result from this library that has not been freed, and no other thread frees
/// it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_result_format_name(r: *const diffid_result) -> *const c_char {
    // SAFETY: `r` is as this function's contract requires.
    unsafe { read(r, std::ptr::null(), |r| c_ptr(&r.format_name)) }
}

/// The layer media type containers/image records for the blob, e.g.
/// `"application/vnd.oci.image.layer.v1.tar+zstd"` (bzip2 and xz, which have no OCI media
/// type, get `+gzip` as there). NULL when the result holds an error or `r` is NULL.
///
/// # Safety
///
/// `r` is NULL or a result from this library that has not been freed, and no other thread frees
/// it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_result_media_type(r: *const diffid_result) -> *const c_char {
    // SAFETY: `r` is as this function's contract requires.
    unsafe { read(r, std::ptr::null(), |r| c_ptr(&r.media_type)) }
}

/// Whether the decompressed stream is a tar archive Go's `archive/tar` reads to its end
/// without error. false when the result holds an error or `r` is NULL.
///
/// # Safety
///
/// `r` is NULL or a result from this library that has not been freed, and no other thread frees
/// it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_result_tar_valid(r: *const diffid_result) -> bool {
    // SAFETY: `r` is as this function's contract requires.
    unsafe { read(r, false, |r| r.tar_valid) }
}

/// The number of tar entries read (up to the first tar error); 0 when the result holds an
/// error or `r` is NULL.
///
/// # Safety
///
/// `r` is NULL or a result from this library that has not been freed, and no other thread frees
/// it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_result_tar_entries(r: *const diffid_result) -> u64 {
    // SAFETY: `r` is as this function's contract requires.
    unsafe { read(r, 0, |r| r.tar_entries) }
}

/// Whether the tar end-of-archive marker (two zero blocks) was seen. false when the result
/// holds an error or `r` is NULL.
///
/// # Safety
///
/// `r` is NULL or a result from this library that has not been freed, and no other thread frees
/// it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_result_tar_end_marker(r: *const diffid_result) -> bool {
    // SAFETY: `r` is as this function's contract requires.
    unsafe { read(r, false, |r| r.tar_end_marker) }
}

/// Why the decompressed stream is not a valid tar archive, with the offset in the decoded
/// stream; NULL when it is valid, when the result holds an error, or when `r` is NULL.
///
/// # Safety
///
/// `r` is NULL or a result from this library that has not been freed, and no other thread frees
/// it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_result_tar_error(r: *const diffid_result) -> *const c_char {
    // SAFETY: `r` is as this function's contract requires.
    unsafe { read(r, std::ptr::null(), |r| c_ptr(&r.tar_error)) }
}

/// The number of warnings of a successful result: what is no error but an importer may want
/// to know (an empty layer, compressed data behind a leading zstd skippable frame, entry types
/// some extractors do not apply, data after the tar end marker). 0 for most layers, for an
/// error result, and when `r` is NULL.
///
/// # Safety
///
/// `r` is NULL or a result from this library that has not been freed, and no other thread frees
/// it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_result_warning_count(r: *const diffid_result) -> usize {
    // SAFETY: `r` is as this function's contract requires.
    unsafe { read(r, 0, |r| r.warnings.len()) }
}

/// The message of warning `i` (from 0, below `diffid_result_warning_count`), e.g. `"empty
/// layer: the tar stream has no entries"`; NULL when `i` is out of range or `r` is NULL.
///
/// # Safety
///
/// `r` is NULL or a result from this library that has not been freed, and no other thread frees
/// it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_result_warning(r: *const diffid_result, i: usize) -> *const c_char {
    // SAFETY: `r` is as this function's contract requires.
    unsafe {
        read(r, std::ptr::null(), |r| {
            r.warnings.get(i).map_or(std::ptr::null(), |w| w.1.as_ptr())
        })
    }
}

/// The stable code of warning `i`: `"empty_layer"`, `"compressed_after_skippable_frame"`,
/// `"extractor_dependent_entry"` or `"data_after_end_marker"` (new codes may come); NULL
/// when `i` is out of range or `r` is NULL. Static: valid for the life of the process.
///
/// # Safety
///
/// `r` is NULL or a result from this library that has not been freed, and no other thread frees
/// it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_result_warning_code(
    r: *const diffid_result,
    i: usize,
) -> *const c_char {
    // SAFETY: `r` is as this function's contract requires.
    unsafe {
        read(r, std::ptr::null(), |r| {
            r.warnings.get(i).map_or(std::ptr::null(), |w| w.0.as_ptr())
        })
    }
}

/// Frees a result and every string it returned. NULL is a no-op.
///
/// # Safety
///
/// `r` is NULL or a result from this library not freed yet; no other call uses it, nor any
/// string it returned, during or after this one (freeing twice is not detected).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_result_free(r: *mut diffid_result) {
    guard(|| {
        if !r.is_null() {
            // SAFETY: `r` came from this library and is freed once (the contract).
            drop(unsafe { Box::from_raw(r) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_codes_are_the_rust_codes() {
        for w in [
            Warning::EmptyLayer,
            Warning::CompressedAfterSkippableFrame { frame_len: 12 },
            Warning::ExtractorDependentEntry {
                offset: 0,
                typeflag: b'S',
            },
            Warning::DataAfterEndMarker { offset: 0 },
        ] {
            assert_eq!(warning_code(&w).to_str().unwrap(), w.code());
        }
    }
}
