//! `diffid_options`: the settings of a digest computation.

use super::codes::{diffid_algorithm_value, diffid_code};
use super::guard::guard;
use std::ffi::{CStr, c_char};

use crate::{Algorithm, DEFAULT_DECODER_MEMORY_LIMIT, Digest, Options};

/// Options of a digest computation: an opaque, growable set of settings made with
/// `diffid_options_new`, changed with the `diffid_options_set_*` functions and freed with
/// `diffid_options_free`. Every function that takes options accepts NULL for the defaults,
/// which compute exactly what Podman (containers/image) computes, with every safety limit
/// on. A function that takes options copies them: the options may be changed or freed as
/// soon as it returns.
///
/// Thread-safety: not safe to change from several threads at once, nor while another thread
/// reads them; reading the same options from several threads concurrently (passing them to
/// `diffid_digest_*` or `diffid_stream_new`) is safe.
pub struct diffid_options {
    opts: Options,
}

/// Makes options holding the defaults and stores them in `*out`; free them with
/// `diffid_options_free`. Returns `DIFFID_INVALID_ARGUMENT` when `out` is NULL.
///
/// # Safety
///
/// `out` is NULL or valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_options_new(out: *mut *mut diffid_options) -> diffid_code {
    guard(|| {
        if out.is_null() {
            return diffid_code::DIFFID_INVALID_ARGUMENT;
        }
        let opts = Box::new(diffid_options {
            opts: Options::default(),
        });
        // SAFETY: `out` is non-NULL and points to storage for one pointer (the contract).
        unsafe { out.write(Box::into_raw(opts)) };
        diffid_code::DIFFID_OK
    })
}

/// Frees options made by `diffid_options_new`. NULL is a no-op. Handles made with the
/// options are not affected.
///
/// # Safety
///
/// `opts` is NULL or options from `diffid_options_new` not freed yet; no other call uses them
/// during or after this one (freeing twice is not detected).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_options_free(opts: *mut diffid_options) {
    guard(|| {
        if !opts.is_null() {
            // SAFETY: `opts` came from `diffid_options_new` and is freed once (the contract).
            drop(unsafe { Box::from_raw(opts) });
        }
    })
}

/// Applies `set` to the options behind `o`; `DIFFID_INVALID_ARGUMENT` when `o` is NULL.
///
/// # Safety
///
/// `o` is NULL or options from `diffid_options_new`, not freed, that nothing else uses
/// during the call.
unsafe fn set_option(
    o: *mut diffid_options,
    set: impl FnOnce(&mut Options) -> bool,
) -> diffid_code {
    guard(|| {
        // SAFETY: a non-NULL `o` is live and ours alone for the call (this function's
        // contract).
        match unsafe { o.as_mut() }.map(|o| set(&mut o.opts)) {
            Some(true) => diffid_code::DIFFID_OK,
            _ => diffid_code::DIFFID_INVALID_ARGUMENT,
        }
    })
}

/// Sets the digest algorithm of both digests: `DIFFID_ALGORITHM_SHA256` (the default),
/// `DIFFID_ALGORITHM_SHA512` or `DIFFID_ALGORITHM_BLAKE3`. Returns
/// `DIFFID_INVALID_ARGUMENT`, changing nothing, for any other value or a NULL `o`.
///
/// # Safety
///
/// `o` is NULL or options from `diffid_options_new` that have not been freed, and no other
/// thread uses them during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_options_set_algorithm(
    o: *mut diffid_options,
    alg: diffid_algorithm_value,
) -> diffid_code {
    // SAFETY: `o` is as this function's contract requires.
    unsafe {
        set_option(o, |opts| {
            let algorithm = match alg {
                0 => Algorithm::Sha256,
                1 => Algorithm::Sha512,
                2 => Algorithm::Blake3,
                _ => return false,
            };
            opts.algorithm = algorithm;
            true
        })
    }
}

/// Accepts (and ignores) bytes after the last gzip member, as pigz, igzip and moby do, when
/// `on`. Off by default: containers/image rejects them (`DIFFID_TRAILING_DATA`).
///
/// # Safety
///
/// `o` is NULL or options from `diffid_options_new` that have not been freed, and no other
/// thread uses them during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_options_set_lenient_gzip(
    o: *mut diffid_options,
    on: bool,
) -> diffid_code {
    // SAFETY: `o` is as this function's contract requires.
    unsafe {
        set_option(o, |opts| {
            opts.lenient_gzip = on;
            true
        })
    }
}

/// Accepts xz filter chains other than a lone LZMA2 (BCJ, delta, ARM64, ...) and decodes
/// them as the `xz` program does, when `on`. Off by default: containers/image rejects them
/// (`DIFFID_UNSUPPORTED`).
///
/// # Safety
///
/// `o` is NULL or options from `diffid_options_new` that have not been freed, and no other
/// thread uses them during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_options_set_full_xz(
    o: *mut diffid_options,
    on: bool,
) -> diffid_code {
    // SAFETY: `o` is as this function's contract requires.
    unsafe {
        set_option(o, |opts| {
            opts.full_xz = on;
            true
        })
    }
}

