//! The pure part of a frame's processing: decoding by its kind,
//! normalizing and classifying its post. No pipeline state, so replays run
//! it for many frames at once on every core.

use super::Received;
use crate::Micros;
use crate::matcher::{Class, Matcher, Verdict};
use crate::normalize::{Post, normalize};
use crate::source::clock::author_key;
use crate::source::{Checked, Decoded, FrameError, Origin, SkipReason};

/// A frame with the work that needs no pipeline state done: decoded by its
/// kind and, for a post, normalized and classified. [`prepare()`] builds it
/// on any thread (replays prepare many frames at once on every core);
/// [`Pipeline::process_prepared`](super::Pipeline::process_prepared) does the rest in frame order, so the
/// result is the same as [`Pipeline::process_frame`](super::Pipeline::process_frame)'s, which is the two
/// in a row.
#[derive(Debug)]
pub enum Prepared {
    /// A blank line or frame.
    Blank,
    Malformed(FrameError),
    Frame {
        /// The event time, if the frame carries one.
        time_us: Option<Micros>,
        seq: Option<u64>,
        /// The decoder set the event time to the arrival time.
        own_clock: bool,
        content: Content,
    },
}

/// What a well-formed frame holds, once prepared.
#[derive(Debug)]
pub enum Content {
    /// A post that names a service, with its verdict, for the windows to
    /// count with its evidence. Boxed: a post with its verdict is much
    /// larger than the other kinds.
    Post(Box<Judged>),
    /// A post that names no service (nearly every post), cut down to what
    /// the ordered stage reads of it; see `Unnamed`.
    Unnamed(Unnamed),
    Skipped(SkipReason),
}

impl Content {
    /// The post's author (its [`author_key`], for the source's clock) and
    /// de-duplication key; neither for a frame that holds no post.
    pub fn author_and_key(&self) -> (Option<u64>, Option<u64>) {
        match self {
            Content::Post(judged) => (Some(author_key(&judged.post.author)), judged.post.key),
            Content::Unnamed(post) => (Some(post.author), post.key),
            Content::Skipped(_) => (None, None),
        }
    }
}

/// What the ordered stage needs of a post that names no service: its
/// author for the source's clock, its key for de-duplication, its time
/// and class for the counts. The post itself is freed where it was
/// decoded: handing every post to the pipeline's thread to be freed there
/// made the allocator reclaim memory across threads, post by post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unnamed {
    pub time_us: Micros,
    /// [`author_key`] of the post's author.
    pub author: u64,
    pub key: Option<u64>,
    pub class: Class,
}

/// A post in the form the matcher reads, with the matcher's verdict.
#[derive(Debug)]
pub struct Judged {
    pub post: Post,
    pub verdict: Verdict,
    /// The server that vouches for the post's author, where the source's
    /// accounts cost nothing to make ([`crate::source::Source::server_of`]):
    /// filled in the ordered stage, which knows the connection's name.
    pub server: Option<String>,
}

/// Decodes `frame` by its kind and judges its post, if any: pure, so it
/// runs on any thread (see [`Prepared`]).
pub fn prepare(matcher: &Matcher, frame: &[u8], received: &Received<'_>) -> Prepared {
    let origin = Origin {
        instance: received.instance,
        arrival_us: received.arrival_us,
        stored_since: received.stored_since,
    };
    judge(matcher, received.kind.check(frame, &origin))
}

/// [`prepare()`] for a frame its source's connection decoded already (a
/// Nostr note, checked on its relay's task): normalizes and classifies
/// its post, if any; nothing is decoded or verified here.
pub fn judge(matcher: &Matcher, checked: Checked) -> Prepared {
    let (decoded, own_clock) = match checked.into_parts() {
        (None, _) => return Prepared::Blank,
        (Some(decoded), own_clock) => (decoded, own_clock),
    };
    let frame = match decoded {
        Ok(frame) => frame,
        Err(error) => return Prepared::Malformed(error),
    };
    let content = match frame.decoded {
        Decoded::Post(raw) => {
            let post = normalize(*raw);
            let verdict = matcher.classify(&post);
            if verdict.service.is_some() {
                Content::Post(Box::new(Judged {
                    post,
                    verdict,
                    server: None,
                }))
            } else {
                Content::Unnamed(Unnamed {
                    time_us: post.time_us,
                    author: author_key(&post.author),
                    key: post.key,
                    class: verdict.class,
                })
            }
        }
        Decoded::Skipped(reason) => Content::Skipped(reason),
    };
    Prepared::Frame {
        time_us: frame.time_us,
        seq: frame.seq,
        own_clock,
        content,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(did: &str, text: &str) -> String {
        serde_json::json!({
            "did": did, "time_us": 1_780_000_000_000_000i64, "kind": "commit",
            "commit": {"rev": "r", "operation": "create", "collection": "app.bsky.feed.post",
                       "rkey": "k", "record": {"text": text, "langs": ["en"]}}
        })
        .to_string()
    }

    /// A post that names a service crosses whole; any other post only as
    /// what the counts read of it, its class kept (a report about "the
    /// site" names no service and is still counted as a report).
    #[test]
    fn only_posts_that_name_a_service_cross_whole() {
        let matcher = Matcher::embedded().expect("the embedded catalogue compiles");
        let received = Received::jetstream();
        // (text, named, class)
        let cases = [
            ("is discord down?", true, Class::Report),
            ("lunch was great", false, Class::None),
            ("the site is down again", false, Class::Report),
        ];
        for (text, named, class) in cases {
            let prepared = prepare(&matcher, frame("did:plc:a", text).as_bytes(), &received);
            let Prepared::Frame { content, .. } = prepared else {
                panic!("{text:?}: {prepared:?}");
            };
            match content {
                Content::Post(judged) => {
                    assert!(named, "{text:?} crossed whole");
                    assert_eq!(judged.verdict.class, class, "{text:?}");
                }
                Content::Unnamed(post) => {
                    assert!(!named, "{text:?} was cut down");
                    assert_eq!(post.class, class, "{text:?}");
                    assert_eq!(post.author, author_key("did:plc:a"));
                    assert_eq!(post.time_us, 1_780_000_000_000_000);
                    assert!(post.key.is_some(), "a Jetstream post is de-duplicated");
                }
                Content::Skipped(reason) => panic!("{text:?} skipped: {reason:?}"),
            }
        }
    }
}
