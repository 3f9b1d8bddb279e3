//! What the fuzz targets check. Beyond "no crash, no hang, no leak" (libFuzzer and ASan
//! see those), every run checks invariants that a wrong digest would break:
//!
//! - the same bytes give the same result (digests, or the same error) whether written at
//!   once on one thread or in arbitrary pieces through the worker threads;
//! - a success has the blob digest of the bytes given (by `sha2`, not our hasher), the
//!   format detection gives, and, for a compressed blob, the DiffID of what an independent
//!   decoder makes of the same bytes: liblzma's own `.xz` stream decoder (not our container
//!   parser), flate2's gzip framing, the zstd and bzip2 crates' multi-frame readers;
//! - an error is never `Internal` or `Misuse`, and names the detected format.
//!
//! The decoded size is capped (`max_size`) so that a small input cannot make one run
//! decode gigabytes; xz dictionaries are capped at 64 MiB for the same reason.

use std::io::Read;

use diffid::{Digester, ErrorKind, Format, Options, Report, detect, digest_bytes};
use sha2::{Digest as _, Sha256};

/// Decoded bytes one run may produce.
const LIMIT: u64 = 8 << 20;

fn magic(format: Format) -> &'static [u8] {
    match format {
        Format::Gzip => &[0x1f, 0x8b, 0x08],
        Format::Bzip2 => b"BZh",
        Format::Xz => &[0xfd, b'7', b'z', b'X', b'Z', 0x00],
        Format::Zstd => &[0x28, 0xb5, 0x2f, 0xfd],
        Format::None => b"",
    }
}

fn sha256(data: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(data);
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// A small deterministic generator for piece sizes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Writes `data` in pieces whose sizes come from `seed` (1 byte up to 200 KiB, mostly small).
fn in_pieces(data: &[u8], opts: &Options, seed: u64) -> diffid::Result<Report> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut d = Digester::new(opts)?;
    let mut rest = data;
    while !rest.is_empty() {
        let r = rng.next();
        let n = match r % 4 {
            0 => 1,
            1 => 1 + (r >> 8) as usize % 64,
            2 => 1 + (r >> 8) as usize % 4096,
            _ => 1 + (r >> 8) as usize % (200 << 10),
        }
        .min(rest.len());
        d.write(&rest[..n])?;
        rest = &rest[n..];
    }
    d.finish()
}

/// Decodes `blob` with an independent decoder, up to `LIMIT + 1` bytes.
fn reference(format: Format, blob: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let reader: Box<dyn Read + '_> = match format {
        Format::None => return Ok(blob.to_vec()),
        Format::Gzip => Box::new(flate2::read::MultiGzDecoder::new(blob)),
        Format::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(blob)),
        Format::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(blob)),
        Format::Zstd => {
            let mut d = zstd::stream::read::Decoder::new(blob)?;
            d.window_log_max(29)?;
            Box::new(d)
        }
    };
    reader.take(LIMIT + 1).read_to_end(&mut out)?;
    Ok(out)
}

/// Checks one result against the bytes it came from.
fn check(blob: &[u8], result: &diffid::Result<Report>, expect_format: Format) {
    let detected = detect(blob);
    match result {
        Ok(r) => {
            assert_eq!(r.format, detected);
            assert_eq!(r.blob_size, blob.len() as u64);
            assert_eq!(r.blob_digest.to_string(), sha256(blob), "blob digest");
            assert!(r.diff_size <= LIMIT);
            assert!(r.tar.entries <= r.diff_size / 512 + 1, "{:?}", r.tar);
            if detected == Format::None {
                assert_eq!(r.diff_id, r.blob_digest);
                assert_eq!(r.diff_size, r.blob_size);
            } else {
                let decoded = reference(detected, blob).unwrap_or_else(|e| {
                    panic!(
                        "we decode {} bytes, the reference decoder fails: {e}",
                        r.diff_size
                    )
                });
                assert_eq!(r.diff_size, decoded.len() as u64, "decoded size");
                assert_eq!(r.diff_id.to_string(), sha256(&decoded), "DiffID");
            }
        }
        Err(e) => {
            assert!(
                !matches!(e.kind(), ErrorKind::Internal | ErrorKind::Misuse),
                "{e}"
            );
            assert_ne!(detected, Format::None, "an uncompressed blob failed: {e}");
            assert_eq!(e.format(), Some(detected), "{e}");
            assert_eq!(detected, expect_format);
            assert!(!e.to_string().is_empty());
        }
    }
}

fn options(threads: usize) -> Options {
    Options {
        threads,
        max_size: Some(LIMIT),
        decoder_memory_limit: 64 << 20,
        ..Options::default()
    }
}

