//! Parallel decoding: the same output and the same errors as the sequential decoder.

use super::corpus::corpus;
use super::*;

/// Decodes `data` sequentially and in parallel with each feed; the results must be equal,
/// errors included (kind, message and offset). Returns the sequential result.
fn assert_parallel_same(data: &[u8], opts: &Options, feeds: &[Feed]) -> Result<Vec<u8>> {
    let mut first = None;
    for &feed in feeds {
        let seq = decode_on(data, opts, feed, 0);
        for helpers in [1, 3] {
            let par = decode_on(data, opts, feed, helpers);
            match (&seq, &par) {
                (Ok(a), Ok(b)) => {
                    assert!(a == b, "{feed:?}, {helpers} helpers: outputs differ")
                }
                _ => assert_eq!(seq, par, "{feed:?}, {helpers} helpers"),
            }
        }
        first.get_or_insert(seq);
    }
    first.unwrap()
}

#[test]
fn parallel_blocks_decode_as_sequential() {
    let big = payload(400_000, 21);
    for data in [&big[..], b"", b"x"] {
        for args in [
            &["-1", "-T2", "--block-size=20000", "--check=crc64"][..],
            &["-0", "-T2", "--block-size=1000", "--check=sha256"],
            &["-1", "-T2", "--block-size=65536", "--check=none"],
            &["-1", "-T2", "--block-size=30000", "--check=crc32"],
            // Single-threaded: no sizes in the headers, decoded as they stream in.
            &["-1", "-T1", "--block-size=30000"],
            &["-6"],
        ] {
            let xz = compress(args, data);
            let out = assert_parallel_same(&xz, &Options::default(), &FEEDS).unwrap();
            assert!(out == data, "{args:?}");
        }
    }
}

#[test]
fn parallel_mixed_streams_padding_and_trailing_data() {
    let a = payload(150_000, 22);
    let b = payload(90_000, 23);
    let xa = compress(&["-0", "-T2", "--block-size=10000"], &a);
    let xb = compress(&["-0", "-T1", "--block-size=20000", "--check=sha256"], &b);
    let xc = compress(&["-0", "-T2", "--block-size=7000", "--check=none"], &b);
    let xe = compress(&[], b"");
    let cat = |parts: &[&[u8]]| parts.concat();
    let z4 = [0u8; 4];
    let inputs = [
        cat(&[&xa, &xb, &xc]),
        cat(&[&xa, &z4, &xe, &xc, &z4, &z4]),
        cat(&[&xc, &xa, &[0, 0]]),
        cat(&[&xa, b"garbage"]),
        cat(&[&xa, &z4, &xc[..xc.len() - 5]]),
        cat(&[&xa, &xa[..100]]),
    ];
    for xz in &inputs {
        let ours = assert_parallel_same(xz, &Options::default(), &FEEDS);
        assert_eq!(ours.is_ok(), xz_dc(xz).is_some());
    }
}

#[test]
fn parallel_truncations_fail_as_sequential() {
    let data = payload(60_000, 24);
    let xz = compress(&["-0", "-T2", "--block-size=5000", "--check=crc32"], &data);
    let feeds = [
        Feed::Whole,
        Feed::Random {
            seed: 5,
            max_in: 3000,
            max_out: 5000,
        },
    ];
    for len in (0..xz.len()).step_by(23).chain(xz.len() - 40..xz.len()) {
        let e = assert_parallel_same(&xz[..len], &Options::default(), &feeds).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Truncated, "len {len}: {e}");
    }
}

#[test]
fn parallel_corruption_fails_as_sequential() {
    let data = payload(40_000, 25);
    let xz = compress(&["-0", "-T2", "--block-size=4000", "--check=crc64"], &data);
    let feeds = [
        Feed::Whole,
        Feed::Random {
            seed: 3,
            max_in: 2000,
            max_out: 9000,
        },
    ];
    let mut rng = Rng(26);
    let mut failures = 0;
    for _ in 0..300 {
        let mut bad = xz.clone();
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(bad.len());
            bad[i] ^= 1 << rng.below(8);
        }
        if assert_parallel_same(&bad, &full(), &feeds).is_err() {
            failures += 1;
        }
    }
    assert!(
        failures > 250,
        "only {failures} of 300 corruptions detected"
    );
}

#[test]
fn parallel_respects_the_memory_limit() {
    let data = payload(300_000, 27);
    let xz = compress(&["-0", "-T2", "--block-size=50000"], &data);
    // -0 needs some 300 KiB of decoder memory per block: each limit lets fewer blocks,
    // or none, be in flight (or rejects the file); the result is the same.
    let mut verdicts = Vec::new();
    for limit in [100_000, 400_000, 700_000, 1_000_000, 1_500_000, 1 << 30] {
        let opts = Options {
            decoder_memory_limit: limit,
            ..Options::default()
        };
        verdicts.push(assert_parallel_same(&xz, &opts, &[Feed::Whole]).is_ok());
    }
    assert_eq!(verdicts, [false, true, true, true, true, true]);
}

#[test]
fn parallel_corpus_as_sequential() {
    for (name, data) in corpus() {
        for opts in [Options::default(), full()] {
            let seq = decode_on(&data, &opts, Feed::Whole, 0);
            let par = decode_on(&data, &opts, Feed::Whole, 2);
            assert!(seq == par, "{name}: {seq:?} vs {par:?}");
        }
    }
}

#[test]
fn splits_needs_sizes_in_the_first_block_header() {
    let data = payload(100_000, 28);
    assert!(splits(&compress(
        &["-0", "-T2", "--block-size=10000"],
        &data
    )));
    assert!(!splits(&compress(&["-0", "-T1"], &data)));
    assert!(!splits(&compress(&["-0"], b"")));
    assert!(!splits(b"\xfd7zXZ\0"));
}

#[test]
fn blocks_with_sizes_go_to_the_crew() {
    let data = payload(200_000, 30);
    let count = |xz: &[u8], helpers: usize| {
        let mut dec = decoder(&Options::default(), helpers).unwrap();
        let mut out = vec![0; 1 << 20];
        let (c, _) = dec.decode(xz, &mut out).unwrap();
        assert_eq!(c, xz.len());
        while !dec.finish(&mut out).unwrap().1 {}
        dec.submitted
    };
    let t2 = compress(&["-0", "-T2", "--block-size=10000"], &data);
    assert_eq!(count(&t2, 2), 20);
    assert_eq!(count(&t2, 0), 0);
    assert_eq!(
        count(&compress(&["-0", "-T1", "--block-size=10000"], &data), 2),
        0
    );
}

#[test]
fn dropping_a_parallel_decoder_mid_stream_is_fine() {
    let data = payload(500_000, 29);
    let xz = compress(&["-0", "-T2", "--block-size=10000"], &data);
    for cut in [xz.len() / 3, xz.len() / 2, xz.len() - 20] {
        let mut dec = decoder(&Options::default(), 2).unwrap();
        let mut out = vec![0; 1000];
        let mut got = Vec::new();
        let mut input = &xz[..cut];
        while !input.is_empty() {
            let (c, p) = dec.decode(input, &mut out).unwrap();
            got.extend_from_slice(&out[..p]);
            input = &input[c..];
        }
        // What came out before the drop is the payload's start; the drop (end of this
        // iteration) must stop the helpers without hanging.
        assert_eq!(got[..], data[..got.len()]);
    }
}
