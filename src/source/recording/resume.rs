//! Where `record` resumes when it appends to an existing recording.
//!
//! A restarted `record` connected at the live tail: what the sources sent
//! between the last recorded frame and the restart was missing from the
//! recording, silently, though Jetstream keeps about a day and a half and a
//! Nostr relay answers a `REQ` with `since`. The recording itself says
//! where each source stopped: its last frames, after clock lines naming
//! the source, its kind and when they arrived. So before any connection
//! starts, those frames go through each matching connection's clock
//! ([`Followed::follow_recorded`], the path live frames take: the quorum of
//! authors and the quarantine of future times apply as they did), and the
//! first connection then asks for what came after the watermark, as a
//! reconnect does. No state is kept beside the file: the file is the truth.
//!
//! Only the end is read, at least [`RECENT_TEXT`] bytes of text, from
//! where the check before appending found they start ([`Tail::recent`]):
//! in a plain file the start of a line, in a compressed one the start of a
//! gzip member or zstd frame, decoded as a stream, in constant memory.
//! Frames before the first clock line read are not placed (their source
//! is not known) and do not count.
//!
//! [`RECENT_TEXT`]: super::recover::RECENT_TEXT

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::follow::{Followed, Sender};
use super::recover::{Format, Tail};
use super::{ClockLine, DEFAULT_MAX_LINE, Line, LineReader};
use crate::source::clock::ClockRule;
use crate::wall::rfc3339;

/// Why the end of a recording could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("cannot read its last frames: {0}")]
pub struct ResumeError(#[from] io::Error);

/// What was read back from a recording's end.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Bytes of text read.
    pub text: u64,
    /// Clock lines among them.
    pub clock_lines: u64,
    /// Frames put to each connection's clock, by its number.
    pub frames: Vec<u64>,
}

/// Puts the last frames of the recording at `path` (whose complete part
/// `tail` describes) to the clocks of the connections in `followed` that
/// they name (same source name and kind), in file order.
pub fn restore(
    path: &Path,
    format: Format,
    tail: &Tail,
    followed: &mut [Followed],
    rule: &ClockRule,
) -> Result<Restored, ResumeError> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(tail.recent))?;
    let bytes = file.take(tail.kept.saturating_sub(tail.recent));
    restore_from(super::decoded(format, bytes)?, followed, rule)
}

/// [`restore`] over the text `text`, from a line start.
fn restore_from(
    text: Box<dyn Read + Send>,
    followed: &mut [Followed],
    rule: &ClockRule,
) -> Result<Restored, ResumeError> {
    let mut lines = LineReader::new(BufReader::new(text), DEFAULT_MAX_LINE);
    let mut restored = Restored {
        frames: vec![0; followed.len()],
        ..Restored::default()
    };
    // The connection the frames read now belong to, and how they came:
    // none before the first clock line, or after one naming a source this
    // run does not record.
    let mut sender: Option<Sender> = None;
    while let Some((_, line)) = lines.next_line()? {
        let Line::Frame(line) = line else {
            // Longer than a replay reads: skipped by it too.
            continue;
        };
        restored.text += line.len() as u64 + 1;
        if let Some(clock) = ClockLine::parse(line) {
            restored.clock_lines += 1;
            sender = Sender::named_by(&clock, followed);
            if let Some(sender) = sender
                && let Some(connection) = followed.get_mut(sender.connection)
            {
                connection.time_passed(sender);
            }
            continue;
        }
        if let Some(sender) = sender
            && let Some(connection) = followed.get_mut(sender.connection)
        {
            connection.follow_recorded(line, sender, rule);
            restored.frames[sender.connection] += 1;
        }
    }
    Ok(restored)
}