/// Fails with `DIFFID_LIMIT_EXCEEDED` once the decoded stream exceeds `max` bytes; 0 (the
/// default) means no limit. Memory use is bounded either way.
///
/// # Safety
///
/// `o` is NULL or options from `diffid_options_new` that have not been freed, and no other
/// thread uses them during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_options_set_max_size(
    o: *mut diffid_options,
    max: u64,
) -> diffid_code {
    // SAFETY: `o` is as this function's contract requires.
    unsafe {
        set_option(o, |opts| {
            opts.max_size = (max > 0).then_some(max);
            true
        })
    }
}

/// Sets the memory a decoder may allocate for its window or dictionary, in bytes; an xz
/// block needing more fails with `DIFFID_LIMIT_EXCEEDED`. 0 means the default, 1 GiB. (zstd
/// windows are limited to 512 MiB regardless, as in containers/image.)
///
/// # Safety
///
/// `o` is NULL or options from `diffid_options_new` that have not been freed, and no other
/// thread uses them during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_options_set_memory_limit(
    o: *mut diffid_options,
    bytes: u64,
) -> diffid_code {
    // SAFETY: `o` is as this function's contract requires.
    unsafe {
        set_option(o, |opts| {
            opts.decoder_memory_limit = if bytes == 0 {
                DEFAULT_DECODER_MEMORY_LIMIT
            } else {
                bytes
            };
            true
        })
    }
}

/// Sets the number of worker threads: 0 (the default) means one per core, 1 runs every
/// stage on the calling thread. Blobs smaller than 512 KiB never start a thread.
///
/// # Safety
///
/// `o` is NULL or options from `diffid_options_new` that have not been freed, and no other
/// thread uses them during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_options_set_threads(o: *mut diffid_options, n: u32) -> diffid_code {
    // SAFETY: `o` is as this function's contract requires.
    unsafe {
        set_option(o, |opts| {
            opts.threads = n as usize;
            true
        })
    }
}

/// When `on`, a decoded stream that is not a valid tar archive is an error
/// (`DIFFID_INVALID_TAR`) instead of a verdict in the result. Off by default.
///
/// # Safety
///
/// `o` is NULL or options from `diffid_options_new` that have not been freed, and no other
/// thread uses them during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_options_set_require_tar(
    o: *mut diffid_options,
    on: bool,
) -> diffid_code {
    // SAFETY: `o` is as this function's contract requires.
    unsafe {
        set_option(o, |opts| {
            opts.require_tar = on;
            true
        })
    }
}

/// The options behind `opts`, or the defaults for NULL.
///
/// # Safety
///
/// `opts` is NULL or options from `diffid_options_new`, not freed, that nobody changes during
/// the call.
pub(super) unsafe fn options(opts: *const diffid_options) -> Options {
    // SAFETY: a non-NULL `opts` is live and unchanged during the call (this function's
    // contract).
    unsafe { opts.as_ref() }.map_or_else(Options::default, |o| o.opts.clone())
}

/// Parses the NUL-terminated `digest` (NULL: none) and stores it with `set`.
///
/// # Safety
///
/// `o` is as for `set_option`; `digest` is NULL or a NUL-terminated string.
unsafe fn set_expected(
    o: *mut diffid_options,
    digest: *const c_char,
    set: impl FnOnce(&mut Options, Option<Digest>),
) -> diffid_code {
    guard(|| {
        let parsed = if digest.is_null() {
            None
        } else {
            // SAFETY: a non-NULL `digest` is a NUL-terminated string (this function's contract).
            let text = unsafe { CStr::from_ptr(digest) };
            match text.to_str().ok().and_then(|t| t.parse::<Digest>().ok()) {
                Some(d) => Some(d),
                None => return diffid_code::DIFFID_INVALID_ARGUMENT,
            }
        };
        // SAFETY: `o` is as this function's contract requires.
        unsafe {
            set_option(o, |opts| {
                set(opts, parsed);
                true
            })
        }
    })
}

/// Sets the blob digest the blob must have, as NUL-terminated `algorithm:hex`
/// (`"sha256:e3b0c4…"`, lowercase hex of the algorithm's length); the string is copied. A
/// blob with another digest then fails with `DIFFID_DIGEST_MISMATCH` and gives no digests.
/// NULL clears it. Returns `DIFFID_INVALID_ARGUMENT`, changing nothing, for a string that is
/// not such a digest or a NULL `o`. Its algorithm must be the options' algorithm when the
/// options are used, or the digest fails with `DIFFID_INVALID_ARGUMENT`.
///
/// # Safety
///
/// `o` is NULL or options from `diffid_options_new` that have not been freed, and no other
/// thread uses them during the call. `digest` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_options_set_expect_blob_digest(
    o: *mut diffid_options,
    digest: *const c_char,
) -> diffid_code {
    // SAFETY: `o` and `digest` are as this function's contract requires.
    unsafe { set_expected(o, digest, |opts, d| opts.expect_blob_digest = d) }
}

/// Sets the DiffID the blob must have (the image config's `rootfs.diff_ids` entry); like
/// `diffid_options_set_expect_blob_digest`.
///
/// # Safety
///
/// `o` is NULL or options from `diffid_options_new` that have not been freed, and no other
/// thread uses them during the call. `digest` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn diffid_options_set_expect_diff_id(
    o: *mut diffid_options,
    digest: *const c_char,
) -> diffid_code {
    // SAFETY: `o` and `digest` are as this function's contract requires.
    unsafe { set_expected(o, digest, |opts, d| opts.expect_diff_id = d) }
}
