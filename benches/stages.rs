//! Each stage alone, on the generated layer (see `common`): hashing, tar parsing, and each
//! decoder.
//!
//! The library exports no stage on its own, so stages are measured two ways:
//! - `hash/*` and `decode-crate/*`: the crates the library builds on (`sha2`, `blake3`,
//!   `flate2` with zlib-rs — the gzip fallback without the `isal` feature —, `zstd`,
//!   `liblzma` on one thread and with its own multi-threaded decoder, `bzip2`), each a plain
//!   streaming decoder read in 512 KiB pieces: what the library's own decoders (ISA-L, blocks
//!   and frames in parallel) are measured against;
//! - `*/api-*`: the public API on inputs that isolate one stage. Hashing: a blob that is not
//!   tar and not compressed, on one thread, so the work is the blob hash (the tar stage gives
//!   up at the first block). Tar parsing: the plain layer on one thread with BLAKE3, to be
//!   read against `hash/api-blake3`. Decoding: each compressed blob with BLAKE3 (about ten
//!   times cheaper than SHA-256 here) on the default threads, so the decoder dominates.
//!
//! - `decode-isal/*` (feature `isal`): ISA-L's inflate as isal-sys builds it against the
//!   patched copy the library calls, on the same deflate data: the cost of the completeness
//!   check of Huffman codes that `vendor/isa-l` adds. Measured in the thread's CPU time (not
//!   wall time), so that other load on the machine does not decide the comparison.
//!
//! - `file/*` (only when `DIFFID_BENCH_FILE` names a compressed layer, `.gz`, `.zst`, `.xz` or
//!   `.bz2`): that file's decoder crate alone on one thread (`file/crate`), beside the public
//!   API on one thread with BLAKE3 (`file/api-j1-blake3`) and with SHA-256
//!   (`file/api-j1-sha256`), throughput in decompressed bytes. It answers whether diffid's
//!   path runs at its decoder's own speed on a given layer (issue 11's second corpus:
//!   `DIFFID_BENCH_FILE=target/bench/sweep/small-300/layer-1block.tar.xz`).
//!
//! Run: `cargo bench --bench stages` (`-- hash` to pick a group).

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{CHUNK, CpuClock, Form, blob, drain, layer_len, layer_size, not_tar};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use diffid::{Algorithm, Options, digest_bytes};
use sha2::Digest as _;

fn opts(algorithm: Algorithm, threads: usize) -> Options {
    Options {
        algorithm,
        threads,
        ..Options::default()
    }
}

fn hashing(c: &mut Criterion) {
    let data = not_tar(layer_size());
    let mut g = c.benchmark_group("hash");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("sha256", |b| {
        b.iter(|| {
            let mut h = sha2::Sha256::new();
            data.chunks(CHUNK).for_each(|p| h.update(p));
            black_box(h.finalize())
        })
    });
    g.bench_function("sha512", |b| {
        b.iter(|| {
            let mut h = sha2::Sha512::new();
            data.chunks(CHUNK).for_each(|p| h.update(p));
            black_box(h.finalize())
        })
    });
    g.bench_function("blake3", |b| {
        b.iter(|| {
            let mut h = blake3::Hasher::new();
            data.chunks(CHUNK).for_each(|p| {
                h.update(p);
            });
            black_box(h.finalize())
        })
    });
    for alg in [Algorithm::Sha256, Algorithm::Sha512, Algorithm::Blake3] {
        let o = opts(alg, 1);
        g.bench_function(format!("api-{}", alg.name()), |b| {
            b.iter(|| black_box(digest_bytes(&data, &o).unwrap()))
        });
    }
    g.finish();
}

fn tar_parsing(c: &mut Criterion) {
    let mut g = c.benchmark_group("tar");
    g.throughput(Throughput::Bytes(layer_len()));
    let o = opts(Algorithm::Blake3, 1);
    g.bench_function("api-blake3+parse", |b| {
        let layer = blob(Form::Tar);
        b.iter(|| black_box(digest_bytes(&layer, &o).unwrap()))
    });
    g.finish();
}

/// Decodes `data` (of `form`) with the crate the library uses for it.
fn crate_decode(form: Form, data: &[u8], xz_threads: u32) -> u64 {
    match form {
        Form::Tar => drain(data),
        Form::Gz => drain(flate2::read::MultiGzDecoder::new(data)),
        Form::Zst | Form::ZstFrames => drain(zstd::stream::read::Decoder::new(data).unwrap()),
        Form::XzBlocks | Form::XzOne => {
            let stream = if xz_threads > 1 {
                // memlimit_threading must be set, or liblzma decodes on one thread.
                liblzma::stream::MtStreamBuilder::new()
                    .threads(xz_threads)
                    .memlimit_threading(u64::MAX)
                    .memlimit_stop(u64::MAX)
                    .decoder()
                    .unwrap()
            } else {
                liblzma::stream::Stream::new_stream_decoder(u64::MAX, 0).unwrap()
            };
            drain(liblzma::read::XzDecoder::new_stream(data, stream))
        }
        Form::Bz2 => drain(bzip2::read::MultiBzDecoder::new(data)),
    }
}

