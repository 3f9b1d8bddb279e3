//! Property test: random tar payloads of several 512 KiB chunks, compressed in every format
//! with random member/stream/frame/block splits by the system's own tools, fed in random
//! pieces through every thread layout (`Options::threads` 1 to 4, with a budget of 4 so that
//! 3 and 4 get the layout where the blob hash has a thread of its own even on 2 cores); our
//! digests must equal `openssl dgst` over the raw blob and over the known payload. A sampler
//! checks that the runs did reach every layout and every parallel decoder (xz blocks, zstd
//! frames, bzip2 blocks). gzip also goes through its parallel path, forced with 2 and 3
//! workers: the members above (given back to the sequential path) and the payload as one
//! member (decoded on that path).

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{Rng, gzip_forced, must, openssl, running_threads, skippable, tar_of, xz, zstd};
use diffid::{Digester, Format, GzipParallel, Options, digest_bytes};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const CHUNK: usize = 512 << 10;

#[derive(Clone)]
struct Layer {
    entries: Vec<(String, Vec<u8>)>,
    /// Where the payload is cut into members/streams/frames (fractions of its length).
    cuts: Vec<u16>,
    /// Per-format knobs: compression level, xz block size, zstd checksum, extra framing.
    level: u8,
    block_kib: u16,
    extras: bool,
    /// Sizes of the pieces the blob is written in.
    piece: usize,
}

/// Names and sizes, not megabytes of contents, when a case fails.
impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries: Vec<(&str, usize)> = self
            .entries
            .iter()
            .map(|(n, d)| (n.as_str(), d.len()))
            .collect();
        f.debug_struct("Layer")
            .field("entries", &entries)
            .field("cuts", &self.cuts)
            .field("level", &self.level)
            .field("block_kib", &self.block_kib)
            .field("extras", &self.extras)
            .field("piece", &self.piece)
            .finish()
    }
}

fn layer() -> impl Strategy<Value = Layer> {
    let entry = |len: std::ops::Range<usize>| {
        (
            "[a-z]{1,12}(/[a-z0-9_-]{1,40}[.]?[a-z]{0,3}){0,3}",
            len,
            any::<bool>(),
            any::<u64>(),
        )
            .prop_map(|(name, len, random, seed)| {
                let mut rng = Rng::new(seed);
                (name, rng.bytes(len, !random))
            })
    };
    // One large incompressible entry: every compressed blob spans several chunks.
    let big = (entry(0..1), any::<u64>()).prop_map(|((name, _), seed)| {
        let len = 3 * CHUNK + (seed % CHUNK as u64) as usize;
        (format!("big/{name}"), Rng::new(seed).bytes(len, false))
    });
    (
        big,
        prop::collection::vec(entry(0..40_000), 0..6),
        prop::collection::vec(any::<u16>(), 1..5),
        1u8..4,
        16u16..256,
        any::<bool>(),
        1usize..300_000,
    )
        .prop_map(
            |(big, mut entries, cuts, level, block_kib, extras, piece)| {
                let at = cuts[0] as usize % (entries.len() + 1);
                entries.insert(at, big);
                Layer {
                    entries,
                    cuts,
                    level,
                    block_kib,
                    extras,
                    piece,
                }
            },
        )
}

fn parts<'a>(payload: &'a [u8], cuts: &[u16]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|&c| payload.len() * usize::from(c) / usize::from(u16::MAX))
        .collect();
    at.sort_unstable();
    let mut out = Vec::new();
    let mut prev = 0;
    for a in at.into_iter().chain([payload.len()]) {
        out.push(&payload[prev..a]);
        prev = a;
    }
    out
}

fn blob(format: Format, l: &Layer, payload: &[u8]) -> Vec<u8> {
    let level = format!("-{}", l.level);
    let mut out = Vec::new();
    for (i, part) in parts(payload, &l.cuts).into_iter().enumerate() {
        match format {
            Format::None => out.extend_from_slice(part),
            Format::Gzip => out.extend(must("gzip", &["-c", "-n", &level], part)),
            // Levels 1-3: blocks of 100-300 kB, several per chunk (the parallel decoder).
            Format::Bzip2 => out.extend(must("bzip2", &["-c", &level], part)),
            Format::Xz => {
                if i > 0 && l.extras {
                    out.extend_from_slice(&[0; 4]);
                }
                // -T2: block headers carry their sizes, so the blocks decode in parallel.
                let bs = format!("--block-size={}KiB", l.block_kib);
                out.extend(xz(part, &[&level, "-T2", &bs]));
            }
            Format::Zstd => {
                let check = if l.extras { "--no-check" } else { "--check" };
                out.extend(zstd(part, &[&level, check]));
                if l.extras {
                    out.extend(skippable(i as u8, b"zstd:chunked table of contents"));
                }
            }
        }
    }
    out
}

