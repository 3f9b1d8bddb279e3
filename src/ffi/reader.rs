//! `diffid_reader`: the decoded stream of a layer blob, and its result once it has ended.

use std::ffi::c_int;
use std::sync::Mutex;

use super::codes::{code_of, diffid_code};
use super::digest::FdReader;
use super::guard::{bytes, deliver, guard, invalid};
use super::options::{diffid_options, options};
use super::result::diffid_result;
use crate::{
    CancelHandle, DecodingReader, Error, ErrorKind, PipeWriter, decoding_pipe, decompress_reader,
};

/// A decoding reader: yields the decompressed stream of a layer blob (the tar archive,
/// exactly what `DEC -dc` writes) while the same pass computes the blob digest, the DiffID,
/// both sizes and the tar verdict. Made by `diffid_reader_new_fd` (reads a descriptor on an
/// internal thread) or `diffid_reader_new_pipe` (fed with `diffid_reader_write`); read with
/// `diffid_reader_read` until it gives `*n == 0` or an error; `diffid_reader_finish` for the
/// result; `diffid_reader_free`.
///
/// The contract:
/// - `diffid_reader_read` sets `*n` to 0 only at the end of a fully verified stream: every
///   final check passed (gzip CRC32 and ISIZE, the xz index, checks and footer, the zstd
///   checksum, the bzip2 CRCs, nothing after the data but what the format allows, the
///   maximum size, `require_tar`). A corrupt, truncated or over-limit stream, a failing
///   read(2), a cancel give an error code instead, never `*n == 0`, and every later read
///   gives the same code.
/// - Decoded bytes are handed out as they are decoded, before the checks at the end of a
///   member, block, frame or stream: a caller may have read the whole decoded stream of a
///   blob whose trailer turns out corrupt. Treat what was read as provisional until the
///   read that gives `*n == 0`.
/// - A caller that stops reading stops the pipeline (back-pressure): memory stays within a
///   few MiB of chunks plus the decoder's window, however large the stream.
/// - `diffid_reader_cancel` or `diffid_reader_free` before the end stops every worker
///   thread; `diffid_reader_free` joins them all before it returns.
/// - The result's digests are those `diffid_digest_fd` computes on the same bytes.
///
/// Thread-safety: `diffid_reader_write` and `diffid_reader_close_input` may run on one
/// thread while `diffid_reader_read` (or `diffid_reader_finish`) runs on another;
/// `diffid_reader_cancel` may be called from any thread at any time. Two reads (or two
/// writes) at once are serialized by a lock. `diffid_reader_free` must run once nothing
/// else runs on the reader. Different readers are independent.
pub struct diffid_reader {
    reader: Mutex<DecodingReader>,
    /// Pipe readers only.
    writer: Option<Mutex<PipeWriter>>,
    /// Outside the locks, so that cancelling never waits for a read or a write.
    cancel: CancelHandle,
}

// The contract above relies on this.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<diffid_reader>();
};

/// Stores `made` (or NULL) in `*out` and returns its code.
fn store(
    out: *mut *mut diffid_reader,
    made: crate::Result<(DecodingReader, Option<PipeWriter>)>,
) -> diffid_code {
    let (reader, code) = match made {
        Ok((reader, writer)) => {
            let reader = Box::new(diffid_reader {
                cancel: reader.cancel_handle(),
                reader: Mutex::new(reader),
                writer: writer.map(Mutex::new),
            });
            (Box::into_raw(reader), diffid_code::DIFFID_OK)
        }
        Err(e) => (std::ptr::null_mut(), code_of(e.kind())),
    };
    // SAFETY: `out` is non-NULL (checked by the callers) and points to storage for one
    // pointer (the contract).
    unsafe { out.write(reader) };
    code
}

/// Starts a decoding reader over everything that can be read from `fd` (a file, a pipe, a
/// socket) until end of file, from its current position, with the options `opts` (NULL for
/// the defaults, copied). The descriptor is read with read(2) on an internal thread, which
/// blocks while the decoded output is not being read; it is not closed and stays the
/// caller's, who must keep it open until `diffid_reader_free` returns. Stores the reader in
/// `*out` (NULL on failure) and returns `DIFFID_OK`; a negative `fd` or a NULL `out` give
/// `DIFFID_INVALID_ARGUMENT`. Errors of the stream come out of `diffid_reader_read`.
/// `diffid_reader_free` waits for a read(2) in progress on `fd` to return.
///
/// # Safety
///
/// `opts` is NULL or options from `diffid_options_new`, not freed, that no other thread
/// changes during the call. `out` is NULL or valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_reader_new_fd(
    fd: c_int,
    opts: *const diffid_options,
    out: *mut *mut diffid_reader,
) -> diffid_code {
    guard(|| {
        if out.is_null() {
            return diffid_code::DIFFID_INVALID_ARGUMENT;
        }
        let made = if fd < 0 {
            Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("{fd} is not a file descriptor"),
            ))
        } else {
            // SAFETY: `opts` is as this function's contract requires.
            decompress_reader(FdReader(fd), &unsafe { options(opts) }).map(|r| (r, None))
        };
        store(out, made)
    })
}

