//! The parallel decoder against the sequential one (which the compat tests hold to
//! containers/image and the `bzip2` program): the same output and the same errors, on
//! inputs the `bzip2` program makes, cut right, cut wrong, corrupt and truncated.

use std::collections::VecDeque;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;

use super::forge::{BitWriter, bz_crc, decode_piece, forge_crc, synthetic_prefix};
use super::scan::{BLOCK_MAGIC, EOS_MAGIC, bits, scan};
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
        b"bzip2 ",
        b"\0\0\0\0\0\0\0\0",
        b"usr/",
        b"block\n",
    ];
    let mut rng = Rng(seed | 1);
    let mut v = Vec::with_capacity(len + 32);
    while v.len() < len {
        match rng.below(3) {
            0 => v.extend((0..rng.below(40)).map(|_| rng.next() as u8)),
            _ => v.extend_from_slice(words[rng.below(words.len())]),
        }
    }
    v.truncate(len);
    v
}

fn bzip2(args: &[&str], data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("bzip2")
        .args(["-c", "-q"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the bzip2 program must be installed to run these tests");
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "bzip2 {args:?} failed");
    out.stdout
}

#[derive(Clone, Copy, Debug, Default)]
struct Setup {
    helpers: usize,
    fake_cuts: u64,
    no_merge: bool,
}

fn decoder(setup: Setup) -> Box<dyn Decode> {
    if setup.helpers == 0 {
        return Box::new(Bzip2Decoder::new());
    }
    let mut d = ParBzip2Decoder::new(Helpers {
        permit: Permit::for_tests(setup.helpers),
        max: setup.helpers,
    })
    .unwrap();
    d.fake_cuts = setup.fake_cuts;
    d.no_merge = setup.no_merge;
    Box::new(d)
}

/// Feeds `data` in random pieces of up to `max_in` bytes into random output buffers of up
/// to `max_out`, checking the trait's progress contract.
fn decode(data: &[u8], setup: Setup, seed: u64, max_in: usize, max_out: usize) -> Result<Vec<u8>> {
    let mut dec = decoder(setup);
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

const FEEDS: [(u64, usize, usize); 3] = [
    (1, usize::MAX / 2, 1 << 16),
    (2, 3000, 2000),
    (3, 300_000, 200_000),
];

const SETUPS: [Setup; 4] = [
    Setup {
        helpers: 1,
        fake_cuts: 0,
        no_merge: false,
    },
    Setup {
        helpers: 3,
        fake_cuts: 0,
        no_merge: false,
    },
    // Many false cuts: pieces that do not decode, merged with the next ones.
    Setup {
        helpers: 2,
        fake_cuts: 20_011,
        no_merge: false,
    },
    // The same without merging: the rest of each stream streams from where it failed.
    Setup {
        helpers: 2,
        fake_cuts: 200_003,
        no_merge: true,
    },
];

/// Sequential and parallel decoding agree, output and errors alike.
fn assert_same(data: &[u8], feeds: &[(u64, usize, usize)], setups: &[Setup]) -> Result<Vec<u8>> {
    let mut first = None;
    for &(seed, max_in, max_out) in feeds {
        let max_in = max_in.min(data.len().max(1));
        let seq = decode(data, Setup::default(), seed, max_in, max_out);
        for &setup in setups {
            let par = decode(data, setup, seed, max_in, max_out);
            match (&seq, &par) {
                (Ok(a), Ok(b)) => assert!(a == b, "feed {seed}, {setup:?}: outputs differ"),
                _ => assert_eq!(seq, par, "feed {seed}, {setup:?}"),
            }
        }
        first.get_or_insert(seq);
    }
    first.unwrap()
}

#[test]
fn crc_and_forging() {
    let data = b"hello, bzip2";
    let z = bzip2(&["-9"], data);
    // The block CRC follows the 48-bit block magic after the 4-byte header.
    assert_eq!(bits(&z, 32, 48), BLOCK_MAGIC);
    assert_eq!(bits(&z, 80, 32) as u32, bz_crc(data));
    let mut rng = Rng(9);
    for len in [0, 1, 5, 100] {
        let prefix: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        for target in [0, 1, 0xdead_beef, rng.next() as u32] {
            let mut v = prefix.clone();
            v.extend_from_slice(&forge_crc(&prefix, target));
            assert_eq!(bz_crc(&v), target);
        }
    }
}

#[test]
fn synthetic_prefixes_exist_for_every_alignment() {
    let mut rng = Rng(10);
    for align in 0..8 {
        for _ in 0..3 {
            let crc = rng.next() as u32;
            let (head, head_bits, skip) = synthetic_prefix(9, crc, align).unwrap();
            assert_eq!(head_bits % 8, align);
            assert_eq!(&head[..4], b"BZh9");
            assert!(skip >= 4);
            // Completed as a stream, it decodes, to `skip` bytes whose CRC is `crc`.
            let mut w = BitWriter::with_capacity(head.len() + 16);
            w.copy(&head, 0, head_bits);
            w.put(EOS_MAGIC >> 16, 32);
            w.put(EOS_MAGIC & 0xffff, 16);
            w.put(u64::from(crc), 32);
            let mut out = Vec::new();
            decode_piece(&w.out, &mut out, &AtomicBool::new(false)).unwrap();
            assert_eq!(out.len(), skip);
            assert_eq!(bz_crc(&out), crc);
        }
    }
}

#[test]
fn scan_finds_magics_at_every_bit_offset() {
    for shift in 0..8u64 {
        let mut w = BitWriter::with_capacity(64);
        w.put(0b1011_0110, shift as u32);
        w.put(BLOCK_MAGIC >> 16, 32);
        w.put(BLOCK_MAGIC & 0xffff, 16);
        w.put(0x55, 13);
        w.put(EOS_MAGIC >> 16, 32);
        w.put(EOS_MAGIC & 0xffff, 16);
        w.put(0, 32);
        let mut found = VecDeque::new();
        let total = w.out.len() as u64 * 8;
        scan(&w.out, 0, total - 47, &mut found);
        assert_eq!(found, [shift, shift + 48 + 13], "shift {shift}");
    }
}

#[test]
fn blocks_decode_as_sequential() {
    let data = payload(700_000, 1);
    let zeros = vec![0u8; 3_000_000];
    let cases = [
        bzip2(&["-1"], &data),
        bzip2(&["-9"], &data),
        bzip2(&["-2"], &data[..1000]),
        bzip2(&["-1"], b""),
        // Long runs: blocks that decode to far more than their size.
        bzip2(&["-1"], &zeros),
        // Several streams, one per block as pbzip2 writes them, and empty ones.
        data.chunks(90_000)
            .flat_map(|c| bzip2(&["-1"], c))
            .collect(),
        [
            bzip2(&["-3"], &data),
            bzip2(&[], b""),
            bzip2(&["-1"], &data[..300_000]),
        ]
        .concat(),
    ];
    for (i, z) in cases.iter().enumerate() {
        assert_same(z, &FEEDS, &SETUPS).unwrap_or_else(|e| panic!("case {i}: {e}"));
    }
}

#[test]
fn wrong_cuts_are_merged_or_streamed() {
    let data = payload(400_000, 2);
    let z = bzip2(&["-1"], &data);
    for (fake_cuts, no_merge) in [(5003, false), (300_007, false), (100_003, true), (7, true)] {
        let setup = Setup {
            helpers: 2,
            fake_cuts,
            no_merge,
        };
        let mut d = ParBzip2Decoder::new(Helpers {
            permit: Permit::for_tests(2),
            max: 2,
        })
        .unwrap();
        d.fake_cuts = fake_cuts;
        d.no_merge = no_merge;
        let mut out = vec![0; 1 << 22];
        let (c, p) = d.decode(&z, &mut out).unwrap();
        assert_eq!(c, z.len());
        let mut all = out[..p].to_vec();
        loop {
            let (p, done) = d.finish(&mut out).unwrap();
            all.extend_from_slice(&out[..p]);
            if done {
                break;
            }
        }
        assert!(all == data, "{setup:?}");
        // A few false cuts per block are merged away; with many, the pieces cut ahead
        // do not reach the block's end, and the stream streams.
        if fake_cuts == 300_007 && !no_merge {
            assert!(d.merged > 0, "{setup:?}");
        }
        assert_same(&z, &FEEDS[..2], &[setup]).unwrap();
    }
}

#[test]
fn bad_inputs_fail_as_sequential() {
    let data = payload(250_000, 3);
    let z = bzip2(&["-1"], &data);
    let cat = |parts: &[&[u8]]| parts.concat();
    let cases = [
        cat(&[&z, b"junk"]),
        cat(&[&z, &[0; 4]]),
        cat(&[&z, b"BZ"]),
        cat(&[&z, b"BZh"]),
        cat(&[&z, b"BZh0"]),
        cat(&[&z, b"BZh9"]),
        cat(&[&z, &z[..z.len() / 2]]),
        b"BZh0".to_vec(),
        b"BZh9".to_vec(),
        b"BZh".to_vec(),
        b"BZh91AY&SY".to_vec(),
    ];
    for (i, bad) in cases.iter().enumerate() {
        assert!(assert_same(bad, &FEEDS, &SETUPS).is_err(), "case {i}");
    }
}

#[test]
fn truncations_fail_as_sequential() {
    let data = payload(300_000, 4);
    let z = [
        bzip2(&["-1"], &data[..150_000]),
        bzip2(&["-1"], &data[150_000..]),
    ]
    .concat();
    let feeds = [(1, usize::MAX / 2, 1 << 16), (2, 5000, 70_000)];
    for len in (0..z.len()).step_by(997).chain(z.len() - 30..z.len()) {
        let r = assert_same(&z[..len], &feeds, &SETUPS[..2]);
        assert!(r.is_err() || len == z.len() / 2, "len {len}");
    }
}

#[test]
fn corruptions_fail_as_sequential() {
    let data = payload(300_000, 5);
    let z = bzip2(&["-1"], &data);
    let feeds = [(1, usize::MAX / 2, 1 << 16), (2, 20_000, 50_000)];
    let mut rng = Rng(6);
    let mut failed = 0;
    for _ in 0..60 {
        let mut bad = z.clone();
        let i = rng.below(bad.len());
        bad[i] ^= 1 << rng.below(8);
        if assert_same(&bad, &feeds, &SETUPS[..3]).is_err() {
            failed += 1;
        }
    }
    assert!(failed > 50, "only {failed} of 60 corruptions detected");
}

#[test]
fn dropping_mid_stream_is_fine() {
    let data = payload(500_000, 7);
    let z = bzip2(&["-1"], &data);
    for cut in [z.len() / 3, z.len() - 10] {
        let mut d = decoder(SETUPS[1]);
        let mut out = vec![0; 1000];
        let mut got = Vec::new();
        let mut input = &z[..cut];
        while !input.is_empty() {
            let (c, p) = d.decode(input, &mut out).unwrap();
            got.extend_from_slice(&out[..p]);
            input = &input[c..];
        }
        // What came out before the drop is the payload's start; the drop (end of this
        // iteration) must stop the helpers without hanging.
        assert_eq!(got[..], data[..got.len()]);
    }
}

/// containers/image's verdict (the Go reference, `DIFFID_ORACLE` or `target/oracle/oracle`)
/// and whether `bzip2 -t` accepts, on `data`.
fn references(data: &[u8]) -> (serde_json::Value, bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blob.bz2");
    std::fs::write(&path, data).unwrap();
    let oracle = std::env::var_os("DIFFID_ORACLE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/oracle/oracle")
        });
    let out = Command::new(&oracle)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("the Go reference {oracle:?} (make oracle): {e}"));
    let go = serde_json::from_slice(&out.stdout).expect("the Go reference's JSON");
    let c_ok = Command::new("bzip2")
        .arg("-t")
        .arg(&path)
        .stderr(Stdio::null())
        .status()
        .expect("the bzip2 program")
        .success();
    (go, c_ok)
}

