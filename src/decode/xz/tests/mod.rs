//! The oracle is the `xz` program (xz-utils): what it decodes we must decode to the same
//! bytes (unless the filter chain is one containers/image rejects), what it rejects we
//! must reject. Inputs are fed in pieces of every size down to one byte and decoded into
//! output buffers down to one byte.

use std::io::Write as _;
use std::process::{Command, Stdio};

use super::block::read_vli;
use super::*;

mod corpus;
mod parallel;

/// A small deterministic generator (xorshift64*), so failures reproduce.
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

/// Compressible but not trivial data: words, runs and random bytes.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let words: [&[u8]; 6] = [
        b"layer ",
        b"diffid ",
        b"tar\n",
        b"\0\0\0\0",
        b"usr/share/",
        b"xz ",
    ];
    let mut rng = Rng(seed | 1);
    let mut v = Vec::with_capacity(len + 16);
    while v.len() < len {
        match rng.below(4) {
            0 => v.extend((0..rng.below(20)).map(|_| rng.next() as u8)),
            _ => v.extend_from_slice(words[rng.below(words.len())]),
        }
    }
    v.truncate(len);
    v
}

/// Runs `xz` with `args`, `input` on stdin; `Some(stdout)` if it exits with status 0.
fn run_xz(args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    let mut child = Command::new("xz")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the xz program must be installed to run these tests");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out.status.success().then_some(out.stdout)
}

fn compress(args: &[&str], data: &[u8]) -> Vec<u8> {
    let mut all = vec!["-c", "-q"];
    all.extend_from_slice(args);
    run_xz(&all, data).unwrap_or_else(|| panic!("xz {args:?} failed"))
}

/// What `xz -dc` makes of `data`, or `None` if it rejects it.
fn xz_dc(data: &[u8]) -> Option<Vec<u8>> {
    run_xz(&["-dc", "-q", "-q"], data)
}

fn full() -> Options {
    Options {
        full_xz: true,
        ..Options::default()
    }
}

#[derive(Clone, Copy, Debug)]
enum Feed {
    /// The whole input in one call, 64 KiB output buffers.
    Whole,
    /// One byte of input per call, output buffers of `out` bytes.
    Bytes { out: usize },
    /// Random input pieces up to `max_in` bytes, random output buffers up to `max_out`.
    Random {
        seed: u64,
        max_in: usize,
        max_out: usize,
    },
}

/// Decodes `data` as the pipeline would: pieces of input, arbitrary output buffers,
/// `finish` at the end. Checks the trait's progress contract on the way.
fn decode_with(data: &[u8], opts: &Options, feed: Feed) -> Result<Vec<u8>> {
    decode_on(data, opts, feed, 0)
}

/// A decoder with `helpers` helper threads (not taken from the process budget).
fn decoder(opts: &Options, helpers: usize) -> Result<XzDecoder> {
    XzDecoder::with_helpers(
        opts,
        Helpers {
            permit: crate::budget::Permit::for_tests(helpers),
            max: helpers,
        },
    )
}

/// [`decode_with`] on a decoder with `helpers` helper threads.
fn decode_on(data: &[u8], opts: &Options, feed: Feed, helpers: usize) -> Result<Vec<u8>> {
    let mut dec = decoder(opts, helpers)?;
    let mut rng = Rng(match feed {
        Feed::Random { seed, .. } => seed | 1,
        _ => 1,
    });
    let piece = |rng: &mut Rng| match feed {
        Feed::Whole => usize::MAX,
        Feed::Bytes { .. } => 1,
        Feed::Random { max_in, .. } => 1 + rng.below(max_in),
    };
    let out_size = |rng: &mut Rng| match feed {
        Feed::Whole => 1 << 16,
        Feed::Bytes { out } => out,
        Feed::Random { max_out, .. } => 1 + rng.below(max_out),
    };
    let mut buf = vec![0u8; 1 << 17];
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let end = pos + piece(&mut rng).min(data.len() - pos);
        let mut chunk = &data[pos..end];
        while !chunk.is_empty() {
            let n = out_size(&mut rng);
            let (c, p) = dec.decode(chunk, &mut buf[..n])?;
            assert!(c > 0 || p > 0, "no progress with input and output space");
            assert!(c <= chunk.len() && p <= n);
            out.extend_from_slice(&buf[..p]);
            chunk = &chunk[c..];
        }
        pos = end;
    }
    loop {
        let n = out_size(&mut rng);
        let (p, done) = dec.finish(&mut buf[..n])?;
        out.extend_from_slice(&buf[..p]);
        if done {
            assert_eq!(p, 0);
            // Finishing again is harmless.
            assert_eq!(dec.finish(&mut buf[..n])?, (0, true));
            return Ok(out);
        }
        assert!(p > 0, "finish neither produced nor finished nor failed");
    }
}

