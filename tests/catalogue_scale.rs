//! The scaled catalogue the benchmarks and `scripts/bench-replay.sh` measure
//! (issue 15: start-up and memory as services are added) must be a catalogue
//! the matcher accepts, or those measurements silently stop: the copies of
//! a service must not collide with the original's names or handles.

#[path = "../benches/support/scaled_catalogue.rs"]
mod scaled_catalogue;

use std::path::Path;

use outagewatch::matcher::Matcher;
use outagewatch::normalize::normalize;
use outagewatch::source::RawPost;

fn judge(matcher: &Matcher, text: &str) -> (bool, Option<String>) {
    let verdict = matcher.classify(&normalize(RawPost {
        time_us: 1,
        author: "did:plc:a".into(),
        uri: "at://a".into(),
        key: Some(1),
        text: text.into(),
        langs: vec!["en".into()],
        tags: Vec::new(),
    }));
    (verdict.is_report(), verdict.service)
}

#[test]
fn a_ten_times_catalogue_loads_and_recognises_its_copies() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("patterns");
    let dst = tempfile::tempdir().expect("temporary directory");
    scaled_catalogue::write_scaled_patterns(&src, dst.path(), 10).expect("scaled catalogue");
    let original = Matcher::embedded().expect("embedded patterns");
    let scaled =
        outagewatch::config::patterns::load_matcher(dst.path()).expect("the 10x catalogue loads");
    assert_eq!(scaled.service_count(), 10 * original.service_count());
    // The original still wins its own report; a copy (suffix "lo" for copy 1)
    // is a service of its own.
    let text = "is discord down for anyone else? keeps failing to connect";
    assert_eq!(judge(&scaled, text), judge(&original, text));
    assert_eq!(
        judge(
            &scaled,
            "is discordlo down for anyone else? keeps failing to connect"
        ),
        (true, Some("discordlo".to_owned()))
    );
}
