//! The synthetic stream generator (the dev-only `outagewatch-synth` crate)
//! is deterministic for a seed and writes frames the decoder accepts, in
//! about the mix of a real firehose.

use outagewatch::source::Decoded;
use outagewatch::source::jetstream::decode;
use outagewatch_synth::{Generator, SynthConfig};

fn frames(config: SynthConfig) -> Vec<String> {
    let mut out = Vec::new();
    Generator::new(config).run(|f| out.push(f));
    out
}

#[test]
fn same_seed_same_stream_and_valid_frames() {
    let config = SynthConfig {
        duration_secs: 60,
        ..SynthConfig::default()
    };
    let a = frames(config.clone());
    let b = frames(config);
    assert_eq!(a, b);
    assert!(a.len() > 500, "about 15 events/s for 60 s, got {}", a.len());
    let posts = a
        .iter()
        .filter(|f| matches!(decode(f.as_bytes()), Ok(Decoded::Post(_))))
        .count();
    let ratio = (a.len() - posts) as f64 / posts as f64;
    assert!(
        (1.5..2.6).contains(&ratio),
        "about two non-posts per post, got {ratio}"
    );
}
