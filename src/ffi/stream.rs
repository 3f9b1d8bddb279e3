//! `diffid_stream`: a digest computation fed piece by piece.

use std::sync::Mutex;

use super::codes::{code_of, diffid_code};
use super::guard::{bytes, deliver, guard, invalid};
use super::options::{diffid_options, options};
use super::result::diffid_result;
use crate::{CancelHandle, Digester, Error, ErrorKind};

/// A digest computation fed piece by piece: `diffid_stream_new`, any number of
/// `diffid_stream_write`, one `diffid_stream_finish`, then `diffid_stream_free`. Blobs of
/// 512 KiB or more are decoded and hashed on worker threads while the caller writes.
///
/// Thread-safety: `diffid_stream_cancel` may be called from any thread at any time, also
/// while another thread is inside `diffid_stream_write` or `diffid_stream_finish`. Writes
/// and finish are serialized by a lock inside the stream, so calls from several threads are
/// safe but their order is whatever the threads make it; use one thread (or your own
/// ordering) for them. `diffid_stream_free` must not run concurrently with any other call
/// on the same stream. Different streams are independent.
pub struct diffid_stream {
    digester: Mutex<Digester>,
    /// Outside the lock, so that cancelling never waits for a write.
    cancel: CancelHandle,
}

// The contract above relies on this.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<diffid_stream>();
};

/// Starts a stream with the options `opts` (NULL for the defaults, copied) and stores it in
/// `*out`; free it with `diffid_stream_free`. No thread starts before the first 512 KiB
/// have been written. Returns `DIFFID_INVALID_ARGUMENT` when `out` is NULL; on failure
/// `*out` is set to NULL.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_stream_new(
    opts: *const diffid_options,
    out: *mut *mut diffid_stream,
) -> diffid_code {
    guard(|| {
        if out.is_null() {
            return diffid_code::DIFFID_INVALID_ARGUMENT;
        }
        let (stream, code) = match Digester::new(&options(opts)) {
            Ok(digester) => {
                let stream = Box::new(diffid_stream {
                    cancel: digester.cancel_handle(),
                    digester: Mutex::new(digester),
                });
                (Box::into_raw(stream), diffid_code::DIFFID_OK)
            }
            Err(e) => (std::ptr::null_mut(), code_of(e.kind())),
        };
        // SAFETY: `out` is non-NULL and points to storage for one pointer (the contract).
        unsafe { out.write(stream) };
        code
    })
}

/// Runs `f` on the stream's digester under its lock.
fn with_digester<T>(
    s: *const diffid_stream,
    f: impl FnOnce(&mut Digester) -> crate::Result<T>,
) -> crate::Result<T> {
    // SAFETY: a non-NULL `s` came from `diffid_stream_new` and is not being freed (the
    // contract); only shared references to the stream are ever made.
    let s = unsafe { s.as_ref() }.ok_or_else(|| invalid("stream"))?;
    // A poisoned lock means a panic inside a previous call: the digester's state is unknown.
    let mut digester = s.digester.lock().map_err(|_| {
        Error::new(
            ErrorKind::Internal,
            "the stream is unusable after a panic inside diffid",
        )
    })?;
    f(&mut digester)
}

/// Feeds the next `len` bytes at `data` to the stream. The bytes are copied before the call
/// returns; `data` may be NULL when `len` is 0. Blocks while the worker threads are behind
/// (memory stays bounded).
///
/// Returns `DIFFID_OK`, or the first error of the computation (`DIFFID_CORRUPT`,
/// `DIFFID_CANCELLED`, ...), after which every further write fails the same way: call
/// `diffid_stream_finish` for a result holding the message. Writing after
/// `diffid_stream_finish` gives `DIFFID_MISUSE`.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_stream_write(
    s: *mut diffid_stream,
    data: *const u8,
    len: usize,
) -> diffid_code {
    guard(|| {
        let result = with_digester(s, |d| {
            let data = bytes(data, len).ok_or_else(|| invalid("data"))?;
            d.write(data)
        });
        match result {
            Ok(()) => diffid_code::DIFFID_OK,
            Err(e) => code_of(e.kind()),
        }
    })
}

/// Ends the blob: waits for the worker threads, stores a new result in `*out` (digests, or
/// the first error of the computation with its message) and returns its code; free the
/// result with `diffid_result_free`, the stream with `diffid_stream_free`. Returns
/// `DIFFID_INVALID_ARGUMENT` without a result when `out` is NULL (the stream is left as it
/// was), and a result holding `DIFFID_MISUSE` when the stream has already finished.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_stream_finish(
    s: *mut diffid_stream,
    out: *mut *mut diffid_result,
) -> diffid_code {
    guard(|| deliver(out, || with_digester(s, Digester::finish)))
}

/// Cancels the stream from any thread, at any time, also while another thread is inside
/// `diffid_stream_write` or `diffid_stream_finish`: the worker threads stop, a write in
/// progress returns `DIFFID_CANCELLED` at its next 512 KiB chunk (or, if none is left,
/// completes), and every later write and finish gives `DIFFID_CANCELLED`. It does not wait
/// for the write (the stream's lock is not taken). Cancelling twice, or after finish, does
/// nothing. Returns `DIFFID_INVALID_ARGUMENT` when `s` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_stream_cancel(s: *const diffid_stream) -> diffid_code {
    guard(|| {
        // SAFETY: a non-NULL `s` came from `diffid_stream_new` and is not being freed (the
        // contract).
        match unsafe { s.as_ref() } {
            Some(s) => {
                s.cancel.cancel();
                diffid_code::DIFFID_OK
            }
            None => diffid_code::DIFFID_INVALID_ARGUMENT,
        }
    })
}

/// Frees a stream, finished or not; an unfinished stream is cancelled and its worker
/// threads are joined before this returns. NULL is a no-op. Must not run concurrently with
/// any other call on the same stream.
#[unsafe(no_mangle)]
pub extern "C" fn diffid_stream_free(s: *mut diffid_stream) {
    guard(|| {
        if !s.is_null() {
            // SAFETY: `s` came from `diffid_stream_new`, is freed once, and no other call
            // on it is running (the contract).
            drop(unsafe { Box::from_raw(s) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::diffid_result_free;

    #[test]
    fn a_stream_poisoned_by_a_panic_reports_internal() {
        let mut s = std::ptr::null_mut();
        assert_eq!(
            diffid_stream_new(std::ptr::null(), &mut s),
            diffid_code::DIFFID_OK
        );
        let stream = unsafe { &*s };
        let poisoner = std::thread::spawn(move || {
            let _held = stream.digester.lock().unwrap();
            panic!("a test panic while holding the lock");
        });
        assert!(poisoner.join().is_err());
        assert_eq!(
            diffid_stream_write(s, b"x".as_ptr(), 1),
            diffid_code::DIFFID_INTERNAL
        );
        let mut r = std::ptr::null_mut();
        assert_eq!(
            diffid_stream_finish(s, &mut r),
            diffid_code::DIFFID_INTERNAL
        );
        assert_eq!(diffid_stream_cancel(s), diffid_code::DIFFID_OK);
        diffid_result_free(r);
        diffid_stream_free(s);
    }
}