/// Starts a decoding reader with no input of its own: feed it the blob with
/// `diffid_reader_write` and end the input with `diffid_reader_close_input`, from another
/// thread than the one that reads (a write blocks while the decoded output is not being
/// read). `opts` may be NULL for the defaults (copied). Stores the reader in `*out` (NULL on
/// failure); a NULL `out` gives `DIFFID_INVALID_ARGUMENT`. No thread starts before the
/// first 512 KiB have been written.
///
/// # Safety
///
/// `opts` is NULL or options from `diffid_options_new`, not freed, that no other thread
/// changes during the call. `out` is NULL or valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_reader_new_pipe(
    opts: *const diffid_options,
    out: *mut *mut diffid_reader,
) -> diffid_code {
    guard(|| {
        if out.is_null() {
            return diffid_code::DIFFID_INVALID_ARGUMENT;
        }
        store(
            out,
            // SAFETY: `opts` is as this function's contract requires.
            decoding_pipe(&unsafe { options(opts) }).map(|(w, r)| (r, Some(w))),
        )
    })
}

/// The reader behind `r`.
fn reader_ref<'a>(r: *const diffid_reader) -> crate::Result<&'a diffid_reader> {
    // SAFETY: a non-NULL `r` came from `diffid_reader_new_*` and is not being freed (the
    // contract); only shared references to it are ever made.
    unsafe { r.as_ref() }.ok_or_else(|| invalid("reader"))
}

fn poisoned<T>(_: T) -> Error {
    Error::new(
        ErrorKind::Internal,
        "the reader is unusable after a panic inside diffid",
    )
}

/// Runs `f` on the pipe writer of `r` under its lock.
fn with_writer(
    r: *const diffid_reader,
    f: impl FnOnce(&mut PipeWriter) -> crate::Result<()>,
) -> diffid_code {
    let result = reader_ref(r).and_then(|r| {
        let writer = r.writer.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Misuse,
                "the reader reads a descriptor: it takes no writes",
            )
        })?;
        f(&mut *writer.lock().map_err(poisoned)?)
    });
    match result {
        Ok(()) => diffid_code::DIFFID_OK,
        Err(e) => code_of(e.kind()),
    }
}

/// Feeds the next `len` bytes at `data` to a pipe reader (`data` may be NULL when `len` is
/// 0). The bytes are copied before the call returns. Blocks while the decoded output is not
/// being read. Returns `DIFFID_OK`, or the stream's first error (`DIFFID_CORRUPT`,
/// `DIFFID_CANCELLED`, ...; the reader reports it too), `DIFFID_MISUSE` on a reader made by
/// `diffid_reader_new_fd` or after `diffid_reader_close_input`, `DIFFID_INVALID_ARGUMENT`
/// when `r` is NULL.
///
/// # Safety
///
/// `r` is NULL or a reader from `diffid_reader_new_*` that has not been freed, and no other
/// thread frees it during the call.
/// `data` is valid for reading `len` bytes during the call (or `len` is 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_reader_write(
    r: *mut diffid_reader,
    data: *const u8,
    len: usize,
) -> diffid_code {
    guard(|| {
        with_writer(r, |w| {
            // SAFETY: `data` is valid for `len` bytes during the call (the contract).
            let data = unsafe { bytes(data, len) }.ok_or_else(|| invalid("data"))?;
            w.write_all(data)
        })
    })
}

/// Ends the input of a pipe reader. Waits until every stage has finished, so it blocks
/// while the decoded output is not being read; returns `DIFFID_OK` when the stream passed
/// every check, or its error (which `diffid_reader_read` reports too). `DIFFID_MISUSE` on a
/// reader made by `diffid_reader_new_fd` or when called twice. A pipe reader freed or
/// cancelled without it fails with `DIFFID_CANCELLED`, never a clean end.
///
/// # Safety
///
/// `r` is NULL or a reader from `diffid_reader_new_*` that has not been freed, and no other
/// thread frees it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_reader_close_input(r: *mut diffid_reader) -> diffid_code {
    guard(|| with_writer(r, PipeWriter::close))
}

