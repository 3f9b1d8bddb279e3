//! Property test: random tar payloads, compressed in every format with random
//! member/stream/frame/block splits by the system's own tools, fed in random pieces; our
//! digests must equal `openssl dgst` over the raw blob and over the known payload.

mod common;

use common::{Rng, must, openssl, skippable, tar_of, xz, zstd};
use diffid::{Digester, Format, Options};
use proptest::prelude::*;

#[derive(Debug, Clone)]
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

fn layer() -> impl Strategy<Value = Layer> {
    let entry = (
        "[a-z]{1,12}(/[a-z0-9_-]{1,40}[.]?[a-z]{0,3}){0,3}",
        0usize..40_000,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(name, len, random, seed)| {
            let mut rng = Rng::new(seed);
            (name, rng.bytes(len, !random))
        });
    (
        prop::collection::vec(entry, 0..8),
        prop::collection::vec(any::<u16>(), 0..4),
        1u8..10,
        4u16..64,
        any::<bool>(),
        1usize..100_000,
    )
        .prop_map(|(entries, cuts, level, block_kib, extras, piece)| Layer {
            entries,
            cuts,
            level,
            block_kib,
            extras,
            piece,
        })
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
            Format::Bzip2 => out.extend(must("bzip2", &["-c", &level], part)),
            Format::Xz => {
                if i > 0 && l.extras {
                    out.extend_from_slice(&[0; 4]);
                }
                let bs = format!("--block-size={}KiB", l.block_kib);
                out.extend(xz(part, &[&level, &bs]));
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_layers_match_openssl(l in layer()) {
        let payload = tar_of(&l.entries);
        let diff_id = openssl("sha256", &payload);
        for format in [Format::None, Format::Gzip, Format::Bzip2, Format::Xz, Format::Zstd] {
            let blob = blob(format, &l, &payload);
            let mut d = Digester::new(&Options::default()).unwrap();
            for piece in blob.chunks(l.piece) {
                d.write(piece).unwrap();
            }
            let r = d.finish().unwrap();
            prop_assert_eq!(r.format, format);
            prop_assert_eq!(r.blob_digest.to_string(), openssl("sha256", &blob));
            prop_assert_eq!(r.blob_size, blob.len() as u64);
            prop_assert_eq!(&r.diff_id.to_string(), &diff_id);
            prop_assert_eq!(r.diff_size, payload.len() as u64);
            prop_assert!(r.tar.valid, "{:?}", r.tar);
            prop_assert!(r.tar.end_marker);
            prop_assert_eq!(r.tar.entries, l.entries.len() as u64);
        }
    }
}