const FEEDS: [Feed; 5] = [
    Feed::Whole,
    Feed::Bytes { out: 1 },
    Feed::Bytes { out: 4096 },
    Feed::Random {
        seed: 7,
        max_in: 300,
        max_out: 300,
    },
    Feed::Random {
        seed: 11,
        max_in: 70_000,
        max_out: 70_000,
    },
];

/// Decodes `data` with every feed; each must give `expected`.
fn assert_decodes(data: &[u8], opts: &Options, expected: &[u8]) {
    for feed in FEEDS {
        match decode_with(data, opts, feed) {
            Ok(out) => assert!(
                out == expected,
                "{feed:?}: wrong output ({} bytes)",
                out.len()
            ),
            Err(e) => panic!("{feed:?}: {e}"),
        }
    }
}

/// Decodes `data` with every feed; each must fail with `kind`. Returns the first error.
fn assert_fails(data: &[u8], opts: &Options, kind: ErrorKind) -> Error {
    let mut first = None;
    for feed in FEEDS {
        match decode_with(data, opts, feed) {
            Ok(_) => panic!("{feed:?}: decoded, expected {kind:?}"),
            Err(e) => {
                assert_eq!(e.kind(), kind, "{feed:?}: {e}");
                assert!(e.offset().is_some(), "{feed:?}: no offset in {e}");
                if let Some(f) = &first {
                    assert_eq!(&e, f, "{feed:?}: the error depends on the feed");
                }
                first.get_or_insert(e);
            }
        }
    }
    first.unwrap()
}

#[test]
fn checks_and_block_layouts_round_trip() {
    let big = payload(200_000, 1);
    let inputs: [&[u8]; 3] = [b"", b"x", &big];
    for data in inputs {
        for check in ["none", "crc32", "crc64", "sha256"] {
            let check_arg = format!("--check={check}");
            let layouts: [&[&str]; 3] = [
                &["-6"],
                &["-1", "-T1", "--block-size=20000"],
                &["-1", "-T2", "--block-size=30000"],
            ];
            for layout in layouts {
                let mut args = layout.to_vec();
                args.push(&check_arg);
                let xz = compress(&args, data);
                assert_eq!(xz_dc(&xz).as_deref(), Some(data), "xz itself disagrees");
                assert_decodes(&xz, &Options::default(), data);
                assert_decodes(&xz, &full(), data);
            }
        }
    }
}

#[test]
fn many_small_blocks() {
    let data = payload(300_000, 2);
    let xz = compress(&["-0", "-T2", "--block-size=1000"], &data);
    assert_decodes(&xz, &Options::default(), &data);
}

#[test]
fn concatenated_streams_and_padding() {
    let a = payload(50_000, 3);
    let b = payload(20_000, 4);
    let xa = compress(&["--check=crc32"], &a);
    let xb = compress(&["--check=sha256", "-T2", "--block-size=5000"], &b);
    let xe = compress(&[], b"");
    let ab: Vec<u8> = [a.clone(), b.clone()].concat();
    let cat = |parts: &[&[u8]]| parts.concat();
    let z4 = [0u8; 4];
    let z8 = [0u8; 8];
    let good: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (cat(&[&xa, &xb]), ab.clone()),
        (cat(&[&xa, &z4, &xb]), ab.clone()),
        (cat(&[&xa, &z8, &xb, &z4]), ab.clone()),
        (cat(&[&xa, &z8]), a.clone()),
        (cat(&[&xe, &xa, &xe, &z4, &xe, &xb, &xe]), ab.clone()),
        (cat(&[&xe, &z4]), Vec::new()),
    ];
    for (xz, expected) in &good {
        assert_eq!(xz_dc(xz).as_ref(), Some(expected));
        assert_decodes(xz, &Options::default(), expected);
    }

    // Padding that is not a multiple of 4 bytes, at the end or between streams.
    for n in [1, 2, 3, 5, 7] {
        let zeros = vec![0u8; n];
        for xz in [cat(&[&xa, &zeros]), cat(&[&xa, &zeros, &xb])] {
            assert_eq!(xz_dc(&xz), None);
            let e = assert_fails(&xz, &Options::default(), ErrorKind::Corrupt);
            assert!(
                e.message()
                    .contains("stream padding is not a multiple of 4 bytes"),
                "{e}"
            );
            assert_eq!(e.offset(), Some(xa.len() as u64), "{e}");
        }
    }

    // Anything that is neither padding nor a stream.
    for tail in [
        &b"garbage"[..],
        &[0, 0, 0, 0, 1],
        &[0xfd, b'7', b'z', b'X', b'Y'],
        &[1],
    ] {
        let xz = cat(&[&xa, tail]);
        assert_eq!(xz_dc(&xz), None);
        let e = assert_fails(&xz, &Options::default(), ErrorKind::TrailingData);
        let first = tail.iter().position(|&b| b != 0).unwrap();
        assert_eq!(e.offset(), Some((xa.len() + first) as u64), "{e}");
        assert!(e.message().contains("after the end of stream 1"), "{e}");
    }
    // A stream that starts but ends early is truncated, not trailing data.
    let xz = cat(&[&xa, &z4, &xb[..3]]);
    let e = assert_fails(&xz, &Options::default(), ErrorKind::Truncated);
    assert!(e.message().contains("stream 2"), "{e}");
}