/// The target of one format: `data` = 2 control bytes + payload; the payload gets the
/// format's magic unless it has it already (so seeds can be real blobs).
pub fn digest(format: Format, data: &[u8]) {
    let [c0, c1, payload @ ..] = data else {
        return;
    };
    // Enough worker tokens for the forced gzip parallel path (4 decode workers and the blob
    // hash) on any machine; the budget is fixed by the first computation of the process.
    if format == Format::Gzip {
        static BUDGET: std::sync::Once = std::sync::Once::new();
        BUDGET.call_once(|| diffid::set_workers(8).expect("the first computation sets the budget"));
    }
    let m = magic(format);
    let mut blob = if payload.starts_with(m) {
        payload.to_vec()
    } else {
        [m, payload].concat()
    };
    // Sometimes repeat the blob past the 512 KiB chunk size, so that the worker threads
    // run (concatenated members, streams and frames are valid in every format).
    if c1 & 0x3f == 0x3f && !blob.is_empty() {
        let times = (600 << 10) / blob.len() + 1;
        blob = blob.repeat(times.min(4096));
    }
    let whole = digest_bytes(&blob, &options(1));
    let pieces = in_pieces(&blob, &options(2), u64::from(*c0) << 8 | u64::from(*c1));
    match (&whole, &pieces) {
        // The same error: kind, format and offset. Only a corrupt zstd frame may be worded
        // differently: libzstd names the first check that fails, and that depends on
        // whether it decodes the frame whole (the parallel path) or streams it.
        (Err(a), Err(b)) if a.kind() == ErrorKind::Corrupt && a.format() == Some(Format::Zstd) => {
            assert_eq!(
                (a.kind(), a.format(), a.offset()),
                (b.kind(), b.format(), b.offset()),
                "one thread, whole vs worker threads, in pieces: {a} / {b}"
            );
        }
        _ => assert_eq!(
            whole, pieces,
            "one thread, whole vs worker threads, in pieces"
        ),
    }
    check(&blob, &whole, format);
    if detect(&blob) == Format::Gzip {
        gzip_parallel(&blob, &whole, c0 & 1 == 1);
    }
}

/// The gzip parallel path, forced with 2 (or 4) decode workers: it must give the same report
/// or the same error (kind, format, offset, message) as the sequential path, whether it
/// decodes the blob itself or gives it back. Decoded there: the blobs whose first 128 KiB
/// diffid's own decoder accepts (rapidgzip-core's workers split members of more than 1 MiB).
fn gzip_parallel(blob: &[u8], whole: &diffid::Result<Report>, wide: bool) {
    let workers = if wide { 4 } else { 2 };
    let opts = Options {
        threads: workers + 1,
        gzip_parallel_workers: workers,
        ..options(1)
    };
    let forced = digest_bytes(blob, &opts);
    assert_ne!(
        diffid::last_gzip_parallel(),
        diffid::GzipParallel::NotTried,
        "the forced gzip parallel path was not tried (worker budget {})",
        diffid::workers()
    );
    assert_eq!(
        whole, &forced,
        "sequential vs gzip parallel, {workers} workers"
    );
}

/// The tar target: `data` is an uncompressed blob (inputs that look compressed are left to
/// the other targets).
///
/// The first byte picks the mode: when its low bit is set, every non-zero 512-byte block of
/// the rest gets a correct header checksum, so that mutated headers still pass Go's checksum
/// check and the fuzzer reaches what follows it (PAX records, GNU long names, sparse maps,
/// numeric fields); otherwise the rest is taken as it is.
pub fn tar(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let mut owned = rest.to_vec();
    if mode & 1 == 1 {
        fix_checksums(&mut owned);
    }
    let data = &owned[..];
    if detect(data) != Format::None {
        return;
    }
    let whole = digest_bytes(data, &options(1)).expect("an uncompressed blob never fails");
    let seed = data.len() as u64 ^ data.first().map_or(0, |&b| u64::from(b) << 32);
    let pieces = in_pieces(data, &options(2), seed);
    assert_eq!(Ok(&whole), pieces.as_ref());
    check(data, &Ok(whole.clone()), Format::None);
    assert_eq!(whole.tar.valid, whole.tar.error.is_none());
    let strict = Options {
        require_tar: true,
        ..options(1)
    };
    match digest_bytes(data, &strict) {
        Ok(r) => assert!(r.tar.valid && r == whole),
        Err(e) => {
            assert!(!whole.tar.valid);
            assert_eq!(e.kind(), ErrorKind::InvalidTar);
        }
    }
}

/// Writes the right checksum (octal, NUL, space, as tar does) into every block that is not
/// all zeros.
pub fn fix_checksums(data: &mut [u8]) {
    for block in data.chunks_exact_mut(512) {
        if block.iter().all(|&b| b == 0) {
            continue;
        }
        block[148..156].copy_from_slice(b"        ");
        let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }
}