/// Reads up to `cap` decoded bytes into `buf` and stores how many in `*n`. Blocks until
/// some are decoded. `*n == 0` with `DIFFID_OK` only at the end of a fully verified stream
/// (see `diffid_reader`); otherwise `*n >= 1`, or an error code (`DIFFID_CORRUPT`,
/// `DIFFID_TRUNCATED`, `DIFFID_TRAILING_DATA`, `DIFFID_LIMIT_EXCEEDED`, `DIFFID_IO`,
/// `DIFFID_CANCELLED`, ...) with `*n == 0`, and every later read gives the same code;
/// `diffid_reader_finish` gives its message. `DIFFID_INVALID_ARGUMENT` when `r`, `buf` or
/// `n` is NULL or `cap` is 0 (then `*n`, if it can be, is set to 0).
///
/// # Safety
///
/// `r` is NULL or a reader from `diffid_reader_new_*` that has not been freed, and no other
/// thread frees it during the call.
/// `buf` is NULL or valid for writing `cap` bytes, and `n` NULL or valid for writing one
/// `size_t`, during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_reader_read(
    r: *mut diffid_reader,
    buf: *mut u8,
    cap: usize,
    n: *mut usize,
) -> diffid_code {
    guard(|| {
        if n.is_null() {
            return diffid_code::DIFFID_INVALID_ARGUMENT;
        }
        // SAFETY: `n` is non-NULL and points to a writable `size_t` (the contract).
        unsafe { n.write(0) };
        if buf.is_null() || cap == 0 {
            return diffid_code::DIFFID_INVALID_ARGUMENT;
        }
        // SAFETY: `buf` is non-NULL and valid for writes of `cap` bytes during the call (the
        // contract).
        let buf = unsafe { std::slice::from_raw_parts_mut(buf, cap) };
        let result =
            reader_ref(r).and_then(|r| r.reader.lock().map_err(poisoned)?.read_decoded(buf));
        match result {
            Ok(got) => {
                // SAFETY: as above.
                unsafe { n.write(got) };
                diffid_code::DIFFID_OK
            }
            Err(e) => code_of(e.kind()),
        }
    })
}

/// The result of the stream, stored in `*out` (free it with `diffid_result_free`); returns
/// its code. Meant after `diffid_reader_read` gave `*n == 0` or an error: called earlier, it
/// reads and discards the rest of the decoded stream first (so for a pipe reader the input
/// must still be written and closed by another thread). May be called again: each call
/// makes a new result with the same outcome. `DIFFID_INVALID_ARGUMENT` without a result when
/// `out` is NULL, with one when `r` is NULL.
///
/// # Safety
///
/// `r` is NULL or a reader from `diffid_reader_new_*` that has not been freed, and no other
/// thread frees it during the call.
/// `out` is NULL or valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_reader_finish(
    r: *mut diffid_reader,
    out: *mut *mut diffid_result,
) -> diffid_code {
    guard(|| {
        // SAFETY: `out` is as this function's contract requires.
        unsafe {
            deliver(out, || {
                reader_ref(r).and_then(|r| r.reader.lock().map_err(poisoned)?.finish())
            })
        }
    })
}

/// Cancels the stream from any thread at any time, without waiting for a read or write in
/// progress: the worker threads stop, a blocked `diffid_reader_read` or
/// `diffid_reader_write` returns `DIFFID_CANCELLED`, and so does every later call (unless the
/// stream had already ended, then it does nothing). NULL is a no-op.
///
/// # Safety
///
/// `r` is NULL or a reader from `diffid_reader_new_*` that has not been freed, and no other
/// thread frees it during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_reader_cancel(r: *mut diffid_reader) {
    guard(|| {
        if let Ok(r) = reader_ref(r) {
            r.cancel.cancel();
        }
    })
}

/// Frees a reader, read to its end or not: an unfinished stream is cancelled, and every
/// thread of it (the descriptor's reading thread, the workers) is joined before this
/// returns. NULL is a no-op. Must not run concurrently with any other call on the reader.
///
/// # Safety
///
/// `r` is NULL or a reader from `diffid_reader_new_*`, freed once, and no other call on it
/// runs during or after this one.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_reader_free(r: *mut diffid_reader) {
    guard(|| {
        if !r.is_null() {
            // SAFETY: `r` came from `diffid_reader_new_*`, is freed once, and no other call
            // on it is running (the contract).
            drop(unsafe { Box::from_raw(r) });
        }
    })
}
