//! Tests of the gzip decoder: the compiled-in backend against the system's `gzip` (and `pigz`
//! and `igzip` where installed) on many inputs, fed in pieces of random sizes down to one byte,
//! and on corrupted inputs; and, with the `isal` feature, ISA-L against zlib-rs.
//!
//! The decoder's verdict must not depend on how its input and output are split, and a corrupt
//! member must give an error (no digest) of the kind `gzip -t` implies.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest as _, Sha256};

use super::zlib::ZlibInflater;
use super::{Backend, GzipDecoder, Inflate};
use crate::decode::Decode;
use crate::error::{Error, ErrorKind, Result};
use crate::options::Options;

/// Decodes `blob` as the pipeline does, with input pieces of 1..=`max_in` bytes and output
/// buffers of 1..=`max_out` bytes, their sizes drawn from `rng`.
fn decode_split<I: Inflate>(
    blob: &[u8],
    lenient: bool,
    rng: &mut StdRng,
    max_in: usize,
    max_out: usize,
) -> Result<Vec<u8>> {
    let mut dec = GzipDecoder::<I>::with_backend(lenient);
    let mut out = Vec::with_capacity(blob.len() * 4);
    let mut buf = vec![0u8; max_out];
    let mut rest = blob;
    while !rest.is_empty() {
        let n = rng.random_range(1..=max_in).min(rest.len());
        let mut input = &rest[..n];
        rest = &rest[n..];
        while !input.is_empty() {
            let m = rng.random_range(1..=max_out);
            let (consumed, produced) = dec.decode(input, &mut buf[..m])?;
            if consumed == 0 && produced == 0 {
                return Err(Error::new(ErrorKind::Internal, "decoder made no progress"));
            }
            out.extend_from_slice(&buf[..produced]);
            input = &input[consumed..];
        }
    }
    loop {
        let m = rng.random_range(1..=max_out);
        let (produced, done) = dec.finish(&mut buf[..m])?;
        out.extend_from_slice(&buf[..produced]);
        if done {
            return Ok(out);
        }
        if produced == 0 {
            return Err(Error::new(
                ErrorKind::Truncated,
                "compressed data ends early",
            ));
        }
    }
}

/// How the input and output are cut: (largest input piece, largest output buffer).
const SPLITS: [(usize, usize); 7] = [
    (1, 1),
    (1, 7),
    (3, 1),
    (13, 64),
    (4096, 1000),
    (65536, 1 << 19),
    (1 << 19, 1 << 19),
];

/// Decodes `blob` with every split profile (byte-sized ones only for small inputs) and
/// checks each gives the same verdict; returns it.
fn decode_every_way<I: Inflate>(blob: &[u8], lenient: bool, seed: u64) -> Result<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut first: Option<Result<Vec<u8>>> = None;
    for (max_in, max_out) in SPLITS {
        if max_in.min(max_out) < 64 && blob.len() > 200_000 {
            continue;
        }
        let got = decode_split::<I>(blob, lenient, &mut rng, max_in, max_out);
        match &first {
            None => first = Some(got),
            Some(want) => assert!(
                same_verdict(want, &got),
                "{}: split ({max_in}, {max_out}) gives {} but the first split gave {}",
                I::NAME,
                show(&got),
                show(want)
            ),
        }
    }
    first.expect("at least one split")
}

fn same_verdict(a: &Result<Vec<u8>>, b: &Result<Vec<u8>>) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) => x == y,
        (Err(x), Err(y)) => x.kind() == y.kind(),
        _ => false,
    }
}

fn show(r: &Result<Vec<u8>>) -> String {
    match r {
        Ok(v) => format!("{} bytes", v.len()),
        Err(e) => format!("{:?}: {e}", e.kind()),
    }
}

/// Runs `program args` with `input` on stdin; `None` when the program is not installed.
fn run(program: &str, args: &[&str], input: &[u8]) -> Option<(i32, Vec<u8>, String)> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // A program that stops reading early (gzip -t on an error) closes the pipe: fine.
        let _ = stdin.write_all(&input);
    });
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    writer.join().unwrap();
    Some((status.code().unwrap_or(-1), stdout, stderr))
}

