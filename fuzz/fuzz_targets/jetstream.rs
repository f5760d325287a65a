//! Any bytes as a Jetstream frame: decoding must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let _ = outagewatch::source::jetstream::decode_with_time(frame);
});
