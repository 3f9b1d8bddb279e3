//! The C ABI's stream functions driven by arbitrary sequences of calls.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| diffid_fuzz::ffi_stream(data));
