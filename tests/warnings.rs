//! The report's warnings: what is no error (containers/image accepts it, the digests are its)
//! but an importer may want to know. Each case is built here; the digests are checked against
//! openssl so a warning never comes with a different answer.

mod common;

use common::*;
use diffid::{Format, Options, Warning, digest_bytes};

fn warnings(blob: &[u8]) -> (Format, Vec<Warning>) {
    for threads in [1, 4] {
        let opts = Options {
            threads,
            ..Options::default()
        };
        let r = digest_bytes(blob, &opts).expect("no error");
        assert_eq!(r.blob_digest.to_string(), openssl("sha256", blob));
        if threads == 4 {
            return (r.format, r.warnings);
        }
    }
    unreachable!()
}

/// A GNU-format tar entry header of type `typeflag`, name `name`, no data.
fn header(name: &str, typeflag: u8) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_path(name).unwrap();
    h.set_size(0);
    h.set_mode(0o755);
    h.set_entry_type(tar::EntryType::new(typeflag));
    h.set_cksum();
    h.as_bytes().to_vec()
}

#[test]
fn a_plain_layer_has_none() {
    let layer = generated_layer();
    assert_eq!(warnings(&layer).1, []);
    assert_eq!(warnings(&gzip(&layer)).1, []);
}

#[test]
fn empty_layers() {
    assert_eq!(warnings(b"").1, [Warning::EmptyLayer]);
    // A tar of nothing but its end marker, gzip-compressed (Docker's well-known empty layer).
    assert_eq!(warnings(&gzip(&[0u8; 1024])).1, [Warning::EmptyLayer]);
}

#[test]
fn zstd_behind_a_leading_skippable_frame() {
    let layer = generated_layer();
    let blob = [skippable(0, &[0, 0, 0, 0]), zstd(&layer, &[])].concat();
    let (format, w) = warnings(&blob);
    // containers/image's answer stays: not compressed.
    assert_eq!(format, Format::None);
    assert_eq!(
        w[0],
        Warning::CompressedAfterSkippableFrame { frame_len: 12 }
    );
    // A skippable frame followed by anything else is no such case.
    let other = [skippable(0, &[0, 0, 0, 0]), layer].concat();
    assert!(
        !warnings(&other)
            .1
            .iter()
            .any(|w| matches!(w, Warning::CompressedAfterSkippableFrame { .. }))
    );
}

#[test]
fn entries_some_extractors_do_not_apply() {
    let mut tar = header("dir/", b'D');
    tar.extend(header("sparse", b'S'));
    tar.extend(header("again", b'D'));
    tar.extend([0u8; 1024]);
    let (_, w) = warnings(&xz(&tar, &[]));
    assert_eq!(
        w,
        [
            Warning::ExtractorDependentEntry {
                offset: 0,
                typeflag: b'D'
            },
            Warning::ExtractorDependentEntry {
                offset: 512,
                typeflag: b'S'
            },
        ]
    );
}

#[test]
fn data_after_the_end_marker() {
    let layer = tar_of(&[("a".to_string(), b"hello".to_vec())]);
    // Zero padding to a record is usual: no warning.
    let padded = [layer.clone(), vec![0; 8192]].concat();
    assert_eq!(warnings(&gzip(&padded)).1, []);
    let more = [padded.clone(), b"more".to_vec()].concat();
    assert_eq!(
        warnings(&bzip2(&more)).1,
        [Warning::DataAfterEndMarker {
            offset: padded.len() as u64
        }]
    );
}
