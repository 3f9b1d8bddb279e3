//! Detection, the bzip2 decoder and the tar stage on arbitrary bytes behind the bzip2 magic,
//! written in arbitrary pieces; see `diffid_fuzz::digest` for what is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| diffid_fuzz::digest(diffid::Format::Bzip2, data));
