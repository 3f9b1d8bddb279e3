//! The decoding reader (issue 8): the decoded stream out of the same pass that digests it.
//!
//! Every decoded stream is checked against the system's decoder (`DEC -dc`), every digest
//! against containers/image (the oracle) and `openssl dgst`, and against the digest-only
//! API; every bad stream must end in an error, never a clean end of stream.

mod common;

use std::io::{Read, Write};

use common::*;
use diffid::{
    ErrorKind, Format, Options, decoding_pipe, decompress_path, decompress_reader, digest_bytes,
};

/// The layer in every format, with the decoder that checks it.
fn formats(layer: &[u8]) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    vec![
        ("tar", layer.to_vec(), "cat"),
        ("gz", gzip(layer), "gzip"),
        ("bz2", bzip2(layer), "bzip2"),
        ("xz", xz(layer, &[]), "xz"),
        ("zst", zstd(layer, &[]), "zstd"),
    ]
}

fn decode_with(dec: &str, blob: &[u8]) -> Vec<u8> {
    if dec == "cat" {
        return blob.to_vec();
    }
    must(dec, &["-dc"], blob)
}

#[test]
fn decoded_bytes_and_digests_equal_the_decoder_and_the_digest_only_api() {
    let layer = generated_layer();
    for threads in [1, 0] {
        let opts = Options {
            threads,
            ..Options::default()
        };
        for (name, blob, dec) in formats(&layer) {
            let mut r = decompress_reader(std::io::Cursor::new(blob.clone()), &opts).unwrap();
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, decode_with(dec, &blob), "{name}: decoded bytes");
            let report = r.finish().unwrap();
            assert_eq!(report, digest_bytes(&blob, &opts).unwrap(), "{name}");
            assert_eq!(
                report.diff_id.to_string(),
                openssl("sha256", &out),
                "{name}"
            );
            assert_eq!(
                report.blob_digest.to_string(),
                openssl("sha256", &blob),
                "{name}"
            );
        }
    }
}
