//! The parallel paths end to end: layers large enough for the pipeline's worker threads and
//! the parallel decoders (multi-block xz, multi-frame zstd, bzip2 blocks), good and bad,
//! digested with every thread count, must give one answer, and containers/image's.

mod common;

use common::{Rng, must, oracle, put, tar_of};
use diffid::{Options, Report, Result, digest_bytes, digest_path};

/// A layer of a few MiB: text, runs, and random (incompressible) files.
fn big_layer() -> Vec<u8> {
    let mut rng = Rng::new(41);
    let mut entries = Vec::new();
    for i in 0..24 {
        let data = match i % 4 {
            0 => rng.bytes(150_000 + i * 1000, false),
            1 => vec![0; 400_000],
            _ => rng.bytes(300_000 + i * 7000, true),
        };
        entries.push((format!("usr/share/file{i:02}"), data));
    }
    tar_of(&entries)
}

fn digest_with(data: &[u8], threads: usize) -> Result<Report> {
    digest_bytes(
        data,
        &Options {
            threads,
            ..Options::default()
        },
    )
}

#[test]
fn big_layers_give_one_answer_and_containers_images() {
    let layer = big_layer();
    let mb = 1 << 20;
    let zstd_frames: Vec<u8> = layer
        .chunks(mb)
        .flat_map(|c| must("zstd", &["-c", "-q", "-1"], c))
        .chain(common::skippable(0, b"table of contents"))
        .collect();
    let bzip2_streams: Vec<u8> = layer
        .chunks(3 * mb)
        .flat_map(|c| must("bzip2", &["-c", "-1"], c))
        .collect();
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        (
            "xz-blocks".into(),
            must("xz", &["-c", "-0", "-T2", "--block-size=1MiB"], &layer),
        ),
        (
            "xz-one-block".into(),
            must("xz", &["-c", "-0", "-T1"], &layer),
        ),
        ("zstd-frames".into(), zstd_frames),
        // Frames without a content size that end past the first chunks: the pipeline holds
        // the input back until the first frame ends, then decodes the frames in parallel.
        (
            "zstd-3mib-frames".into(),
            layer
                .chunks(3 * mb)
                .flat_map(|c| must("zstd", &["-c", "-q", "-1", "--no-content-size"], c))
                .collect(),
        ),
        (
            "zstd-one-frame".into(),
            must("zstd", &["-c", "-q", "-1"], &layer),
        ),
        ("bzip2-9".into(), must("bzip2", &["-c", "-9"], &layer)),
        ("bzip2-1".into(), must("bzip2", &["-c", "-1"], &layer)),
        ("bzip2-streams".into(), bzip2_streams),
    ];
    let good = cases.len();
    for i in 0..good {
        let (name, data) = cases[i].clone();
        if name.ends_with("one-block") || name.ends_with("one-frame") {
            continue;
        }
        let mut flipped = data.clone();
        flipped[data.len() * 3 / 5] ^= 0x20;
        cases.push((format!("{name}-corrupt"), flipped));
        cases.push((
            format!("{name}-truncated"),
            data[..data.len() * 7 / 10].to_vec(),
        ));
        cases.push((
            format!("{name}-trailing"),
            [&data[..], b"trailing"].concat(),
        ));
    }

    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = cases.iter().map(|(n, d)| put(dir.path(), n, d)).collect();
    let go = oracle(&paths);
    for (((name, data), path), go) in cases.iter().zip(&paths).zip(&go) {
        let one = digest_with(data, 1);
        for threads in [0, 2, 3, 8] {
            assert_eq!(one, digest_with(data, threads), "{name}: {threads} threads");
        }
        assert_eq!(one, digest_path(path, &Options::default()), "{name}: path");
        match (&one, go.get("error")) {
            (Ok(r), None) => {
                assert_eq!(
                    r.diff_id.to_string(),
                    go["diff_id"].as_str().unwrap(),
                    "{name}"
                );
                assert_eq!(
                    r.blob_digest.to_string(),
                    go["blob_digest"].as_str().unwrap(),
                    "{name}"
                );
                assert_eq!(r.diff_size, layer.len() as u64, "{name}");
            }
            (Err(_), Some(_)) => {}
            (ours, theirs) => panic!("{name}: we say {ours:?}, Go says {theirs:?}"),
        }
        let bad = ["-corrupt", "-truncated", "-trailing"]
            .iter()
            .any(|s| name.ends_with(s));
        assert_eq!(one.is_ok(), !bad, "{name}: {one:?}");
    }
}

/// Found by the digest_zstd fuzz target: frames that say they hold 256 bytes and whose
/// corrupt blocks decode to something else. libzstd names the first check that fails, and
/// that depends on whether it decodes the frame whole into a buffer of its declared size
/// (the parallel path) or streams it: "Destination buffer is too small" (which the decoder
/// words as the corruption it is), "Restored data doesn't match checksum" or "Data corruption
/// detected". Every path must give a corrupt-data error at the frame, and no digest.
#[test]
fn a_frame_decoding_past_its_content_size_fails_alike_on_every_path() {
    let frames = [
        "28b52ffd47840000000000000000000000000a000000000c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c\
         0c0c0c0c0cff060c0c0c0c0c0c0c0c000000070c0c0c0c0c0c0c0000000000000000000000000000000000\
         00000000000000000010070010ffff0002001000020010100200100002001000020010000200100003001000\
         f13e16e1",
        "28b52ffd47000000000000000000000000000000000100000000000028b52ffd0c0ce70c0c0c0c0c0c0c0c\
         0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c000000000000000000010000000000001000000c0c0d0c0c250c0c0c\
         0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0cff00eb000200\
         102effff",
    ];
    for (i, hex) in frames.iter().enumerate() {
        let frame = decode_hex(hex);
        let blob = frame.repeat((600 << 10) / frame.len() + 1);
        let one = digest_with(&blob, 1).unwrap_err();
        assert_eq!(one.kind(), diffid::ErrorKind::Corrupt, "{i}: {one}");
        // Found in a block of the first frame, which the message names, at that block.
        assert!(one.offset().unwrap() < frame.len() as u64, "{i}: {one}");
        assert!(one.message().contains("of frame 1"), "{i}: {one}");
        for threads in [0, 2, 4] {
            let many = digest_with(&blob, threads).unwrap_err();
            assert_eq!(
                (many.kind(), many.format(), many.offset()),
                (one.kind(), one.format(), one.offset()),
                "{i}, threads = {threads}: {many} / {one}"
            );
            assert!(!many.message().contains("too small"), "{many}");
        }
    }
}

fn decode_hex(hex: &str) -> Vec<u8> {
    let hex: Vec<u8> = hex.bytes().filter(u8::is_ascii_hexdigit).collect();
    hex.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}
