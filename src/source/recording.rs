//! Recordings: JSON Lines files of the data frames of the wire, exactly as
//! received (control messages are acted on by the session, not recorded).
//!
//! **Clock lines.** `record` writes, before a frame whose arrival time
//! differs from the previous one's, a line
//! `{"kind":"#clock","time_us":ARRIVAL,"source":"NAME","protocol":"jetstream"}`
//! (`"instance"` too for Mastodon): the frames after it arrived then (whole
//! milliseconds, as the live run sees them), from that source, in that wire
//! format. Replay judges them exactly as the live run did (event time of
//! Mastodon and Nostr, the future bound of every source). Frames stay
//! byte-for-byte as received, so a tool that knows nothing of clock lines
//! still reads every frame (to a Jetstream reader a clock line is an event
//! of an unknown kind). A recording without clock lines (older ones) is
//! Jetstream frames without arrival times, named after the file.
//!
//! Plain, gzip and zstd files are told apart by their first bytes rather than
//! by their names, so a renamed file still reads; `-` is standard input.
//! Lines are read with a hard length limit: a multi-megabyte line is skipped
//! (and reported) without ever being held in memory.

pub mod follow;
pub mod recover;
pub mod resume;
pub mod writer;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::LazyLock;

use memchr::memmem::Finder;
use serde::{Deserialize, Serialize};

use super::{SourceError, SourceKind};
use crate::Micros;

/// The `kind` of a clock line.
pub const CLOCK_KIND: &str = "#clock";
const CLOCK_MARK: &[u8] = br##""#clock""##;
/// Clock lines are short: only the start of a line is searched for the mark.
pub const CLOCK_LINE_MAX: usize = 512;

/// Arrival time, source and wire format of the frames that follow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockLine {
    pub kind: String,
    pub time_us: Micros,
    pub source: String,
    pub protocol: SourceKind,
    /// Mastodon: the instance host that names its local accounts when a
    /// status's `uri` has no host.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub instance: String,
    /// Nostr: the frames that follow are stored events of a subscription
    /// that asked for events since this time (µs), sent before its `EOSE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_since: Option<Micros>,
}

impl ClockLine {
    pub fn new(time_us: Micros, source: &str, protocol: SourceKind, instance: &str) -> Self {
        ClockLine {
            kind: CLOCK_KIND.to_owned(),
            time_us,
            source: source.to_owned(),
            protocol,
            instance: instance.to_owned(),
            stored_since: None,
        }
    }

    /// Whether it says that time passed at its source: only a source
    /// dated by arrival, outside a stored range, moves its watermark so
    /// (see [`Pipeline::time_passed`](crate::pipeline::Pipeline::time_passed)).
    pub fn passes_time(&self) -> bool {
        self.protocol.arrival_passes_time(self.stored_since)
    }

    /// The line, without its line ending.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether every clock line naming `source` (at any time a source
    /// accepts) reads back as one: a longer line is taken for a frame, so
    /// the frames after it lost their arrival time and source (`record
    /// --name` of 440 characters).
    pub fn fits(source: &str, protocol: SourceKind, instance: &str) -> bool {
        let longest = ClockLine {
            stored_since: Some(Micros::MIN),
            ..ClockLine::new(Micros::MIN, source, protocol, instance)
        };
        longest.to_line().len() <= CLOCK_LINE_MAX
    }

    /// `Some` when `line` is a clock line (any key order); `None` for a
    /// frame, including one that merely mentions `#clock` in its text.
    pub fn parse(line: &[u8]) -> Option<ClockLine> {
        // Built once: building a searcher for every line of a replay cost
        // more than the search.
        static MARK: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(CLOCK_MARK));
        // Most frames hold no `#` at all (likes, follows), and looking for
        // one byte is much cheaper than for the mark.
        if line.len() > CLOCK_LINE_MAX
            || memchr::memchr(b'#', line).is_none()
            || MARK.find(line).is_none()
        {
            return None;
        }
        serde_json::from_slice::<ClockLine>(line)
            .ok()
            .filter(|clock| clock.kind == CLOCK_KIND)
    }
}