#[test]
fn every_truncation_fails() {
    let data = payload(3000, 5);
    let one = compress(&["-T2", "--block-size=1000", "--check=crc64"], &data);
    let two = [one.clone(), compress(&["--check=none"], b"abc")].concat();
    for xz in [&one, &two] {
        for len in 0..xz.len() {
            if len == one.len() && xz.len() > len {
                // `two` cut right after its first stream is a valid file.
                assert_eq!(
                    decode_with(&xz[..len], &Options::default(), Feed::Whole).unwrap(),
                    data
                );
                continue;
            }
            for feed in [Feed::Whole, Feed::Bytes { out: 1 }] {
                match decode_with(&xz[..len], &Options::default(), feed) {
                    Ok(_) => panic!("prefix of {len} bytes decoded"),
                    Err(e) => assert_eq!(e.kind(), ErrorKind::Truncated, "len {len}: {e}"),
                }
            }
        }
    }
}

#[test]
fn filter_chains_need_full_xz() {
    let data = payload(100_000, 6);
    let cases: [(&[&str], &str); 5] = [
        (&["--x86", "--lzma2"], "BCJ x86 + LZMA2"),
        (&["--delta=dist=4", "--lzma2"], "delta + LZMA2"),
        (&["--arm64", "--lzma2"], "BCJ ARM64 + LZMA2"),
        (
            &["--x86", "--delta", "--lzma2=preset=1"],
            "BCJ x86 + delta + LZMA2",
        ),
        (
            &["-T2", "--block-size=30000", "--arm", "--lzma2"],
            "BCJ ARM + LZMA2",
        ),
    ];
    for (args, chain) in cases {
        let xz = compress(args, &data);
        let e = assert_fails(&xz, &Options::default(), ErrorKind::Unsupported);
        let want = format!(
            "unsupported filter chain ({chain}) at block 1 of stream 1; decode it with option full_xz"
        );
        assert_eq!(e.message(), want);
        assert_eq!(e.offset(), Some(12));
        assert_decodes(&xz, &full(), &data);
    }
    // The chain of a later block, in a later stream.
    let plain = compress(&["-T2", "--block-size=30000"], &data);
    let bcj = compress(&["-T2", "--block-size=30000", "--x86", "--lzma2"], &data);
    let xz = [plain.clone(), bcj].concat();
    let e = assert_fails(&xz, &Options::default(), ErrorKind::Unsupported);
    assert!(e.message().contains("at block 1 of stream 2"), "{e}");
    assert_eq!(e.offset(), Some(plain.len() as u64 + 12));
}

#[test]
fn memory_limit() {
    let data = payload(10_000, 7);
    let xz = compress(&["--lzma2=dict=64MiB"], &data);
    let small = Options {
        decoder_memory_limit: 1 << 20,
        ..Options::default()
    };
    let e = assert_fails(&xz, &small, ErrorKind::LimitExceeded);
    assert!(e.message().contains("block 1 of stream 1 needs"), "{e}");
    assert_decodes(&xz, &Options::default(), &data);
    let exact = Options {
        decoder_memory_limit: 64 << 20,
        ..Options::default()
    };
    assert_fails(&xz, &exact, ErrorKind::LimitExceeded);
    let enough = Options {
        decoder_memory_limit: 65 << 20,
        ..Options::default()
    };
    assert_decodes(&xz, &enough, &data);
}

