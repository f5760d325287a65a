//! Any bytes as a Mastodon streaming frame: decoding must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let _ = outagewatch::source::mastodon::decode(frame, "fuzz.example");
});