fn decoding(c: &mut Criterion) {
    let size = layer_len();
    let mut g = c.benchmark_group("decode-crate");
    g.throughput(Throughput::Bytes(size));
    g.sampling_mode(SamplingMode::Flat);
    for form in Form::ALL.into_iter().filter(|&f| f != Form::Tar) {
        // Criterion calls the closure once per sample: check the decoded size once.
        let mut checked = false;
        g.bench_function(form.name(), |b| {
            let data = blob(form);
            if !checked {
                assert_eq!(crate_decode(form, &data, 1), size);
                checked = true;
            }
            b.iter(|| black_box(crate_decode(form, &data, 1)))
        });
        if form == Form::XzBlocks {
            g.bench_function(format!("{}-mt2", form.name()), |b| {
                let data = blob(form);
                b.iter(|| black_box(crate_decode(form, &data, 2)))
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("decode-api");
    g.throughput(Throughput::Bytes(size));
    g.sampling_mode(SamplingMode::Flat);
    let o = opts(Algorithm::Blake3, 0);
    for form in Form::ALL.into_iter().filter(|&f| f != Form::Tar) {
        g.bench_function(form.name(), |b| {
            let data = blob(form);
            b.iter(|| black_box(digest_bytes(&data, &o).unwrap()))
        });
    }
    g.finish();
}

/// The decoder crate alone and the API on one thread, on the file `DIFFID_BENCH_FILE` names.
fn file(c: &mut Criterion) {
    let Some(path) = std::env::var_os("DIFFID_BENCH_FILE") else {
        return;
    };
    let path = std::path::PathBuf::from(path);
    let name = path.to_string_lossy().into_owned();
    let form = match path.extension().and_then(|e| e.to_str()) {
        Some("gz") => Form::Gz,
        Some("zst") => Form::Zst,
        Some("xz") => Form::XzOne,
        Some("bz2") => Form::Bz2,
        _ => panic!("DIFFID_BENCH_FILE={name}: the name must end in .gz, .zst, .xz or .bz2"),
    };
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("DIFFID_BENCH_FILE={name}: {e}"));
    let size = crate_decode(form, &data, 1);
    let mut g = c.benchmark_group("file");
    g.throughput(Throughput::Bytes(size));
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("crate", |b| {
        b.iter(|| assert_eq!(black_box(crate_decode(form, &data, 1)), size))
    });
    for alg in [Algorithm::Blake3, Algorithm::Sha256] {
        let o = opts(alg, 1);
        g.bench_function(format!("api-j1-{}", alg.name()), |b| {
            b.iter(|| black_box(digest_bytes(&data, &o).unwrap()))
        });
    }
    g.finish();
}

/// ISA-L's own inflate (isal-sys) against the patched copy the library calls
/// (`vendor/isa-l`, `isal_strict_inflate`: the same code plus the check that each dynamic
/// block's Huffman codes are complete), on the gzip layer's deflate data, output in 512 KiB
/// pieces with the CRC32 kept, as the library runs it, in thread CPU time. The difference is
/// the check's cost.
#[cfg(feature = "isal")]
fn isal_check(c: &mut Criterion<CpuClock>) {
    use isal_sys::igzip_lib as isal;

    unsafe extern "C" {
        fn isal_strict_inflate_init(state: *mut isal::inflate_state);
        fn isal_strict_inflate(state: *mut isal::inflate_state) -> std::ffi::c_int;
    }

    /// The length of a gzip member header without optional fields but a file name.
    fn header_len(gz: &[u8]) -> usize {
        assert_eq!(
            gz[3] & !0x08,
            0,
            "only FNAME is expected in the bench's gzip header"
        );
        if gz[3] & 0x08 == 0 {
            return 10;
        }
        10 + gz[10..].iter().position(|&b| b == 0).unwrap() + 1
    }

    fn inflate(deflate: &[u8], out: &mut [u8], strict: bool) -> u64 {
        let mut st: Box<std::mem::MaybeUninit<isal::inflate_state>> = Box::new_uninit();
        // SAFETY: zeroed, then initialized by the init function; the pointers set below
        // describe live slices for each call.
        unsafe {
            std::ptr::write_bytes(st.as_mut_ptr(), 0, 1);
            if strict {
                isal_strict_inflate_init(st.as_mut_ptr());
            } else {
                isal::isal_inflate_init(st.as_mut_ptr());
            }
        }
        let mut st = unsafe { st.assume_init() };
        st.crc_flag = isal::ISAL_GZIP_NO_HDR;
        st.next_in = deflate.as_ptr().cast_mut();
        st.avail_in = deflate.len() as u32;
        let mut total = 0;
        while st.block_state != isal::isal_block_state_ISAL_BLOCK_FINISH {
            st.next_out = out.as_mut_ptr();
            st.avail_out = out.len() as u32;
            let ret = unsafe {
                if strict {
                    isal_strict_inflate(&mut *st)
                } else {
                    isal::isal_inflate(&mut *st)
                }
            };
            assert!(ret >= 0, "inflate failed: {ret}");
            total += (out.len() - st.avail_out as usize) as u64;
        }
        total
    }

    let size = layer_len();
    let mut g = c.benchmark_group("decode-isal");
    g.throughput(Throughput::Bytes(size));
    g.sampling_mode(SamplingMode::Flat);
    let gz = blob(Form::Gz);
    let deflate = &gz[header_len(&gz)..gz.len() - 8];
    let mut out = vec![0u8; CHUNK];
    for (name, strict) in [
        ("isal-sys", false),
        ("strict", true),
        ("isal-sys-again", false),
    ] {
        assert_eq!(inflate(deflate, &mut out, strict), size);
        g.bench_function(name, |b| {
            b.iter(|| black_box(inflate(deflate, &mut out, strict)))
        });
    }
    g.finish();
}

#[cfg(not(feature = "isal"))]
fn isal_check(_: &mut Criterion<CpuClock>) {}

criterion_group! {
    name = stages;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = hashing, tar_parsing, decoding, file
}
criterion_group! {
    name = isal_cpu;
    config = Criterion::default()
        .with_measurement(CpuClock::THREAD)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = isal_check
}
criterion_main!(stages, isal_cpu);
