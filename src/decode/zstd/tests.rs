//! The parallel decoder against the sequential one (which the compat tests hold to
//! containers/image and the `zstd` program): the same output, the same errors, on inputs
//! the `zstd` program makes.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use super::*;
use crate::budget::Permit;
use crate::decode::Helpers;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn payload(len: usize, seed: u64) -> Vec<u8> {
    let words: [&[u8]; 5] = [
        b"layer ",
        b"zstd ",
        b"\0\0\0\0\0\0",
        b"usr/lib/",
        b"frame\n",
    ];
    let mut rng = Rng(seed | 1);
    let mut v = Vec::with_capacity(len + 32);
    while v.len() < len {
        match rng.below(3) {
            0 => v.extend((0..rng.below(30)).map(|_| rng.next() as u8)),
            _ => v.extend_from_slice(words[rng.below(words.len())]),
        }
    }
    v.truncate(len);
    v
}

fn zstd(args: &[&str], data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("zstd")
        .args(["-c", "-q"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the zstd program must be installed to run these tests");
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "zstd {args:?} failed");
    out.stdout
}

/// Frames of `piece` bytes each, as zstd:chunked and concatenated files have them.
fn frames(data: &[u8], piece: usize, args: &[&str]) -> Vec<u8> {
    data.chunks(piece.max(1))
        .flat_map(|c| zstd(args, c))
        .collect()
}

fn skippable(payload: &[u8]) -> Vec<u8> {
    let mut v = 0x184D_2A5Eu32.to_le_bytes().to_vec();
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

fn decoder(helpers: usize) -> Box<dyn Decode> {
    if helpers == 0 {
        return Box::new(ZstdDecoder::new(super::WINDOW_LOG_MAX).unwrap());
    }
    let helpers = Helpers {
        permit: Permit::for_tests(helpers),
        max: helpers,
    };
    Box::new(ParZstdDecoder::new(helpers, super::WINDOW_LOG_MAX).unwrap())
}

/// Feeds `data` in pieces of up to `max_in` bytes into output buffers of up to `max_out`
/// (random sizes from `seed`), checking the trait's progress contract.
fn decode(
    data: &[u8],
    helpers: usize,
    seed: u64,
    max_in: usize,
    max_out: usize,
) -> Result<Vec<u8>> {
    let mut dec = decoder(helpers);
    let mut rng = Rng(seed | 1);
    let mut buf = vec![0u8; max_out];
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let end = pos + (1 + rng.below(max_in)).min(data.len() - pos);
        let mut chunk = &data[pos..end];
        while !chunk.is_empty() {
            let n = 1 + rng.below(max_out);
            let (c, p) = dec.decode(chunk, &mut buf[..n])?;
            assert!(c > 0 || p > 0, "no progress");
            out.extend_from_slice(&buf[..p]);
            chunk = &chunk[c..];
        }
        pos = end;
    }
    loop {
        let n = 1 + rng.below(max_out);
        let (p, done) = dec.finish(&mut buf[..n])?;
        out.extend_from_slice(&buf[..p]);
        if done {
            return Ok(out);
        }
        assert!(p > 0, "finish made no progress");
    }
}

const FEEDS: [(u64, usize, usize); 4] = [
    (1, usize::MAX / 2, 1 << 16),
    (2, 1, 1),
    (3, 700, 300),
    (4, 100_000, 70_000),
];

/// Sequential and parallel decoding agree, output and errors alike, with every feed.
fn assert_same(data: &[u8]) -> Result<Vec<u8>> {
    let mut first = None;
    for (seed, max_in, max_out) in FEEDS {
        let max_in = max_in.min(data.len().max(1));
        let seq = decode(data, 0, seed, max_in, max_out);
        for helpers in [1, 3] {
            let par = decode(data, helpers, seed, max_in, max_out);
            match (&seq, &par) {
                (Ok(a), Ok(b)) => {
                    assert!(a == b, "feed {seed}, {helpers} helpers: outputs differ")
                }
                _ => assert_eq!(seq, par, "feed {seed}, {helpers} helpers"),
            }
        }
        first.get_or_insert(seq);
    }
    first.unwrap()
}

#[test]
fn frames_decode_as_sequential() {
    let data = payload(300_000, 1);
    let cases = [
        frames(&data, 10_000, &["-1"]),
        frames(&data, 20_000, &["-3", "--no-check"]),
        frames(&data, 100_000, &["-1", "--no-content-size"]),
        frames(&data, 300_000, &["-1"]),
        zstd(&["-1", "--no-content-size"], &data),
        [
            frames(&data, 7_000, &["-1"]),
            skippable(b"toc"),
            skippable(b""),
        ]
        .concat(),
        [
            frames(&data[..50_000], 5000, &["-1"]),
            skippable(&[7; 3000]),
            frames(&data[50_000..], 60_000, &["-1"]),
        ]
        .concat(),
        [
            zstd(&[], b""),
            zstd(&[], b"x"),
            zstd(&["--no-content-size"], b""),
        ]
        .concat(),
        // Many raw and RLE blocks.
        frames(&[0u8; 400_000], 50_000, &["-1"]),
        frames(
            &(0..200_000u32)
                .map(|i| (i * 2654435761) as u8)
                .collect::<Vec<_>>(),
            40_000,
            &["-1"],
        ),
    ];
    for (i, z) in cases.iter().enumerate() {
        let out = assert_same(z).unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert!(!out.is_empty() || i == 7 || out.len() == 1, "case {i}");
    }
}

#[test]
fn bad_inputs_fail_as_sequential() {
    let data = payload(100_000, 2);
    let z = frames(&data, 8000, &["-1"]);
    let cat = |parts: &[&[u8]]| parts.concat();
    let cases = [
        cat(&[&z, b"garbage!"]),
        cat(&[&z, &[0x28, 0xb5]]),
        cat(&[&z, &skippable(b"abc")[..6]]),
        cat(&[&z, &[0; 4]]),
        cat(&[&z[..z.len() / 2], &z]),
        // A window larger than 512 MiB.
        cat(&[&z, &zstd(&["-q", "--long=30"], b"small")]),
        Vec::new(),
        z[..3].to_vec(),
    ];
    for (i, bad) in cases.iter().enumerate() {
        assert!(assert_same(bad).is_err(), "case {i}");
    }
}

#[test]
fn truncations_and_corruptions_fail_as_sequential() {
    let data = payload(50_000, 3);
    let z = frames(&data, 4000, &["-1"]);
    for len in (0..z.len()).step_by(37) {
        assert!(assert_same(&z[..len]).is_err(), "len {len}");
    }
    let mut rng = Rng(4);
    for _ in 0..200 {
        let mut bad = z.clone();
        let i = rng.below(bad.len());
        bad[i] ^= 1 << rng.below(8);
        let _ = assert_same(&bad);
    }
}

#[test]
fn corpus_as_sequential() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/peers/zstd");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        files += 1;
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let twice = [data.clone(), data.clone()].concat();
        for d in [&data, &twice] {
            let seq = decode(d, 0, 1, usize::MAX / 2, 1 << 16);
            let par = decode(d, 2, 1, usize::MAX / 2, 1 << 16);
            assert!(seq == par, "{}: {seq:?} vs {par:?}", path.display());
        }
    }
    assert!(files > 0, "the vendored zstd corpus is missing");
}

