//! The tar stage alone: arbitrary bytes as an uncompressed blob, in arbitrary pieces.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| diffid_fuzz::tar(data));