/// The C code of an error kind (the numbers are the same by construction).
fn code_of(kind: ErrorKind) -> diffid::ffi::diffid_code {
    use diffid::ffi::diffid_code::*;
    match kind {
        ErrorKind::InvalidArgument => DIFFID_INVALID_ARGUMENT,
        ErrorKind::Io => DIFFID_IO,
        ErrorKind::Corrupt => DIFFID_CORRUPT,
        ErrorKind::Truncated => DIFFID_TRUNCATED,
        ErrorKind::TrailingData => DIFFID_TRAILING_DATA,
        ErrorKind::Unsupported => DIFFID_UNSUPPORTED,
        ErrorKind::LimitExceeded => DIFFID_LIMIT_EXCEEDED,
        ErrorKind::Cancelled => DIFFID_CANCELLED,
        ErrorKind::InvalidTar => DIFFID_INVALID_TAR,
        ErrorKind::Misuse => DIFFID_MISUSE,
        ErrorKind::Internal => DIFFID_INTERNAL,
        ErrorKind::DigestMismatch => DIFFID_DIGEST_MISMATCH,
    }
}

/// The C ABI target: options from the first bytes, then records `[op, len_lo, len_hi]`
/// (plus `len` data bytes for writes) driving `diffid_stream_*`.
pub fn ffi_stream(data: &[u8]) {
    use diffid::ffi::*;
    use std::ffi::CStr;

    let [threads, max, ops @ ..] = data else {
        return;
    };
    // SAFETY: every pointer passed is NULL, a live local, or a handle this function made and
    // uses only while it is live (the stream is freed after its last use, the result after
    // its last read), each freed once; data pointers come with their slices' lengths.
    unsafe {
        let mut opts = std::ptr::null_mut();
        assert_eq!(diffid_options_new(&mut opts), diffid_code::DIFFID_OK);
        let threads = u32::from(threads % 4);
        assert_eq!(
            diffid_options_set_threads(opts, threads),
            diffid_code::DIFFID_OK
        );
        let max_size = match max {
            0 => None,
            m => Some(u64::from(*m) << 12),
        };
        assert_eq!(
            diffid_options_set_max_size(opts, max_size.unwrap_or(0)),
            diffid_code::DIFFID_OK
        );
        assert_eq!(
            diffid_options_set_memory_limit(opts, 64 << 20),
            diffid_code::DIFFID_OK
        );
        let rust_opts = Options {
            threads: threads as usize,
            max_size,
            decoder_memory_limit: 64 << 20,
            ..Options::default()
        };

        let mut s = std::ptr::null_mut();
        assert_eq!(diffid_stream_new(opts, &mut s), diffid_code::DIFFID_OK);
        assert!(!s.is_null());
        // The stream copied the options.
        diffid_options_free(opts);

        let mut written = Vec::new();
        // Once cancelled: the codes a call may return (an error found before the cancel wins).
        let mut cancelled: Option<Vec<diffid_code>> = None;
        let mut finished: Option<*mut diffid_result> = None;
        let mut rest = ops;
        while let [op, lo, hi, tail @ ..] = rest {
            let len = usize::from(u16::from_le_bytes([*lo, *hi]));
            rest = tail;
            match op % 8 {
                0..=3 => {
                    let n = len.min(rest.len());
                    let (piece, tail) = rest.split_at(n);
                    rest = tail;
                    let code = diffid_stream_write(s, piece.as_ptr(), piece.len());
                    if finished.is_some() {
                        assert_eq!(code, diffid_code::DIFFID_MISUSE);
                    } else {
                        written.extend_from_slice(piece);
                        if let Some(allowed) = &cancelled {
                            assert!(allowed.contains(&code), "{code:?} after a cancel");
                        }
                    }
                }
                4 => {
                    // A short piece repeated: enough bytes for the worker threads to start.
                    let n = (len % 64).min(rest.len()).max(1).min(rest.len());
                    let (piece, tail) = rest.split_at(n);
                    rest = tail;
                    let times = 1 + usize::from(*hi);
                    let big = piece.repeat(times * 64);
                    let code = diffid_stream_write(s, big.as_ptr(), big.len());
                    if finished.is_some() {
                        assert_eq!(code, diffid_code::DIFFID_MISUSE);
                    } else {
                        written.extend_from_slice(&big);
                    }
                }
                5 => {
                    // NULL data: fine for len 0, an invalid argument otherwise, and the stream
                    // is left as it was.
                    let code = diffid_stream_write(s, std::ptr::null(), len);
                    if len > 0 {
                        assert_eq!(code, diffid_code::DIFFID_INVALID_ARGUMENT);
                    } else if finished.is_some() {
                        assert_eq!(code, diffid_code::DIFFID_MISUSE);
                    }
                }
                6 if *lo == 0xca => {
                    // Cancel, now or from another thread.
                    let addr = s as usize;
                    let code = if *hi & 1 == 1 {
                        std::thread::spawn(move || {
                            diffid_stream_cancel(addr as *const diffid_stream)
                        })
                        .join()
                        .unwrap()
                    } else {
                        diffid_stream_cancel(s)
                    };
                    assert_eq!(code, diffid_code::DIFFID_OK);
                    if finished.is_none() && cancelled.is_none() {
                        let mut allowed = vec![diffid_code::DIFFID_CANCELLED];
                        if let Err(e) = digest_bytes(&written, &rust_opts) {
                            if e.kind() != ErrorKind::Truncated {
                                allowed.push(code_of(e.kind()));
                            }
                        }
                        cancelled = Some(allowed);
                    }
                }
                7 if *lo == 0xf1 => {
                    let mut r = std::ptr::null_mut();
                    let code = diffid_stream_finish(s, &mut r);
                    assert!(!r.is_null());
                    assert_eq!(diffid_result_code(r), code);
                    match finished {
                        Some(_) => {
                            assert_eq!(code, diffid_code::DIFFID_MISUSE);
                            diffid_result_free(r);
                        }
                        None => finished = Some(r),
                    }
                }
                _ => {}
            }
        }
        let r = match finished {
            Some(r) => r,
            None => {
                let mut r = std::ptr::null_mut();
                diffid_stream_finish(s, &mut r);
                r
            }
        };
        diffid_stream_free(s);

        let code = diffid_result_code(r);
        if let Some(allowed) = &cancelled {
            assert!(allowed.contains(&code), "{code:?} after a cancel");
        } else {
            // Exactly what the Rust API gives for the bytes written.
            let expected = digest_bytes(&written, &rust_opts);
            match &expected {
                Ok(rep) => {
                    assert_eq!(code, diffid_code::DIFFID_OK, "{rep:?}");
                    // SAFETY: a successful result holds NUL-terminated digests that live until
                    // the result is freed.
                    let diff = CStr::from_ptr(diffid_result_diff_id(r));
                    let blob = CStr::from_ptr(diffid_result_blob_digest(r));
                    assert_eq!(diff.to_str().unwrap(), rep.diff_id.to_string());
                    assert_eq!(blob.to_str().unwrap(), rep.blob_digest.to_string());
                    assert_eq!(diffid_result_diff_size(r), rep.diff_size);
                    assert_eq!(diffid_result_blob_size(r), rep.blob_size);
                    assert_eq!(diffid_result_tar_valid(r), rep.tar.valid);
                    assert_eq!(diffid_result_tar_entries(r), rep.tar.entries);
                }
                Err(e) => {
                    assert_eq!(code, code_of(e.kind()), "{e}");
                    assert!(!diffid_result_error(r).is_null());
                }
            }
        }
        if code != diffid_code::DIFFID_OK {
            assert!(!diffid_result_error(r).is_null());
        }
        diffid_result_free(r);
        // Freeing NULL is a no-op.
        diffid_result_free(std::ptr::null_mut());
        diffid_stream_free(std::ptr::null_mut());
    }
}