#[test]
fn splits_wants_small_frames() {
    let data = payload(700_000, 5);
    assert_eq!(splits(&frames(&data, 100_000, &["-1"])), Some(true));
    assert_eq!(
        splits(&frames(&data, 100_000, &["-1", "--no-content-size"])),
        Some(true)
    );
    // A frame without a content size: undecided until it ends or the prefix is long.
    let one = zstd(&["-1", "--no-content-size"], &data);
    assert_eq!(splits(&one[..100_000]), None);
    assert_eq!(splits(&one), None, "one frame, and nothing yet after it");
    let mut two = one.clone();
    two.extend_from_slice(&one);
    assert_eq!(splits(&two), Some(true));
    let mut then_skippable = one.clone();
    then_skippable.extend_from_slice(b"\x50\x2a\x4d\x18\0\0\0\0");
    assert_eq!(splits(&then_skippable), Some(false));
    assert_eq!(splits(b"\x28\xb5\x2f"), None);
    // A large content size says at once: one big frame.
    let big = zstd(&["-1"], &vec![7u8; 100 << 20]);
    assert_eq!(splits(&big), Some(false));
}

#[test]
fn frames_go_to_the_crew() {
    let data = payload(200_000, 6);
    let z = frames(&data, 10_000, &["-1"]);
    let mut dec = ParZstdDecoder::new(
        Helpers {
            permit: Permit::for_tests(2),
            max: 2,
        },
        super::WINDOW_LOG_MAX,
    )
    .unwrap();
    let mut out = vec![0; 1 << 20];
    let mut input = &z[..];
    let mut all = Vec::new();
    while !input.is_empty() {
        let (c, p) = dec.decode(input, &mut out).unwrap();
        all.extend_from_slice(&out[..p]);
        input = &input[c..];
    }
    loop {
        let (p, done) = dec.finish(&mut out).unwrap();
        all.extend_from_slice(&out[..p]);
        if done {
            break;
        }
    }
    assert!(all == data);
    assert_eq!(dec.submitted, 20);
}
