//! Whole-image verification of arbitrary bytes as an image archive (oci-archive or docker
//! save tar): the tar index, the JSON documents (oci-layout, index.json, manifests, configs,
//! manifest.json), path and digest checks, symlinks between members. It must never panic,
//! read outside the archive or use unbounded memory, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| diffid_fuzz::image_archive(data));
