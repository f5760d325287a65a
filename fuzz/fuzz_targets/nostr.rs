//! Any bytes as a Nostr relay message: decoding must return, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    let _ = outagewatch::source::nostr::decode(frame, 1_783_173_600_000_000);
});