/// `program args` must be installed and succeed: its output.
fn compress(program: &str, args: &[&str], data: &[u8]) -> Option<Vec<u8>> {
    let (code, out, err) = run(program, args, data)?;
    assert_eq!(code, 0, "{program} {args:?} failed: {err}");
    Some(out)
}

/// Deterministic test data: text-like, incompressible, runs, and a mix of them.
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = StdRng::seed_from_u64(1952);
    let words = [
        "layer",
        "digest",
        "tar",
        "gzip",
        "member",
        "usr",
        "share",
        "lib",
        "the",
        "of",
        "and",
        "container",
        "image",
        "sha256",
        "\n",
        "/",
        ".so",
        " ",
        "  ",
        "0755",
        "root",
    ];
    let mut text = Vec::new();
    while text.len() < 300_000 {
        text.extend_from_slice(words[rng.random_range(0..words.len())].as_bytes());
    }
    let random: Vec<u8> = (0..100_000).map(|_| rng.random()).collect();
    let zeros = vec![0u8; 1 << 20];
    let mut mixed = Vec::new();
    while mixed.len() < 700_000 {
        let n = rng.random_range(1..40_000);
        match rng.random_range(0..3) {
            0 => mixed.extend_from_slice(&text[..n]),
            1 => mixed.extend_from_slice(&random[..n.min(random.len())]),
            _ => mixed.extend(std::iter::repeat_n(rng.random::<u8>(), n)),
        }
    }
    vec![
        ("empty", Vec::new()),
        ("one-byte", b"a".to_vec()),
        ("short-text", text[..1000].to_vec()),
        ("text", text),
        ("random", random),
        ("zeros", zeros),
        ("mixed", mixed),
    ]
}

/// Compresses with one tool and level; `None` when the tool is not installed.
type Compressor = Box<dyn Fn(&[u8]) -> Option<Vec<u8>>>;

/// Every compressor (and level) on this machine: gzip -1..-9 always, pigz and igzip when
/// installed, and flate2's stored-only level 0.
fn compressors() -> Vec<(String, Compressor)> {
    let mut v: Vec<(String, Compressor)> = Vec::new();
    for level in 1..=9 {
        let arg = format!("-{level}");
        v.push((
            format!("gzip {arg}"),
            Box::new(move |d| compress("gzip", &["-c", "-n", &arg], d)),
        ));
    }
    for arg in ["-1", "-6", "-9", "-i", "-11", "--rsyncable"] {
        v.push((
            format!("pigz {arg}"),
            Box::new(move |d| {
                // zopfli (-11) is slow: small inputs only.
                if arg == "-11" && d.len() > 100_000 {
                    return None;
                }
                compress("pigz", &["-c", "-n", "-p", "2", "-b", "128", arg], d)
            }),
        ));
    }
    for arg in ["-0", "-1", "-2", "-3"] {
        v.push((
            format!("igzip {arg}"),
            Box::new(move |d| compress("igzip", &["-c", arg], d)),
        ));
    }
    v.push((
        "flate2 stored".to_string(),
        Box::new(|d| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
            e.write_all(d).unwrap();
            Some(e.finish().unwrap())
        }),
    ));
    v
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn every_compressor_level_and_split_round_trips() {
    let mut tools_missing = Vec::new();
    let mut members = Vec::new();
    let mut expected = Vec::new();
    for (name, data) in corpus() {
        for (tool, compress) in compressors() {
            let Some(blob) = compress(&data) else {
                tools_missing.push(tool);
                continue;
            };
            let got = decode_every_way::<Backend>(&blob, false, 7)
                .unwrap_or_else(|e| panic!("{name} by {tool}: {e}"));
            assert!(got == data, "{name} by {tool}: decoded data differs");
            if data.len() < 400_000 {
                members.push(blob);
                expected.extend_from_slice(&data);
            }
        }
    }
    // All of them, one after the other: one multi-member stream, as `gzip -dc` reads it.
    let blob = members.concat();
    let (code, out, err) = run("gzip", &["-dc"], &blob).unwrap();
    assert_eq!(code, 0, "gzip -dc: {err}");
    assert!(out == expected);
    let got = decode_every_way::<Backend>(&blob, false, 8).unwrap();
    assert!(
        got == expected,
        "the multi-member stream decodes differently"
    );
    if !tools_missing.is_empty() {
        tools_missing.sort();
        tools_missing.dedup();
        eprintln!("not installed or skipped, not tried: {tools_missing:?}");
    }
}