/// A block holding `text` as the `bzip2` program would (canonical run lengths).
fn good(text: &[u8]) -> craft::Block {
    craft::Block::plain(&craft::rle1(text))
}

/// Each condition under which Go's `compress/bzip2` refuses a block that libbzip2 decodes
/// (see `gocheck.rs`): `bzip2 -t` accepts it, containers/image refuses it, and so do we, on
/// the sequential and the parallel paths alike, alone and among good blocks.
#[test]
fn blocks_containers_image_refuses_are_refused() {
    use craft::{Block, complete_lengths};
    let text = payload(2000, 11);
    let alphabet = |pre: &[u8]| {
        let mut used = [false; 256];
        pre.iter().for_each(|&c| used[usize::from(c)] = true);
        used.iter().filter(|&&u| u).count() + 2
    };
    let short = craft::rle1(&text[..500]);
    let m = alphabet(&short);
    // A complete code with one length made longer: a hole that libbzip2's canonical codes
    // leave at the end and Go's at the start.
    let mut incomplete = complete_lengths(m);
    incomplete[0] += 1;
    let bad = |name: &str| match name {
        "randomised" => Block {
            randomised: true,
            ..Block::plain(&short)
        },
        "run count 0 then the run's byte" => {
            Block::plain(&[&short[..], b"qqqq\0qqq!tail"].concat())
        }
        "over-full table, unused" => Block {
            tables: vec![None, Some(vec![1; m])],
            ..Block::plain(&short)
        },
        _ => Block {
            tables: vec![Some(incomplete.clone()), None],
            ..Block::plain(&short)
        },
    };
    let cases = [
        ("randomised", "deprecated randomized files"),
        ("run count 0 then the run's byte", "block checksum mismatch"),
        ("over-full table, unused", "equal symbols in Huffman tree"),
        ("incomplete table, used", ""),
    ];
    for (name, go_says) in cases {
        let alone = craft::stream(9, &[bad(name)]);
        let (go, c_ok) = references(&alone);
        assert!(c_ok, "{name}: bzip2 -t accepts it");
        let go_err = go["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: Go accepts: {go}"));
        assert!(go_err.contains(go_says), "{name}: Go says {go_err}");
        let e = assert_same(&alone, &FEEDS, &SETUPS).expect_err(name);
        assert_eq!(e.kind(), ErrorKind::Corrupt, "{name}: {e}");
        assert!(e.to_string().contains("containers/image"), "{name}: {e}");
        assert_eq!(e.offset(), Some(4), "{name}: the block's start");
        // Among good blocks, where the parallel decoder cuts the stream into blocks.
        let mixed = craft::stream(
            9,
            &[
                good(&text[..700]),
                good(&text[700..1400]),
                bad(name),
                good(&text[1400..]),
            ],
        );
        let (go, c_ok) = references(&mixed);
        assert!(c_ok && go.get("error").is_some(), "{name}, mixed: {go}");
        let e = assert_same(&mixed, &FEEDS, &SETUPS).expect_err(name);
        assert!(e.to_string().contains("containers/image"), "{name}: {e}");
    }
}