/// `frame` as one line of a recording that reads back as the same frame.
/// A recording is split at line ends and takes a short line of kind
/// `#clock` for a clock line, while a frame is whatever the server sent:
/// - a line end in a frame that is JSON can only be white space between
///   tokens, so it becomes a space; in one that is not, a U+0001, which is
///   not JSON anywhere either, so the frame stays malformed and one line
///   (split, a pretty-printed frame was read back as several malformed
///   lines, and a malformed one as several good frames);
/// - a frame of white space only is a blank line, as it was live;
/// - a frame that would read as a clock line has `"#clock"` written
///   `"\u0023clock"`: the same string to a JSON reader, no clock line to
///   the replay (live it is a frame of an unknown kind, skipped; recorded
///   as it was, it set the arrival, source and wire of what followed).
pub fn frame_line(frame: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    // Blank live (white space only), blank replayed: its line ends made it
    // a malformed frame of U+0001s.
    if frame.bytes().all(|b| b.is_ascii_whitespace()) {
        return Cow::Borrowed("");
    }
    // White space before a frame means nothing to a JSON reader, but a
    // line that began with it, torn by a kill, did not start with a
    // frame's `{` or `[`, and `record` refused to resume the file.
    let frame = frame.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let mut line = Cow::Borrowed(frame);
    if memchr::memchr2(b'\n', b'\r', frame.as_bytes()).is_some() {
        let json = serde_json::from_str::<serde::de::IgnoredAny>(frame).is_ok();
        let blank = if json { " " } else { "\u{1}" };
        line = Cow::Owned(frame.replace(['\n', '\r'], blank));
    }
    if ClockLine::parse(line.as_bytes()).is_some() {
        line = Cow::Owned(line.replace(r##""#clock""##, r#""\u0023clock""#));
    }
    line
}

/// Default limit for one frame, matching the live sources' maximum frame size.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Bytes kept from a compressed recording before its decompressor.
const COMPRESSED_BUFFER: usize = 256 * 1024;
/// The largest zstd window a recording may use: 2^24 bytes (16 MiB), all
/// of it memory while reading. A file made with a larger one (`zstd
/// --long`, `--ultra -22`) is refused with zstd's "Frame requires too much
/// memory for decoding".
const MAX_ZSTD_WINDOW_LOG: u32 = 24;

/// Opens a recording for reading, decompressing it if needed. Unbuffered:
/// a replay reads large blocks straight into the buffer it prepares, and a
/// buffer here would copy every byte once more (a compressed recording's
/// compressed bytes are buffered, its decompressed ones are not).
pub fn open(path: &str) -> Result<Box<dyn Read + Send>, SourceError> {
    let mut raw: Box<dyn Read + Send> = if path == "-" {
        Box::new(io::stdin())
    } else {
        let file = File::open(Path::new(path)).map_err(|source| SourceError::Open {
            path: path.to_owned(),
            source,
        })?;
        Box::new(file)
    };
    let head = read_head(&mut raw).map_err(|source| SourceError::Read {
        path: path.to_owned(),
        source,
    })?;
    let format = recover::Format::sniff(&head);
    // The bytes read to tell the format apart come first again.
    let whole = io::Cursor::new(head).chain(raw);
    decoded(format, whole).map_err(|source| SourceError::Open {
        path: path.to_owned(),
        source,
    })
}

/// The text of `raw`, read from its start or that of a gzip member or
/// zstd frame, decompressed as `format` says. Unbuffered (see [`open`]).
pub(crate) fn decoded<R: Read + Send + 'static>(
    format: recover::Format,
    raw: R,
) -> io::Result<Box<dyn Read + Send>> {
    Ok(match format {
        recover::Format::Plain => Box::new(raw),
        recover::Format::Gzip => {
            let buffered = BufReader::with_capacity(COMPRESSED_BUFFER, raw);
            Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
        }
        recover::Format::Zstd => {
            let buffered = BufReader::with_capacity(COMPRESSED_BUFFER, raw);
            let mut decoder = zstd::stream::read::Decoder::with_buffer(buffered)?;
            // A file's frames may ask for a window of up to 128 MiB (zstd's
            // default bound), all of it memory; `record` writes 2 MiB windows
            // (level 3), and `zstd -19` 8 MiB ones.
            decoder.window_log_max(MAX_ZSTD_WINDOW_LOG)?;
            Box::new(decoder)
        }
    })
}

/// The first bytes of a stream, enough to tell its format (fewer only at
/// its end).
fn read_head(raw: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(ZSTD_MAGIC.len());
    raw.take(ZSTD_MAGIC.len() as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// One line of a recording.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// The line's bytes, without the line ending.
    Frame(&'a [u8]),
    /// A line longer than the limit; its length in bytes. Its bytes were dropped.
    Oversized(usize),
}

/// Splits a byte stream into lines of at most `limit` bytes.
pub struct LineReader<R> {
    inner: R,
    limit: usize,
    buf: Vec<u8>,
    line_no: u64,
    /// Report an oversized line as soon as it passes the limit, instead of
    /// reading on to its end (see [`LineReader::stop_at_limit`]).
    early: bool,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R, limit: usize) -> Self {
        LineReader {
            inner,
            limit,
            buf: Vec::with_capacity(4096),
            line_no: 0,
            early: false,
        }
    }

    /// Reports an oversized line as soon as `limit` is passed, with the
    /// length read so far, leaving the rest of it unread. For a stream that
    /// may never end a line (`check </dev/zero`), where waiting for the
    /// line's end would wait forever; the caller then stops reading.
    pub fn stop_at_limit(mut self) -> Self {
        self.early = true;
        self
    }

    /// The next line with its 1-based number, or `None` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, Line<'_>)>> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let read = self.append_line(&mut buf);
        self.buf = buf;
        Ok(read?.map(|(line_no, length)| match length {
            Length::Within => (line_no, Line::Frame(&self.buf)),
            Length::Over(len) => (line_no, Line::Oversized(len)),
        }))
    }

    /// Appends the next line's bytes (when within the limit) to `out`.
    fn append_line(&mut self, out: &mut Vec<u8>) -> io::Result<Option<(u64, Length)>> {
        let start = out.len();
        let mut len = 0usize;
        let mut saw_any = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    out.truncate(start);
                    return Err(e);
                }
            };
            if available.is_empty() {
                if !saw_any {
                    return Ok(None);
                }
                break;
            }
            saw_any = true;
            let (chunk, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (&available[..i], Some(i + 1)),
                None => (available, None),
            };
            len += chunk.len();
            if len <= self.limit {
                out.extend_from_slice(chunk);
            }
            let consumed = done.unwrap_or(chunk.len());
            self.inner.consume(consumed);
            if done.is_some() || (self.early && len > self.limit) {
                break;
            }
        }
        self.line_no += 1;
        if len > self.limit {
            out.truncate(start);
            return Ok(Some((self.line_no, Length::Over(len))));
        }
        if out.len() > start && out.last() == Some(&b'\r') {
            out.pop();
        }
        Ok(Some((self.line_no, Length::Within)))
    }
}