fn check(l: &Layer) -> Result<(), TestCaseError> {
    let payload = tar_of(&l.entries);
    let diff_id = openssl("sha256", &payload);
    for format in [
        Format::None,
        Format::Gzip,
        Format::Bzip2,
        Format::Xz,
        Format::Zstd,
    ] {
        let blob = blob(format, l, &payload);
        prop_assert!(blob.len() > 2 * CHUNK, "{}: {} bytes", format, blob.len());
        let blob_digest = openssl("sha256", &blob);
        for threads in 1..=4 {
            let mut d = Digester::new(&Options {
                threads,
                ..Options::default()
            })
            .unwrap();
            for piece in blob.chunks(l.piece) {
                d.write(piece).unwrap();
            }
            let r = d.finish().unwrap();
            let what = format!("{format} threads={threads}");
            prop_assert_eq!(r.format, format, "{}", what);
            prop_assert_eq!(&r.blob_digest.to_string(), &blob_digest, "{}", what);
            prop_assert_eq!(r.blob_size, blob.len() as u64, "{}", what);
            prop_assert_eq!(&r.diff_id.to_string(), &diff_id, "{}", what);
            prop_assert_eq!(r.diff_size, payload.len() as u64, "{}", what);
            prop_assert!(r.tar.valid, "{}: {:?}", what, r.tar);
            prop_assert!(r.tar.end_marker, "{}", what);
            prop_assert_eq!(r.tar.entries, l.entries.len() as u64, "{}", what);
        }
        if format == Format::Gzip {
            // The gzip parallel path, forced: these members are given back to the sequential
            // path; the payload as one member is decoded there (several grid tasks of 1 MiB).
            let single = must("gzip", &["-c", "-n", &format!("-{}", l.level)], &payload);
            let single_digest = openssl("sha256", &single);
            for (b, b_digest, one) in [
                (&blob, &blob_digest, false),
                (&single, &single_digest, true),
            ] {
                for workers in [2, 3] {
                    let r = digest_bytes(b, &gzip_forced(workers)).unwrap();
                    let what = format!("gzip parallel, {workers} workers, one member: {one}");
                    let want = if one {
                        GzipParallel::Decoded
                    } else {
                        GzipParallel::FellBack
                    };
                    prop_assert_eq!(diffid::last_gzip_parallel(), want, "{}", what);
                    prop_assert_eq!(&r.blob_digest.to_string(), b_digest, "{}", what);
                    prop_assert_eq!(r.blob_size, b.len() as u64, "{}", what);
                    prop_assert_eq!(&r.diff_id.to_string(), &diff_id, "{}", what);
                    prop_assert_eq!(r.diff_size, payload.len() as u64, "{}", what);
                    prop_assert_eq!(r.tar.entries, l.entries.len() as u64, "{}", what);
                }
            }
        }
    }
    Ok(())
}

#[test]
fn random_layers_match_openssl() {
    // The budget of this process (its own test binary): 4 workers, so that threads 3 and 4
    // are granted on a 2-core machine too.
    diffid::set_workers(4).unwrap();
    assert_eq!(diffid::workers(), 4);

    // Records the names of the worker threads that ran.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let sampler = {
        let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let names = running_threads();
                seen.lock()
                    .unwrap()
                    .extend(names.into_iter().filter(|n| n.starts_with("diffid-")));
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        })
    };
    let mut runner = TestRunner::new(Config {
        cases: 6,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&layer(), |l| check(&l));
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    result.unwrap();

    // Every layout and every parallel decoder ran: the blob hash on its own thread (3 or
    // more tokens), both hashes on one thread beside the decoder (2 tokens), the decode and
    // DiffID workers, the xz, zstd and bzip2 helper crews.
    let seen = seen.lock().unwrap();
    for name in [
        "diffid-blob",
        "diffid-decode",
        "diffid-diff",
        "diffid-hashes",
        "diffid-xz-",
        "diffid-zstd-",
        "diffid-bzip2-",
    ] {
        assert!(
            seen.iter().any(|n| n.starts_with(name)),
            "no {name}* thread ran: {seen:?}"
        );
    }
}