/// `diffid::image::verify_path` on `data` written to a file as an image archive. Every
/// report must be self-consistent: an image is verified exactly when nothing failed.
pub fn image_archive(data: &[u8]) {
    use diffid::image::{ImageOptions, verify_path};
    use std::cell::RefCell;
    thread_local! {
        static FILE: RefCell<Option<tempfile_path::Path>> = const { RefCell::new(None) };
    }
    FILE.with(|slot| {
        let mut slot = slot.borrow_mut();
        let path = slot.get_or_insert_with(tempfile_path::Path::new);
        std::fs::write(&path.0, data).expect("write the archive");
        let opts = ImageOptions {
            digest: diffid::Options {
                threads: 1,
                max_size: Some(1 << 24),
                decoder_memory_limit: 64 << 20,
                ..diffid::Options::default()
            },
            max_json: 1 << 16,
            ..ImageOptions::default()
        };
        if let Ok(reports) = verify_path(&path.0, &opts) {
            for r in reports {
                assert_eq!(r.verified(), r.all_problems().next().is_none());
                for l in &r.layers {
                    if l.verified() && l.diff_id.is_none() {
                        // A layer without digests can only be one nothing could be checked for.
                        assert!(l.size.is_none() || l.blob_digest.is_none());
                    }
                }
            }
        }
    });
}

/// A scratch file of this process, removed at exit of the thread.
mod tempfile_path {
    pub struct Path(pub std::path::PathBuf);
    impl Path {
        pub fn new() -> Self {
            Path(std::env::temp_dir().join(format!("diffid-fuzz-image-{}.tar", std::process::id())))
        }
    }
    impl Drop for Path {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}