/// Whether a line appended by [`LineReader::append_line`] was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    /// Within the limit: its bytes were appended.
    Within,
    /// Longer than the limit: its length; nothing was appended.
    Over(usize),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines(input: &[u8], limit: usize) -> Vec<(u64, String)> {
        let mut reader = LineReader::new(BufReader::with_capacity(3, input), limit);
        let mut out = Vec::new();
        while let Some((n, line)) = reader.next_line().expect("in-memory read") {
            out.push((
                n,
                match line {
                    Line::Frame(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                    Line::Oversized(len) => format!("<oversized {len}>"),
                },
            ));
        }
        out
    }

    #[test]
    fn splits_lines_and_numbers_them() {
        let got = lines(b"a\r\nbb\n\nlast-without-newline", 100);
        let want = [(1, "a"), (2, "bb"), (3, ""), (4, "last-without-newline")];
        assert_eq!(
            got,
            want.map(|(n, s)| (n, s.to_owned())).to_vec(),
            "line splitting"
        );
    }

    #[test]
    fn oversized_lines_are_reported_and_the_next_line_survives() {
        let got = lines(b"short\n0123456789abcdef\nafter\n", 8);
        assert_eq!(got[0], (1, "short".to_owned()));
        assert_eq!(got[1], (2, "<oversized 16>".to_owned()));
        assert_eq!(got[2], (3, "after".to_owned()));
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn stop_at_limit_reports_an_endless_line_without_reading_it_all() {
        let endless = std::io::repeat(b'0');
        let mut reader =
            LineReader::new(BufReader::with_capacity(64, endless), 1000).stop_at_limit();
        match reader.next_line().expect("read") {
            Some((1, Line::Oversized(len))) => assert!((1001..=1064).contains(&len), "{len}"),
            other => panic!("want an oversized first line, got {other:?}"),
        }
    }

    #[test]
    fn reads_plain_gzip_and_zstd_alike() {
        let body = b"{\"a\":1}\n{\"b\":2}\n";
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("plain.jsonl");
        std::fs::write(&plain, body).expect("write");
        let gz = dir.path().join("renamed.txt");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(body).expect("gzip");
        std::fs::write(&gz, enc.finish().expect("gzip")).expect("write");
        let zst = dir.path().join("x.zst");
        std::fs::write(&zst, zstd::encode_all(&body[..], 3).expect("zstd")).expect("write");
        for path in [plain, gz, zst] {
            let mut text = String::new();
            open(path.to_str().expect("utf8 path"))
                .expect("open")
                .read_to_string(&mut text)
                .expect("read");
            assert_eq!(text.as_bytes(), body, "{}", path.display());
        }
    }

    /// A frame recorded reads back as the frame it was: one line, the same
    /// JSON (or the same fault), never a clock line.
    #[test]
    fn a_recorded_frame_reads_back_as_the_frame_it_was() {
        use crate::source::jetstream::decode_frame;
        let post = r#"{"did":"did:plc:a","time_us":1725911162000000,"kind":"commit","commit":{"rev":"r","operation":"create","collection":"app.bsky.feed.post","rkey":"k","record":{"text":"is discord down?"}}}"#;
        let pretty = serde_json::to_string_pretty(
            &serde_json::from_str::<serde_json::Value>(post).expect("JSON"),
        )
        .expect("pretty");
        let two = format!("{post}\n{post}");
        let control_in_text = post.replace("discord down?", "discord\ndown?");
        let spoof = r##"{"kind":"#clock","time_us":1,"source":"bluesky","protocol":"nostr"}"##;
        // Led by white space: recorded from its `{`, so that a torn line
        // of it still starts as a frame does.
        let indented = format!(" \t {post}");
        let frames = [
            post,
            indented.as_str(),
            pretty.as_str(),
            "{\r\n}",
            two.as_str(),
            control_in_text.as_str(),
            spoof,
            "not JSON\n at all",
        ];
        for frame in frames {
            let line = frame_line(frame);
            assert!(!line.contains(['\n', '\r']), "{frame:?} -> {line:?}");
            assert_eq!(ClockLine::parse(line.as_bytes()), None, "{frame:?}");
            let (live, replayed) = (
                decode_frame(frame.as_bytes()),
                decode_frame(line.as_bytes()),
            );
            match (&live, &replayed) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{frame:?}"),
                (Err(a), Err(b)) => assert_eq!(a.reason(), b.reason(), "{frame:?}"),
                _ => panic!("{frame:?}: live {live:?}, replayed {replayed:?}"),
            }
        }
        assert!(matches!(frame_line(post), std::borrow::Cow::Borrowed(_)));
        assert_eq!(frame_line(&indented), post);
        // A real clock line is still one.
        let clock = ClockLine::new(5, "bluesky", SourceKind::Jetstream, "").to_line();
        assert!(ClockLine::parse(clock.as_bytes()).is_some());
    }

    /// A frame of white space only was blank live and, its line ends made
    /// U+0001s, a malformed frame replayed: it is recorded as a blank line.
    #[test]
    fn a_blank_frame_is_recorded_as_a_blank_line() {
        for frame in ["\n", " \r\n", "\t\n ", "   ", ""] {
            assert_eq!(frame_line(frame), "", "{frame:?}");
        }
        assert_eq!(frame_line(" x\n"), "x\u{1}");
    }

    /// A source name too long for a clock line to read back as one is
    /// refused before recording (`record --name`); one that fits reads
    /// back whole.
    #[test]
    fn a_source_name_fits_a_clock_line_or_is_refused() {
        assert!(ClockLine::fits("bluesky", SourceKind::Jetstream, ""));
        assert!(!ClockLine::fits(
            &"n".repeat(440),
            SourceKind::Jetstream,
            ""
        ));
        let longest = (1..CLOCK_LINE_MAX)
            .map(|n| "n".repeat(n))
            .take_while(|name| ClockLine::fits(name, SourceKind::Jetstream, ""))
            .last()
            .expect("short names fit");
        let clock = ClockLine::new(Micros::MAX, &longest, SourceKind::Jetstream, "");
        assert_eq!(ClockLine::parse(clock.to_line().as_bytes()), Some(clock));
    }

    /// A recording's frames choose their window, all of it memory while
    /// reading: one asking for more than 16 MiB is refused with a message.
    #[test]
    fn a_zstd_recording_with_a_window_past_16_mib_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let body = b"{\"a\":1}\n".repeat(1000);
        for (window_log, readable) in [(24, true), (27, false)] {
            let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("encoder");
            enc.window_log(window_log).expect("window");
            // Without a declared size the decoder cannot shrink the window.
            enc.include_contentsize(false).expect("flag");
            enc.write_all(&body).expect("write");
            let path = dir.path().join(format!("w{window_log}.zst"));
            std::fs::write(&path, enc.finish().expect("finish")).expect("write");
            let mut text = Vec::new();
            let read = open(path.to_str().expect("utf8 path"))
                .expect("open")
                .read_to_end(&mut text);
            match read {
                Ok(_) => assert!(readable && text == body, "window 2^{window_log}"),
                Err(e) => assert!(
                    !readable && e.to_string().contains("too much memory"),
                    "window 2^{window_log}: {e}"
                ),
            }
        }
    }

    #[test]
    fn appended_compressed_recordings_read_through() {
        // `record` appends to an existing file: a second gzip member or
        // zstd frame must be read on, not dropped.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut gz = Vec::new();
        for part in [&b"one\n"[..], b"two\n"] {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(part).expect("gzip");
            gz.extend(enc.finish().expect("gzip"));
        }
        let mut zst = zstd::encode_all(&b"one\n"[..], 3).expect("zstd");
        zst.extend(zstd::encode_all(&b"two\n"[..], 3).expect("zstd"));
        for (name, bytes) in [("a.gz", gz), ("a.zst", zst)] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            let mut text = String::new();
            open(path.to_str().expect("utf8"))
                .expect("open")
                .read_to_string(&mut text)
                .expect("read");
            assert_eq!(text, "one\ntwo\n", "{name}");
        }
    }

    #[test]
    fn clock_lines_round_trip_and_frames_are_not_clock_lines() {
        let clock = ClockLine::new(
            1_700_000_000_123_000,
            "social",
            SourceKind::Mastodon,
            "m.example",
        );
        let line = clock.to_line();
        assert!(
            line.starts_with(r##"{"kind":"#clock","time_us":1700000000123000"##),
            "{line}"
        );
        assert_eq!(ClockLine::parse(line.as_bytes()), Some(clock.clone()));
        let reordered = r##"{"instance":"m.example","protocol":"mastodon","source":"social","time_us":1700000000123000,"kind":"#clock"}"##;
        assert_eq!(ClockLine::parse(reordered.as_bytes()), Some(clock));
        let jetstream = ClockLine::new(5, "bluesky", SourceKind::Jetstream, "");
        assert!(!jetstream.to_line().contains("instance"));
        // To a Jetstream reader, a clock line is an event of an unknown kind.
        assert_eq!(
            crate::source::jetstream::decode(jetstream.to_line().as_bytes()),
            Ok(crate::source::Decoded::Skipped(
                crate::source::SkipReason::UnknownKind
            ))
        );
        for frame in [
            r#"{"did":"d","time_us":1,"kind":"commit"}"#,
            r#"["EVENT","s",{}]"#,
            r##"{"kind":"#clockwork"}"##,
            r##"{"did":"d","time_us":1,"kind":"commit","commit":{"record":{"text":"\"#clock\""}}}"##,
            r##"{"kind":"#clock","time_us":"soon"}"##,
        ] {
            assert_eq!(ClockLine::parse(frame.as_bytes()), None, "{frame}");
        }
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = open("/nonexistent/recording.jsonl")
            .err()
            .expect("must fail");
        assert!(
            err.to_string().contains("/nonexistent/recording.jsonl"),
            "{err}"
        );
    }
}