impl Restored {
    /// One line per connection for stderr: the time it resumes from, or
    /// why it starts at the live tail.
    pub fn report(&self, file: &str, followed: &[Followed], rule: &ClockRule) -> Vec<String> {
        let read = format!("the recording's last {}", mib(self.text));
        followed
            .iter()
            .zip(&self.frames)
            .map(|(connection, &frames)| {
                let name = &connection.name;
                let kind = connection.kind.name();
                let why = if !connection.kind.source().resumes_from_watermark() {
                    format!("a {kind} stream cannot be asked for what it sent before")
                } else if let Some(watermark) = connection.health.processed() {
                    return format!(
                        "{file}: resuming {name} from {} (the recording's last frames)",
                        rfc3339(watermark)
                    );
                } else if self.clock_lines == 0 {
                    format!(
                        "{read} hold no clock lines (recorded before they were written, or not by `record`)"
                    )
                } else if frames == 0 {
                    format!("{read} hold no frames of it ({kind})")
                } else {
                    format!(
                        "its {frames} frames in {read} place no watermark (that takes posts of {} authors)",
                        rule.quorum
                    )
                };
                format!("{file}: {name} starts at the live tail: {why}")
            })
            .collect()
    }
}

/// `bytes` in MiB for a message.
fn mib(bytes: u64) -> String {
    let mib = bytes as f64 / (1u64 << 20) as f64;
    format!("{mib:.1} MiB")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Micros;
    use crate::source::recording::recover::check_with;
    use crate::source::recording::writer::RecordingWriter;
    use crate::source::ws::WsSettings;
    use crate::source::{Connection, SourceKind};

    fn followed(sources: &[(&str, SourceKind)]) -> Vec<Followed> {
        sources
            .iter()
            .map(|(name, kind)| {
                Followed::new(&Connection {
                    name: (*name).to_owned(),
                    kind: *kind,
                    urls: vec!["wss://h.example/x".into()],
                    settings: WsSettings::default(),
                    stream: "public".to_owned(),
                    token: None,
                    jetstream: Default::default(),
                })
            })
            .collect()
    }

    const BASE: Micros = 1_780_000_000_000_000;

    fn post(did: &str, time_us: Micros, text: &str) -> String {
        serde_json::json!({"did": did, "time_us": time_us, "kind": "commit",
            "commit": {"rev": "r", "operation": "create", "collection": "app.bsky.feed.post",
                       "rkey": format!("k{time_us}"), "record": {"text": text, "langs": ["en"]}}})
        .to_string()
    }

    /// Lines of a recording of three Jetstream sources interleaved in runs
    /// of 1 to 4 frames, each frame after a clock line, event times a
    /// little out of order, authors repeating, one post dated 2100.
    fn interleaved(n: usize) -> Vec<String> {
        let names = ["bluesky", "mirror", "gone"];
        let mut lines = Vec::new();
        let mut seed = 7u64;
        let mut i = 0;
        while i < n {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let source = (seed >> 40) as usize % 3;
            let run = 1 + (seed >> 50) as usize % 4;
            let arrival = BASE + i as Micros * 1_000 + 200_000;
            lines.push(ClockLine::new(arrival, names[source], SourceKind::Jetstream, "").to_line());
            for _ in 0..run {
                let jitter = (i as Micros * 7919) % 1_500;
                let time = if i == n - 10 {
                    4_102_444_800_000_000
                } else {
                    BASE + i as Micros * 1_000 - jitter
                };
                let did = format!("did:plc:{}{}", names[source], i % 5);
                lines.push(post(
                    &did,
                    time,
                    &format!("post {i} is down? {}", "x".repeat(i % 90)),
                ));
                i += 1;
            }
        }
        lines
    }

    /// What following every line of the file gives: the watermark of each
    /// connection.
    fn whole(lines: &[String], sources: &[(&str, SourceKind)]) -> Vec<Option<Micros>> {
        let mut followed = followed(sources);
        let rule = ClockRule::default();
        let mut sender = None;
        for line in lines {
            if let Some(clock) = ClockLine::parse(line.as_bytes()) {
                sender = Sender::named_by(&clock, &followed);
            } else if let Some(sender) = sender {
                followed[sender.connection].follow(line.as_bytes(), sender, &rule);
            }
        }
        followed.iter().map(|f| f.health.processed()).collect()
    }

    /// Writes `lines` as `record` does, a commit point (a new member or
    /// frame) every 5 lines.
    fn write(path: &Path, lines: &[String]) {
        let (mut out, _) = RecordingWriter::open(path).expect("open");
        for (i, line) in lines.iter().enumerate() {
            out.write_line(line.as_bytes()).expect("write");
            if i % 5 == 4 {
                out.commit().expect("commit");
            }
        }
        out.finish().expect("finish");
    }

    /// Restores `sources` from the file at `path`, reading back `margin`.
    fn restored(
        path: &Path,
        margin: u64,
        sources: &[(&str, SourceKind)],
    ) -> (Tail, Restored, Vec<Followed>) {
        let format = Format::of(path);
        let mut file = File::open(path).expect("open");
        let tail = check_with(&mut file, format, margin).expect("check");
        let mut followed = followed(sources);
        let restored =
            restore(path, format, &tail, &mut followed, &ClockRule::default()).expect("restore");
        (tail, restored, followed)
    }

    const TWO: [(&str, SourceKind); 2] = [
        ("bluesky", SourceKind::Jetstream),
        ("mirror", SourceKind::Jetstream),
    ];

    /// Two sources interleaved (and one not recorded this run), plain and
    /// in several gzip members or zstd frames: reading only the end gives
    /// each source the watermark following the whole file gives, and reads
    /// at least the margin but not the whole file.
    #[test]
    fn the_end_of_a_recording_restores_each_sources_watermark_of_the_whole_file() {
        let lines = interleaved(600);
        let total: u64 = lines.iter().map(|l| l.len() as u64 + 1).sum();
        let want = whole(&lines, &TWO);
        assert!(want.iter().all(Option::is_some), "{want:?}");
        assert!(
            want[0] < Some(BASE + 600_000),
            "the post dated 2100 moved nothing"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["r.jsonl", "r.jsonl.gz", "r.jsonl.zst"] {
            let path = dir.path().join(name);
            write(&path, &lines);
            for margin in [12 << 10, 40 << 10, u64::MAX] {
                let (tail, got, followed) = restored(&path, margin, &TWO);
                let case = format!("{name}, margin {margin}");
                let watermarks: Vec<_> = followed.iter().map(|f| f.health.processed()).collect();
                assert_eq!(watermarks, want, "{case}");
                assert!(got.frames.iter().all(|&n| n > 0), "{case}: {got:?}");
                if margin < total {
                    assert!(tail.recent > 0, "{case}");
                    assert!(got.text >= margin && got.text < total, "{case}: {got:?}");
                } else {
                    assert_eq!((tail.recent, got.text), (0, total), "{case}");
                }
                // Restored frames are no data received now.
                assert!(followed.iter().all(|f| f.health.snapshot().data == 0));
            }
        }
    }

    /// A plain file whose lines are longer than the blocks it is read back
    /// in: reading starts at the start of the line the margin falls in, so
    /// every line read is whole, and the long last line counts.
    #[test]
    fn a_plain_file_with_long_lines_is_read_back_from_a_line_start() {
        let mut lines = interleaved(200);
        let long = |i: Micros, source: &str| {
            [
                ClockLine::new(
                    BASE + i * 1_000 + 200_000,
                    source,
                    SourceKind::Jetstream,
                    "",
                )
                .to_line(),
                post("did:plc:long", BASE + i * 1_000, &"down ".repeat(40_000)),
            ]
        };
        lines.extend(long(200, "mirror"));
        lines.extend(interleaved(260).split_off(interleaved(200).len()));
        lines.extend(long(300, "bluesky"));
        let want = whole(&lines, &TWO);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("long.jsonl");
        write(&path, &lines);
        let bytes = std::fs::read(&path).expect("read");
        let last = lines.last().map_or(0, |l| l.len() as u64 + 1);
        // Inside the last line; inside the long line before it, reading
        // back across blocks to its start; in the short lines between.
        for margin in [last / 2, last + 30_000, last + 190_000] {
            let (tail, got, followed) = restored(&path, margin, &TWO);
            let start = tail.recent as usize;
            assert!(start == 0 || bytes[start - 1] == b'\n', "margin {margin}");
            assert!(got.text >= margin, "margin {margin}: {got:?}");
            if margin > last {
                let watermarks: Vec<_> = followed.iter().map(|f| f.health.processed()).collect();
                assert_eq!(watermarks, want, "margin {margin}");
            }
        }
    }

    /// A recording without clock lines (made before they were written):
    /// nothing is restored, and stderr says why each source starts live.
    #[test]
    fn a_recording_without_clock_lines_restores_nothing() {
        let lines: Vec<String> = (0..50)
            .map(|i| post(&format!("did:plc:{i}"), BASE + i * 1_000, "down?"))
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.jsonl.zst");
        write(&path, &lines);
        let (_, got, followed) = restored(&path, u64::MAX, &TWO);
        assert_eq!((got.clock_lines, &got.frames[..]), (0, &[0, 0][..]));
        for line in got.report("old.jsonl.zst", &followed, &ClockRule::default()) {
            assert!(line.contains("starts at the live tail"), "{line}");
            assert!(line.contains("hold no clock lines"), "{line}");
        }
    }

    /// What stderr says per connection: the time it resumes from, or why
    /// it starts at the live tail.
    #[test]
    fn the_report_says_where_each_source_resumes() {
        let sources = [
            ("bluesky", SourceKind::Jetstream),
            ("mirror", SourceKind::Jetstream),
            ("gone", SourceKind::Nostr),
            ("social", SourceKind::Mastodon),
        ];
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.jsonl");
        // Two posts of one author: too few authors for a watermark.
        let few = [
            ClockLine::new(BASE, "mirror", SourceKind::Jetstream, "").to_line(),
            post("did:plc:one", BASE, "a"),
            post("did:plc:one", BASE + 1, "b"),
        ];
        write(&path, &few);
        let (_, got, followed) = restored(&path, u64::MAX, &sources[1..2]);
        assert_eq!(
            got.report("r.jsonl", &followed, &ClockRule::default()),
            [
                "r.jsonl: mirror starts at the live tail: its 2 frames in the recording's last 0.0 MiB place no watermark (that takes posts of 3 authors)"
            ]
        );
        // `gone` is recorded as Jetstream, followed as Nostr: not its
        // frames. A Mastodon status moves its clock, but no cursor.
        let mut lines = interleaved(120);
        lines.push(ClockLine::new(BASE, "social", SourceKind::Mastodon, "").to_line());
        lines.push(r#"{"event":"delete","payload":"1"}"#.to_owned());
        std::fs::remove_file(&path).expect("remove");
        write(&path, &lines);
        let (_, got, followed) = restored(&path, u64::MAX, &sources);
        let report = got.report("r.jsonl", &followed, &ClockRule::default());
        let watermark = followed[0].health.processed().expect("a watermark");
        let want = [
            format!(
                "r.jsonl: resuming bluesky from {} (the recording's last frames)",
                rfc3339(watermark)
            ),
            "r.jsonl: resuming mirror from".to_owned(),
            "r.jsonl: gone starts at the live tail: the recording's last 0.0 MiB hold no frames of it (nostr)".to_owned(),
            "r.jsonl: social starts at the live tail: a mastodon stream cannot be asked for what it sent before".to_owned(),
        ];
        for (got, want) in report.iter().zip(&want) {
            assert!(got.starts_with(want.as_str()), "{got}\nwant {want}");
        }
        assert_eq!(report.len(), 4);
        assert_eq!(rfc3339(BASE), "2026-05-28T20:26:40Z");
    }
}
