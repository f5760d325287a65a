//! The pure part of a frame's processing: decoding by its kind,
//! normalizing and classifying its post. No pipeline state, so replays run
//! it for many frames at once on every core.

use super::Received;
use crate::Micros;
use crate::matcher::{Matcher, Verdict};
use crate::normalize::{Post, normalize};
use crate::source::{Decoded, Frame, FrameError, Origin, SkipReason};

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
    /// Boxed: a post with its verdict is much larger than a skip reason.
    Post(Box<Judged>),
    Skipped(SkipReason),
}

/// A post in the form the matcher reads, with the matcher's verdict.
#[derive(Debug)]
pub struct Judged {
    pub post: Post,
    pub verdict: Verdict,
}

/// Decodes `frame` by its kind and judges its post, if any: pure, so it
/// runs on any thread (see [`Prepared`]).
pub fn prepare(matcher: &Matcher, frame: &[u8], received: &Received<'_>) -> Prepared {
    if frame.iter().all(u8::is_ascii_whitespace) {
        return Prepared::Blank;
    }
    let origin = Origin {
        instance: received.instance,
        arrival_us: received.arrival_us,
    };
    let (decoded, own_clock) = received.kind.decode(frame, &origin);
    let frame = match decoded.and_then(Frame::checked) {
        Ok(frame) => frame,
        Err(error) => return Prepared::Malformed(error),
    };
    let content = match frame.decoded {
        Decoded::Post(raw) => {
            let post = normalize(raw);
            let verdict = matcher.classify(&post);
            Content::Post(Box::new(Judged { post, verdict }))
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
