//! Digests and decoders against independent references, never against diffid itself:
//! BLAKE3 against its official test vectors, and the parallel decoders (multi-block xz,
//! multi-frame zstd, bzip2 blocks) against the reference C programs (`xz -dc`, `zstd -dc`,
//! `bzip2 -dc`) whose output `openssl dgst` hashes.

mod common;

use common::{Rng, gzip, must, openssl, tar_of};
use diffid::{Algorithm, Digester, Options, digest_bytes};

/// BLAKE3's test vectors (`test_vectors.json` of the BLAKE3 repository: input byte i is
/// `i % 251`), the 32-byte default hash of each length. Computed with BLAKE3's official C
/// implementation (`c/blake3.c`, portable build, no SIMD), which shares no code with the Rust
/// crate's portable path; the first two are the published values.
const BLAKE3_VECTORS: [(usize, &str); 22] = [
    (
        0,
        "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    ),
    (
        1,
        "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213",
    ),
    (
        1023,
        "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11",
    ),
    (
        1024,
        "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7",
    ),
    (
        1025,
        "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444",
    ),
    (
        2048,
        "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a",
    ),
    (
        2049,
        "5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b6879522563030",
    ),
    (
        3072,
        "b98cb0ff3623be03326b373de6b9095218513e64f1ee2edd2525c7ad1e5cffd2",
    ),
    (
        3073,
        "7124b49501012f81cc7f11ca069ec9226cecb8a2c850cfe644e327d22d3e1cd3",
    ),
    (
        4096,
        "015094013f57a5277b59d8475c0501042c0b642e531b0a1c8f58d2163229e969",
    ),
    (
        4097,
        "9b4052b38f1c5fc8b1f9ff7ac7b27cd242487b3d890d15c96a1c25b8aa0fb995",
    ),
    (
        5120,
        "9cadc15fed8b5d854562b26a9536d9707cadeda9b143978f319ab34230535833",
    ),
    (
        5121,
        "628bd2cb2004694adaab7bbd778a25df25c47b9d4155a55f8fbd79f2fe154cff",
    ),
    (
        6144,
        "3e2e5b74e048f3add6d21faab3f83aa44d3b2278afb83b80b3c35164ebeca205",
    ),
    (
        6145,
        "f1323a8631446cc50536a9f705ee5cb619424d46887f3c376c695b70e0f0507f",
    ),
    (
        7168,
        "61da957ec2499a95d6b8023e2b0e604ec7f6b50e80a9678b89d2628e99ada77a",
    ),
    (
        7169,
        "a003fc7a51754a9b3c7fae0367ab3d782dccf28855a03d435f8cfe74605e7817",
    ),
    (
        8192,
        "aae792484c8efe4f19e2ca7d371d8c467ffb10748d8a5a1ae579948f718a2a63",
    ),
    (
        8193,
        "bab6c09cb8ce8cf459261398d2e7aef35700bf488116ceb94a36d0f5f1b7bc3b",
    ),
    (
        16384,
        "f875d6646de28985646f34ee13be9a576fd515f76b5b0a26bb324735041ddde4",
    ),
    (
        31744,
        "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47",
    ),
    (
        102400,
        "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085",
    ),
];

#[test]
fn blake3_matches_the_official_test_vectors() {
    let input: Vec<u8> = (0..102_400).map(|i| (i % 251) as u8).collect();
    for (len, want) in BLAKE3_VECTORS {
        let data = &input[..len];
        let opts = Options {
            algorithm: Algorithm::Blake3,
            ..Options::default()
        };
        // Uncompressed: the blob digest; gzip: the DiffID, through the worker threads when
        // written in pieces.
        let r = digest_bytes(data, &opts).unwrap();
        assert_eq!(r.blob_digest.to_string(), format!("blake3:{want}"), "{len}");
        let mut d = Digester::new(&Options { threads: 3, ..opts }).unwrap();
        for piece in gzip(data).chunks(100) {
            d.write(piece).unwrap();
        }
        let r = d.finish().unwrap();
        assert_eq!(
            r.diff_id.to_string(),
            format!("blake3:{want}"),
            "{len} gzip"
        );
    }
}

/// A layer of `mib` MiB or so: text, zeros and random files.
fn layer(mib: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let entries: Vec<(String, Vec<u8>)> = (0..mib * 4)
        .map(|i| {
            let data = match i % 4 {
                0 => rng.bytes(200_000, false),
                1 => vec![0; 300_000],
                _ => rng.bytes(280_000, true),
            };
            (format!("usr/lib/file{i:03}"), data)
        })
        .collect();
    tar_of(&entries)
}

/// `blob` through diffid with 2, 3 and 4 threads (and written in pieces) against the C
/// program's output hashed by openssl.
fn check_against(name: &str, blob: &[u8], decoder: &str) {
    let decoded = must(decoder, &["-dc"], blob);
    let want = openssl("sha256", &decoded);
    let blob_digest = openssl("sha256", blob);
    for threads in [2, 3, 4] {
        let mut d = Digester::new(&Options {
            threads,
            ..Options::default()
        })
        .unwrap();
        for piece in blob.chunks(300_000) {
            d.write(piece).unwrap();
        }
        let r = d.finish().unwrap();
        assert_eq!(r.diff_id.to_string(), want, "{name} threads={threads}");
        assert_eq!(
            r.diff_size,
            decoded.len() as u64,
            "{name} threads={threads}"
        );
        assert_eq!(r.blob_digest.to_string(), blob_digest, "{name}");
    }
}

#[test]
fn parallel_zstd_and_bzip2_match_the_c_decoders() {
    let layer = layer(6, 51);
    let mib = 1 << 20;
    // Frames of 1 MiB, with and without a content size, and a skippable frame between.
    let frames: Vec<u8> = layer
        .chunks(mib)
        .enumerate()
        .flat_map(|(i, c)| {
            let mut f = must("zstd", &["-c", "-q", "-1"], c);
            if i == 2 {
                f.extend(common::skippable(1, b"table of contents"));
            }
            f
        })
        .collect();
    check_against("zstd frames", &frames, "zstd");
    let frames: Vec<u8> = layer
        .chunks(mib)
        .flat_map(|c| {
            must(
                "zstd",
                &["-c", "-q", "-3", "--no-content-size", "--no-check"],
                c,
            )
        })
        .collect();
    check_against("zstd frames without content size", &frames, "zstd");
    check_against(
        "bzip2 -1 blocks",
        &must("bzip2", &["-c", "-1"], &layer),
        "bzip2",
    );
    let streams: Vec<u8> = layer
        .chunks(2 * mib)
        .flat_map(|c| must("bzip2", &["-c", "-2"], c))
        .collect();
    check_against("bzip2 streams", &streams, "bzip2");
}

/// The multi-block xz equality check that is not `#[ignore]`d: 24 MiB in 1 MiB blocks
/// (xz -T2 writes their sizes, so they decode in parallel), against `xz -dc`.
#[test]
fn parallel_xz_matches_xz_utils() {
    let layer = layer(24, 52);
    assert!(layer.len() > 24 << 20);
    let blob = must("xz", &["-c", "-0", "-T2", "--block-size=1MiB"], &layer);
    check_against("xz blocks", &blob, "xz");
    let blob = must(
        "xz",
        &["-c", "-0", "-T2", "--block-size=300KiB", "--check=sha256"],
        &layer[..8 << 20],
    );
    check_against("xz small blocks, sha256", &blob, "xz");
}