#[test]
fn empty_members_anywhere() {
    let empty = compress("gzip", &["-c", "-n"], b"").unwrap();
    let a = compress("gzip", &["-c", "-n", "-9"], b"first member\n").unwrap();
    let b = compress("gzip", &["-c", "-n", "-1"], &[7u8; 100_000]).unwrap();
    let blob = [&empty[..], &empty, &a, &empty, &b, &empty].concat();
    let mut want = b"first member\n".to_vec();
    want.extend_from_slice(&[7u8; 100_000]);
    assert!(decode_every_way::<Backend>(&blob, false, 1).unwrap() == want);
    assert!(
        decode_every_way::<Backend>(&empty, false, 2)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn trailing_bytes_strict_and_lenient_at_every_split() {
    let a = compress("gzip", &["-c", "-n"], b"hello, layer\n").unwrap();
    for tail in [
        &b"\0"[..],
        b"\0\0\0\0\0\0\0\0",
        b"garbage",
        b"\x1f",
        b"\x1f\x8b\x08",
    ] {
        let blob = [&a[..], &a, tail].concat();
        let strict = decode_every_way::<Backend>(&blob, false, 3).unwrap_err();
        // A partial member header at the end is truncated data; anything else trails.
        let want = if tail.starts_with(b"\x1f") {
            ErrorKind::Truncated
        } else {
            ErrorKind::TrailingData
        };
        assert_eq!(strict.kind(), want, "tail {tail:?}: {strict}");
        let lenient = decode_every_way::<Backend>(&blob, true, 4).unwrap();
        assert_eq!(lenient, b"hello, layer\nhello, layer\n");
    }
}

/// What `gzip -t` says of `blob`: `Ok` when it exits 0, otherwise its message.
fn gzip_t(blob: &[u8]) -> std::result::Result<(), String> {
    let (code, _, err) = run("gzip", &["-t"], blob).unwrap();
    if code == 0 { Ok(()) } else { Err(err) }
}

/// The error kinds `gzip -t`'s message allows. gzip's own inflate does not check that a
/// distance stays within the data decoded so far (zlib and Go do, and call it corrupt), so
/// where gzip reads on to the end of the input, either kind may be right.
fn kinds_allowed_by(gzip_message: &str) -> &'static [ErrorKind] {
    if gzip_message.contains("unexpected end of file") {
        &[ErrorKind::Truncated, ErrorKind::Corrupt]
    } else if gzip_message.contains("trailing garbage") {
        &[ErrorKind::TrailingData]
    } else {
        &[ErrorKind::Corrupt]
    }
}

/// Flips one random bit in `blob[range]`, `n` times, and checks our verdict (through the
/// whole pipeline, and through the decoder fed in random pieces) against `gzip -t`: the
/// same decision, no digest on an error, an error kind gzip's message allows, and (the
/// reference for the kind) the same kind as zlib-rs.
fn flips_agree_with_gzip_t(blob: &[u8], range: std::ops::Range<usize>, n: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut kinds = std::collections::BTreeMap::new();
    for _ in 0..n {
        let mut bad = blob.to_vec();
        let bit = rng.random_range(range.start * 8..range.end * 8);
        bad[bit / 8] ^= 1 << (bit % 8);
        let gzip = gzip_t(&bad);
        let whole = crate::digest_bytes(&bad, &Options::default());
        let split = decode_split::<Backend>(&bad, false, &mut rng, 5000, 70_000);
        let zlib = decode_split::<ZlibInflater>(&bad, false, &mut rng, 5000, 70_000);
        match (&gzip, &whole) {
            (Ok(()), Ok(report)) => {
                let (_, out, _) = run("gzip", &["-dc"], &bad).unwrap();
                assert_eq!(
                    report.diff_id.to_string(),
                    format!("sha256:{}", sha256(&out))
                );
                assert!(split.unwrap() == out);
                *kinds
                    .entry("accepted (as gzip does)".to_string())
                    .or_insert(0) += 1;
            }
            (Err(msg), Err(e)) => {
                let allowed = kinds_allowed_by(msg);
                assert!(
                    allowed.contains(&e.kind()),
                    "bit {bit}: gzip -t says {msg:?}, we say {e}"
                );
                let split = split.expect_err("an error when fed in pieces too");
                assert_eq!(split.kind(), e.kind(), "bit {bit} fed in pieces: {split}");
                let zlib = zlib.expect_err("zlib-rs rejects it too");
                assert_eq!(
                    zlib.kind(),
                    e.kind(),
                    "bit {bit}: zlib-rs says {zlib}, we say {e}"
                );
                *kinds.entry(format!("{:?}", e.kind())).or_insert(0) += 1;
            }
            _ => panic!(
                "bit {bit}: gzip -t says {gzip:?}, we say {:?}",
                whole.map(|r| r.diff_id)
            ),
        }
    }
    eprintln!("{n} flips: {kinds:?}");
}

#[test]
fn bit_flips_in_deflate_data_are_corrupt_as_gzip_t_says() {
    let data = &corpus()[6].1[..120_000];
    // Dynamic blocks (gzip -6), fixed blocks (gzip -1 of short text), stored blocks (random).
    let dynamic = compress("gzip", &["-c", "-n", "-6"], data).unwrap();
    let fixed = compress("gzip", &["-c", "-n", "-1"], b"a short layer: fixed codes\n").unwrap();
    let stored = compress("gzip", &["-c", "-n"], &corpus()[4].1[..20_000]).unwrap();
    // Only the deflate data: between the 10-byte header and the 8-byte trailer.
    flips_agree_with_gzip_t(&dynamic, 10..dynamic.len() - 8, 300, 11);
    flips_agree_with_gzip_t(&fixed, 10..fixed.len() - 8, 60, 12);
    flips_agree_with_gzip_t(&stored, 10..stored.len() - 8, 60, 13);
}

#[test]
fn bit_flips_anywhere_in_a_multi_member_stream_as_gzip_t_says() {
    let data = &corpus()[3].1[..50_000];
    let a = compress("gzip", &["-c", "-n", "-9"], data).unwrap();
    let b = compress("gzip", &["-c", "-n", "-1"], &data[..3000]).unwrap();
    let blob = [&a[..], &b].concat();
    // Not the first member's magic and method (bytes 0..3): without them the blob is not
    // gzip at all and is digested as an uncompressed blob, where gzip -t fails.
    flips_agree_with_gzip_t(&blob, 3..blob.len(), 200, 14);
}

/// ISA-L and zlib-rs give the same verdict (output, or error kind) on corrupt and truncated
/// inputs, however the input is split.
#[cfg(feature = "isal")]
#[test]
fn isal_and_zlib_agree_on_corrupt_and_truncated_inputs() {
    let mut rng = StdRng::seed_from_u64(99);
    let text = &corpus()[3].1;
    let members = [
        compress("gzip", &["-c", "-n", "-6"], &corpus()[6].1[..60_000]).unwrap(),
        compress("gzip", &["-c", "-n", "-9"], &text[..5000]).unwrap(),
        compress("gzip", &["-c", "-n", "-1"], b"fixed codes\n").unwrap(),
        compress("gzip", &["-c", "-n"], &corpus()[4].1[..5000]).unwrap(),
    ];
    let mut differ = Vec::new();
    let mut check = |what: String, bad: &[u8], rng: &mut StdRng| {
        let seed = rng.random();
        let isal =
            decode_split::<Backend>(bad, false, &mut StdRng::seed_from_u64(seed), 3000, 9000);
        let zlib =
            decode_split::<ZlibInflater>(bad, false, &mut StdRng::seed_from_u64(seed), 3000, 9000);
        if !same_verdict(&isal, &zlib) {
            differ.push(format!(
                "{what}: ISA-L {}, zlib-rs {}",
                show(&isal),
                show(&zlib)
            ));
        }
    };
    for (m, blob) in members.iter().enumerate() {
        // Every truncation of the small members, a sample of the large one.
        let step = (blob.len() / 2000).max(1);
        for len in (0..blob.len()).step_by(step) {
            check(format!("member {m} cut at {len}"), &blob[..len], &mut rng);
        }
        for _ in 0..1500 {
            let mut bad = blob.clone();
            let flips = rng.random_range(1..=3);
            for _ in 0..flips {
                let bit = rng.random_range(80..(blob.len() - 8) * 8);
                bad[bit / 8] ^= 1 << (bit % 8);
            }
            check(format!("member {m} with {flips} flips"), &bad, &mut rng);
        }
        for _ in 0..300 {
            let mut bad = blob.clone();
            let at = rng.random_range(10..blob.len());
            let n = rng.random_range(1..=64).min(blob.len() - at);
            rng.fill(&mut bad[at..at + n]);
            check(
                format!("member {m} with {n} random bytes at {at}"),
                &bad,
                &mut rng,
            );
        }
    }
    assert!(
        differ.is_empty(),
        "{} differences:\n{}",
        differ.len(),
        differ.join("\n")
    );
}

/// A member whose one dynamic block has an incomplete literal/length code (two codes of
/// length 2, for 'a' and end-of-block) and holds "aaa". zlib, gzip and containers/image
/// (Go's flate) reject it at the block header.
const INCOMPLETE_CODE: [u8; 31] = [
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x05, 0x80, 0x81, 0x08, 0x00, 0x00,
    0x00, 0x80, 0x58, 0xf7, 0x97, 0x38, 0x40, 0x2d, 0x73, 0x07, 0xf0, 0x03, 0x00, 0x00, 0x00,
];
/// The same with a complete code (lengths 1, 2, 2 for 'a', 'b', end-of-block): valid.
const COMPLETE_CODE: [u8; 32] = [
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x05, 0xc0, 0x01, 0x09, 0x00, 0x00,
    0x00, 0x80, 0xa0, 0xad, 0xf6, 0x7f, 0x44, 0x60, 0x2d, 0x73, 0x07, 0xf0, 0x03, 0x00, 0x00, 0x00,
];

/// Both backends reject an incomplete code as zlib, gzip and Go do (ISA-L through the
/// patched copy in `vendor/isa-l`; ISA-L itself accepts it), however the input and output are
/// cut, and accept the same member with a complete code. `tests/gzip_codes.rs` checks many
/// more codes against containers/image and zlib.
#[test]
fn incomplete_huffman_code_is_rejected_by_both_backends() {
    let mut rng = StdRng::seed_from_u64(5);
    assert!(gzip_t(&INCOMPLETE_CODE).is_err());
    assert!(gzip_t(&COMPLETE_CODE).is_ok());
    for (max_in, max_out) in SPLITS {
        let zlib = decode_split::<ZlibInflater>(&COMPLETE_CODE, false, &mut rng, max_in, max_out);
        let ours = decode_split::<Backend>(&COMPLETE_CODE, false, &mut rng, max_in, max_out);
        assert_eq!(zlib.unwrap(), b"aaa");
        assert_eq!(ours.unwrap(), b"aaa");
        let zlib = decode_split::<ZlibInflater>(&INCOMPLETE_CODE, false, &mut rng, max_in, max_out);
        let ours = decode_split::<Backend>(&INCOMPLETE_CODE, false, &mut rng, max_in, max_out);
        assert_eq!(zlib.unwrap_err().kind(), ErrorKind::Corrupt);
        let ours = ours.unwrap_err();
        assert_eq!(ours.kind(), ErrorKind::Corrupt);
        if cfg!(feature = "isal") {
            assert_eq!(
                ours.message(),
                "incomplete Huffman code in a dynamic block of member 1 (which starts at \
                 byte 0); zlib and containers/image reject it"
            );
            assert_eq!(ours.offset(), Some(0));
        }
    }
}
