//! README's metrics table against the code: every reason a frame is
//! counted malformed under has its place in the table (Nostr's five
//! verification reasons were missing from it).

use crate::source::FrameError;
use crate::source::nostr::verify::reject;

/// README's "Metrics" section, up to the next section.
fn metrics_section() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let start = readme
        .find("### Metrics")
        .expect("README has a Metrics section");
    let rest = &readme[start..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    rest[..end].to_owned()
}

/// One frame error of each kind, each verification reason too.
fn every_frame_error() -> Vec<FrameError> {
    let mut errors = vec![
        FrameError::InvalidUtf8 { valid_up_to: 0 },
        FrameError::Oversized { len: 2, limit: 1 },
        FrameError::Json(String::new()),
        FrameError::BadTime(String::new()),
        FrameError::BadSeq(0),
        FrameError::MissingField("text"),
        FrameError::PostWithoutText,
        FrameError::BadRecord(String::new()),
        FrameError::TextNotUtf8(String::new()),
    ];
    errors.extend(
        [
            reject::ID_MALFORMED,
            reject::ID_MISMATCH,
            reject::PUBKEY_MALFORMED,
            reject::SIG_MALFORMED,
            reject::SIG_INVALID,
        ]
        .map(FrameError::Unverified),
    );
    // Stops compiling when a kind is added: list it above too.
    for error in &errors {
        match error {
            FrameError::InvalidUtf8 { .. }
            | FrameError::Oversized { .. }
            | FrameError::Json(_)
            | FrameError::BadTime(_)
            | FrameError::BadSeq(_)
            | FrameError::MissingField(_)
            | FrameError::PostWithoutText
            | FrameError::BadRecord(_)
            | FrameError::TextNotUtf8(_)
            | FrameError::Unverified(_) => {}
        }
    }
    errors
}

#[test]
fn the_readme_lists_every_malformed_reason() {
    let section = metrics_section();
    let row = section
        .lines()
        .find(|l| l.starts_with("| `outagewatch_malformed_frames_total`"))
        .expect("a row for outagewatch_malformed_frames_total");
    for error in every_frame_error() {
        let reason = error.reason();
        assert!(
            row.contains(&format!("`{reason}`")),
            "README's malformed row lacks `{reason}`: {row}"
        );
    }
}