/// Sets the check ID of the (first) stream header and footer and fixes their CRC32s.
fn set_check(xz: &mut [u8], id: u8) {
    xz[7] = id;
    let crc = crc32fast::hash(&xz[6..8]);
    xz[8..12].copy_from_slice(&crc.to_le_bytes());
    let f = xz.len() - 12;
    xz[f + 9] = id;
    let crc = crc32fast::hash(&xz[f + 4..f + 10]);
    xz[f..f + 4].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn unknown_check_types_are_unsupported() {
    // An empty stream, so that only the flags say which check there is.
    let good = compress(&["--check=crc32"], b"");
    for id in (0..16).filter(|id| ![0, 1, 4, 10].contains(id)) {
        let mut xz = good.clone();
        set_check(&mut xz, id);
        let e = assert_fails(&xz, &Options::default(), ErrorKind::Unsupported);
        assert!(
            e.message().contains(&format!("check type 0x{id:02x}")),
            "{e}"
        );
        assert_fails(&xz, &full(), ErrorKind::Unsupported);
    }
    for id in [0, 1, 4, 10] {
        let mut xz = good.clone();
        set_check(&mut xz, id);
        assert_decodes(&xz, &Options::default(), b"");
    }
}

/// Where the index of a single-stream file starts, from its footer's Backward Size.
fn index_range(xz: &[u8]) -> std::ops::Range<usize> {
    let f = xz.len() - 12;
    let size = (u32::from_le_bytes(xz[f + 4..f + 8].try_into().unwrap()) as usize + 1) * 4;
    f - size..f
}

fn fix_index_crc(xz: &mut [u8]) {
    let r = index_range(xz);
    let crc = crc32fast::hash(&xz[r.start..r.end - 4]);
    xz[r.end - 4..r.end].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn index_must_match_the_blocks() {
    // Two blocks of different sizes; the index records are located by reading the index.
    let data = payload(40_000, 8);
    let xz = compress(&["-0", "-T2", "--block-size=30000", "--check=crc32"], &data);
    let r = index_range(&xz);
    let mut pos = r.start + 1;
    let count = read_vli(&xz, &mut pos).unwrap();
    assert_eq!(count, 2);
    let mut fields = Vec::new();
    for _ in 0..4 {
        let start = pos;
        let v = read_vli(&xz, &mut pos).unwrap();
        fields.push((start..pos, v));
    }
    assert_decodes(&xz, &Options::default(), &data);

    // A wrong uncompressed size (same encoded length: flip a low bit).
    let mut bad = xz.clone();
    bad[fields[1].0.start] ^= 1;
    fix_index_crc(&mut bad);
    let e = assert_fails(&bad, &Options::default(), ErrorKind::Corrupt);
    assert_eq!(
        e.message(),
        "the uncompressed sizes in the index of stream 1 do not match its blocks"
    );

    // A wrong unpadded size.
    let mut bad = xz.clone();
    bad[fields[0].0.start] ^= 4;
    fix_index_crc(&mut bad);
    let e = assert_fails(&bad, &Options::default(), ErrorKind::Corrupt);
    assert!(e.message().contains("unpadded sizes"), "{e}");

    // The two records swapped: the sums agree, the order does not.
    let (u1, c1) = (
        &xz[fields[0].0.start..fields[1].0.end],
        &xz[fields[2].0.start..fields[3].0.end],
    );
    let swapped: Vec<u8> = [c1, u1].concat();
    let mut bad = xz.clone();
    bad[fields[0].0.start..fields[3].0.end].copy_from_slice(&swapped);
    fix_index_crc(&mut bad);
    let e = assert_fails(&bad, &Options::default(), ErrorKind::Corrupt);
    assert_eq!(
        e.message(),
        "the index records of stream 1 do not match its blocks"
    );
    assert_eq!(xz_dc(&bad), None);

    // A wrong record count.
    let mut bad = xz.clone();
    bad[r.start + 1] = 3;
    fix_index_crc(&mut bad);
    let e = assert_fails(&bad, &Options::default(), ErrorKind::Corrupt);
    assert!(
        e.message().contains("lists 3 blocks but the stream has 2"),
        "{e}"
    );

    // The index CRC32.
    let mut bad = xz.clone();
    bad[r.end - 1] ^= 0x80;
    let e = assert_fails(&bad, &Options::default(), ErrorKind::Corrupt);
    assert_eq!(e.message(), "index CRC32 mismatch in stream 1");
}

/// Every single-byte change of a small file: we accept exactly what xz accepts, and then
/// produce exactly what it produces.
#[test]
fn mutations_agree_with_xz() {
    let data = payload(600, 9);
    let files = [
        compress(&["--check=crc64"], &data),
        compress(&["--check=none", "-T2", "--block-size=300"], &data),
    ];
    for xz in &files {
        for i in 0..xz.len() {
            for bit in [0x01, 0x80] {
                let mut m = xz.clone();
                m[i] ^= bit;
                let ours = decode_with(&m, &full(), Feed::Whole);
                let theirs = xz_dc(&m);
                match (&ours, &theirs) {
                    (Ok(a), Some(b)) => assert!(a == b, "byte {i} ^ {bit:#x}: outputs differ"),
                    (Err(_), None) => {}
                    _ => panic!(
                        "byte {i} ^ {bit:#x}: we say {:?}, xz says {}",
                        ours.as_ref().map(|v| v.len()),
                        if theirs.is_some() { "ok" } else { "error" }
                    ),
                }
                // The same answer whatever the feed.
                let bytewise = decode_with(&m, &full(), Feed::Bytes { out: 1 });
                assert_eq!(ours.is_ok(), bytewise.is_ok(), "byte {i} ^ {bit:#x}");
                if let (Err(a), Err(b)) = (&ours, &bytewise) {
                    assert_eq!(a.kind(), b.kind(), "byte {i} ^ {bit:#x}: {a} vs {b}");
                }
            }
        }
    }
}

#[test]
fn errors_stick_and_offsets_are_given() {
    let data = payload(5000, 10);
    let mut xz = compress(&["--check=crc32"], &data);
    let r = index_range(&xz);
    // The check of the only block is the 4 bytes before the index.
    xz[r.start - 1] ^= 0xff;
    let e = assert_fails(&xz, &Options::default(), ErrorKind::Corrupt);
    assert!(
        e.message()
            .starts_with("integrity check (CRC32) mismatch at block 1 of stream 1"),
        "{e}"
    );
    // At the check field's first byte.
    assert_eq!(e.offset(), Some(r.start as u64 - 4));
    let mut dec = XzDecoder::new(&Options::default()).unwrap();
    let mut out = vec![0; 1 << 16];
    let mut first = None;
    let mut input = &xz[..];
    while !input.is_empty() {
        match dec.decode(input, &mut out) {
            Ok((c, _)) => input = &input[c..],
            Err(e) => {
                first = Some(e);
                break;
            }
        }
    }
    let first = first.expect("decoding must fail");
    assert_eq!(dec.decode(b"more", &mut out), Err(first.clone()));
    assert_eq!(dec.finish(&mut out), Err(first));
}

#[test]
fn dropping_mid_block_is_fine() {
    let data = payload(100_000, 12);
    let xz = compress(&["-9"], &data);
    for _ in 0..20 {
        let mut dec = XzDecoder::new(&Options::default()).unwrap();
        let mut out = vec![0; 1000];
        let (_, produced) = dec.decode(&xz[..xz.len() / 2], &mut out).unwrap();
        // It was mid-block, with output to give: dropping it now must not hang or leak.
        assert!(produced > 0);
        assert_eq!(out[..produced], data[..produced]);
    }
}

/// Not a test: decoding speed against `xz -dc -T1` on 64 MiB
/// (`cargo test --release --lib decode::xz::tests::speed -- --ignored --nocapture`).
#[test]
#[ignore]
fn speed() {
    let data = payload(64 << 20, 13);
    let xz = compress(&["-3", "-T2", "--block-size=8MiB"], &data);
    let t = std::time::Instant::now();
    let theirs = xz_dc(&xz).unwrap();
    let xz_time = t.elapsed();
    let t = std::time::Instant::now();
    let ours = decode_with(&xz, &Options::default(), Feed::Whole).unwrap();
    let our_time = t.elapsed();
    assert!(ours == theirs && ours == data);
    println!(
        "{} -> {} bytes: xz -dc {xz_time:?}, ours {our_time:?}",
        xz.len(),
        data.len()
    );
}
