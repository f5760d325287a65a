//! A Jetstream source's sequence cursor is saved with the host that
//! issued it; a host URL with a user and password or a token in its query
//! must not put them in the state directory.

use super::test_support::*;
use super::*;
use crate::source::jetstream::{JetstreamOptions, JetstreamProtocol, SeqCursor};
use crate::source::ws::Protocol;

/// The secrets of [`HOST`], each of which must be absent from the store.
const SECRETS: [&str; 3] = ["S3CRETUSER", "S3CRETPASS", "S3CRETTOKEN"];
const HOST: &str = "wss://S3CRETUSER:S3CRETPASS@jet.example/subscribe?wantedCollections=app.bsky.feed.post&token=S3CRETTOKEN";

/// Posts numbered 1 to `n` by the host's sequence.
fn numbered(n: i64) -> Vec<String> {
    (1..=n)
        .map(|i| {
            let mut frame: serde_json::Value =
                serde_json::from_str(&chatter(i, START + i * S, "lunch was good")).expect("JSON");
            frame["cursor"] = i.into();
            frame.to_string()
        })
        .collect()
}

/// Every byte of every file under `dir`.
fn every_byte(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(every_byte(&path));
        } else {
            out.extend(std::fs::read(&path).expect("read"));
        }
    }
    out
}

/// The saved cursor held the URL whole, user, password and token: the
/// state directory is not a log, but it is copied, attached to bug
/// reports and read by `strings`. It now holds the URL as shown (masked),
/// which names the host as well after a restart.
#[test]
fn a_saved_sequence_cursor_keeps_no_secret_of_its_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = SourceUrl::from(HOST);
    {
        let mut p = open(dir.path(), &PipelineConfig::new());
        let received = Received {
            host: Some(&host),
            ..Received::jetstream()
        };
        feed(&mut p, &numbered(20), &received);
        p.finish().expect("finish");
        assert_eq!(p.seq_cursor("test").map(|c| c.seq), Some(20));
    }
    let bytes = every_byte(dir.path());
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("jet.example"), "the host is saved");
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} is in the state directory");
    }
    // After a restart the saved cursor still names the host it is
    // connected to with its secrets, so the connection resumes by number.
    let p = open(dir.path(), &PipelineConfig::new());
    let saved = p.seq_cursor("test").expect("a saved cursor");
    assert_eq!((&saved.host, saved.seq), (host.masked(), 20));
    assert!(resumes_at(saved).ends_with("&cursor=21"));
}

/// The URL a v2 connection to [`HOST`] asks for, resuming from `cursor`.
fn resumes_at(cursor: SeqCursor) -> String {
    let mut protocol = JetstreamProtocol::new(JetstreamOptions {
        compress: false,
        resume: Some(cursor),
        ..JetstreamOptions::default()
    });
    let url = protocol.connect_url(&SourceUrl::from(HOST), Some(START));
    url.secret().to_owned()
}

/// A checkpoint written before holds the host whole, in the same shape
/// (a string): it reads back masked, and resumes by number as before;
/// the next save writes it masked.
#[test]
fn a_cursor_saved_whole_reads_back_masked_and_resumes_by_number() {
    #[derive(serde::Serialize)]
    struct Before<'a> {
        host: &'a str,
        seq: u64,
    }
    let bytes = postcard::to_allocvec(&Before {
        host: HOST,
        seq: 41,
    })
    .expect("encodes");
    let cursor: SeqCursor = postcard::from_bytes(&bytes).expect("decodes");
    for secret in SECRETS {
        assert!(!cursor.host.as_str().contains(secret), "{cursor:?}");
    }
    assert_eq!(&cursor.host, SourceUrl::from(HOST).masked());
    assert!(resumes_at(cursor).ends_with("&cursor=42"));
}
