//! Detection, the gzip decoder and the tar stage on arbitrary bytes behind the gzip magic,
//! written in arbitrary pieces; see `diffid_fuzz::digest` for what is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| diffid_fuzz::digest(diffid::Format::Gzip, data));