/// What both accept stays accepted: a count of 0 followed by the run's byte where Go's output
/// is libbzip2's all the same (at the block's end), and an incomplete table no group uses.
#[test]
fn blocks_both_accept_are_decoded() {
    use craft::{Block, complete_lengths};
    let text = payload(2000, 12);
    let short = craft::rle1(&text[..500]);
    let mut used = [false; 256];
    short.iter().for_each(|&c| used[usize::from(c)] = true);
    let m = used.iter().filter(|&&u| u).count() + 2;
    let mut incomplete = complete_lengths(m);
    incomplete[0] += 1;
    let cases = [
        Block::plain(&[&short[..], b"qqqq\0q"].concat()),
        Block {
            tables: vec![None, Some(incomplete)],
            ..Block::plain(&short)
        },
    ];
    for (i, b) in cases.into_iter().enumerate() {
        let expected = craft::libbzip2_output(&b.pre_rle);
        let data = craft::stream(9, &[good(&text[..900]), b, good(&text[900..])]);
        let (go, c_ok) = references(&data);
        assert!(c_ok, "case {i}: bzip2 -t");
        assert!(go.get("error").is_none(), "case {i}: Go: {go}");
        let out = assert_same(&data, &FEEDS, &SETUPS).unwrap();
        assert_eq!(out, bzip2(&["-d"], &data), "case {i}: as bzip2 -d");
        assert!(
            out.windows(expected.len()).any(|w| w == expected),
            "case {i}"
        );
        assert_eq!(
            go["diff_size"].as_u64(),
            Some(out.len() as u64),
            "case {i}: Go's size"
        );
    }
}
