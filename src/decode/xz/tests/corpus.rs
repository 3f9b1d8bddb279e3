//! The xz test files of xz-utils (the peers' corpus): good ones decode as `xz` decodes them,
//! bad ones fail, with a message that names the place.

use std::path::{Path, PathBuf};

use super::*;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/peers/xz")
}

pub(super) fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xz"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(files.len() >= 60, "the xz corpus is incomplete");
    files
}

/// The good files whose filter chain containers/image rejects.
const FILTER_CHAIN_FILES: [&str; 5] = [
    "good-1-3delta-lzma2.xz",
    "good-1-arm64-lzma2-1.xz",
    "good-1-arm64-lzma2-2.xz",
    "good-1-delta-lzma2.tiff.xz",
    "good-1-empty-bcj-lzma2.xz",
];

#[test]
fn corpus_good() {
    for (name, data) in corpus().iter().filter(|(n, _)| n.starts_with("good-")) {
        let expected = xz_dc(data).unwrap_or_else(|| panic!("{name}: xz rejects it"));
        if FILTER_CHAIN_FILES.contains(&name.as_str()) {
            let e = decode_with(data, &Options::default(), Feed::Whole)
                .expect_err(&format!("{name}: accepted by default"));
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{name}: {e}");
            assert!(
                e.message().contains("decode it with option full_xz"),
                "{name}: {e}"
            );
            assert_decodes(data, &full(), &expected);
        } else {
            assert_decodes(data, &Options::default(), &expected);
        }
    }
}

#[test]
fn corpus_bad_and_unsupported() {
    for (name, data) in corpus().iter().filter(|(n, _)| !n.starts_with("good-")) {
        for opts in [Options::default(), full()] {
            for feed in [Feed::Whole, Feed::Bytes { out: 1 }] {
                let e = match decode_with(data, &opts, feed) {
                    Ok(out) => panic!("{name}: decoded {} bytes", out.len()),
                    Err(e) => e,
                };
                let want = match name.as_str() {
                    n if n.starts_with("unsupported-") => Some(ErrorKind::Unsupported),
                    "bad-0-empty-truncated.xz" => Some(ErrorKind::Truncated),
                    "bad-0cat-alone.xz" | "bad-0cat-header_magic.xz" => {
                        Some(ErrorKind::TrailingData)
                    }
                    "bad-0pad-empty.xz" | "bad-0catpad-empty.xz" => Some(ErrorKind::Corrupt),
                    _ => None,
                };
                if let Some(kind) = want {
                    assert_eq!(e.kind(), kind, "{name}: {e}");
                } else {
                    assert!(
                        matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Unsupported),
                        "{name}: {e}"
                    );
                }
                assert!(e.offset().is_some(), "{name}: {e}");
            }
        }
    }
}

/// Not a test of the decoder: prints what it says about each bad corpus file, for review
/// (`cargo test corpus_messages -- --nocapture --ignored`).
#[test]
#[ignore]
fn corpus_messages() {
    for (name, data) in corpus() {
        match decode_with(&data, &Options::default(), Feed::Whole) {
            Ok(out) => println!("{name}: ok, {} bytes", out.len()),
            Err(e) => println!("{name}: {:?}: {e}", e.kind()),
        }
    }
}
