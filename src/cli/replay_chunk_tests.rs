//! The chunked reader against a line reader: the same lines, clock lines
//! and stops, whatever the read sizes; and the rounds of `prepare_all`.

use super::*;
use crate::Micros;
use crate::source::recording::{Line, LineReader};
use proptest::prelude::*;

#[test]
fn a_chunk_is_full_at_its_line_count_or_its_byte_size() {
    let mut lines = Chunk::default();
    for n in 0..CHUNK_LINES as u64 {
        assert!(!lines.is_full(lines.filled));
        lines.push_frame(n, b"{}", None);
    }
    assert!(lines.is_full(lines.filled));
    let long = vec![b'x'; 256 << 10];
    let mut bytes = Chunk::default();
    for n in 0..8 {
        assert!(!bytes.is_full(bytes.filled), "{n} quarter MiB");
        bytes.push_frame(n, &long, None);
    }
    assert!(
        bytes.is_full(bytes.filled),
        "8 lines of 256 KiB fill a chunk"
    );
    assert_eq!(bytes.lines.len(), 8);
}

/// A line as the tests compare them: its number, and its bytes or, for
/// an oversized one, its length.
type Seen = (u64, Result<Vec<u8>, usize>);

/// The time of the clock line each frame was sent with, in order.
type Clocks = Vec<Option<Micros>>;

/// Every line of `input` through [`Reader::next_chunk`], reading
/// `read_bytes` at a time (clock lines taken out), with the number of
/// chunks and how the last one stopped.
fn chunked(input: &[u8], limit: usize, read_bytes: usize) -> (Vec<Seen>, Clocks, usize, Stop) {
    let mut reader = Reader::new(input, limit);
    reader.read_bytes = read_bytes;
    let (mut seen, mut clocks) = (Vec::new(), Vec::new());
    let mut chunk = Chunk::default();
    let mut chunks = 0;
    loop {
        let (mut full, stop) = reader.next_chunk("test", chunk);
        chunks += 1;
        for line in full.lines.drain(..) {
            seen.push(match line.what {
                What::Frame { bytes, clock } => {
                    clocks.push(clock.map(|c| c.time_us));
                    (line.line_no, Ok(full.bytes[bytes].to_vec()))
                }
                What::Oversized(len) => (line.line_no, Err(len)),
                What::Clock(_) => continue,
            });
        }
        full.filled = 0;
        chunk = full;
        if !matches!(stop, Stop::Full) {
            return (seen, clocks, chunks, stop);
        }
    }
}

/// The same lines through the line-at-a-time reader `check` uses, each
/// one tried as a clock line.
fn line_by_line(input: &[u8], limit: usize) -> (Vec<Seen>, Clocks) {
    let mut reader = LineReader::new(std::io::BufReader::with_capacity(7, input), limit);
    let (mut seen, mut clocks, mut clock) = (Vec::new(), Vec::new(), None);
    while let Some((n, line)) = reader.next_line().expect("in-memory read") {
        match line {
            Line::Frame(bytes) => match ClockLine::parse(bytes) {
                Some(line) => clock = Some(line.time_us),
                None => {
                    seen.push((n, Ok(bytes.to_vec())));
                    clocks.push(clock);
                }
            },
            Line::Oversized(len) => seen.push((n, Err(len))),
        }
    }
    (seen, clocks)
}

#[test]
fn lines_split_as_a_line_reader_splits_them() {
    // (input, limit, lines wanted)
    let cases: [(&[u8], usize, &[Seen]); 6] = [
        (b"", 10, &[]),
        (b"\n", 10, &[(1, Ok(vec![]))]),
        (
            b"a\r\nbb\n\nlast",
            10,
            &[
                (1, Ok(b"a".to_vec())),
                (2, Ok(b"bb".to_vec())),
                (3, Ok(vec![])),
                (4, Ok(b"last".to_vec())),
            ],
        ),
        (
            b"short\n0123456789abcdef\nafter\n",
            8,
            &[
                (1, Ok(b"short".to_vec())),
                (2, Err(16)),
                (3, Ok(b"after".to_vec())),
            ],
        ),
        (
            b"ok\n0123456789",
            8,
            &[(1, Ok(b"ok".to_vec())), (2, Err(10))],
        ),
        (b"12345678\r\n", 8, &[(1, Err(9))]),
    ];
    for (input, limit, want) in cases {
        for read_bytes in [1, 2, 3, 5, 64] {
            let (got, _, _, stop) = chunked(input, limit, read_bytes);
            assert_eq!(got, want, "{input:?} limit {limit}, reads of {read_bytes}");
            assert!(matches!(stop, Stop::End), "{input:?}");
        }
    }
}

#[test]
fn a_chunk_s_last_lines_start_the_next_one() {
    let input: Vec<u8> = (0..3 * CHUNK_LINES + 17)
        .flat_map(|n| format!("line {n}\n").into_bytes())
        .collect();
    for read_bytes in [1, 13, 4096, READ_BYTES] {
        let (got, _, chunks, _) = chunked(&input, 100, read_bytes);
        assert_eq!(chunks, 4, "reads of {read_bytes}");
        assert_eq!(got, line_by_line(&input, 100).0, "reads of {read_bytes}");
    }
}

/// A clock line names the frames after it and is no frame; one of a
/// source dated by arrival, outside a stored range, is also time
/// passing there, with frames after it or none (a tick).
#[test]
fn clock_lines_name_the_frames_after_them_and_are_not_frames() {
    use crate::source::SourceKind;
    let clock = ClockLine::new(7, "social", SourceKind::Mastodon, "m.example");
    let tick = ClockLine::new(9, "social", SourceKind::Mastodon, "m.example");
    let jetstream = ClockLine::new(11, "bluesky", SourceKind::Jetstream, "");
    let stored = ClockLine {
        stored_since: Some(1),
        ..ClockLine::new(12, "relay", SourceKind::Nostr, "")
    };
    let input = [
        "before".to_owned(),
        clock.to_line(),
        "after".to_owned(),
        tick.to_line(),
        jetstream.to_line(),
        stored.to_line(),
        "last".to_owned(),
    ]
    .join("\n");
    let mut reader = Reader::new(input.as_bytes(), 1000);
    let (chunk, _) = reader.next_chunk("test", Chunk::default());
    let mut frames = Vec::new();
    let mut passing = Vec::new();
    for line in &chunk.lines {
        match &line.what {
            What::Frame { bytes, clock } => frames.push((
                line.line_no,
                &chunk.bytes[bytes.clone()],
                clock.as_deref().map(|c| c.time_us),
            )),
            What::Oversized(len) => panic!("line {} oversized: {len}", line.line_no),
            What::Clock(clock) => passing.push((line.line_no, clock.time_us)),
        }
    }
    assert_eq!(
        frames,
        [
            (1, &b"before"[..], None),
            (3, &b"after"[..], Some(7)),
            (7, &b"last"[..], Some(12))
        ]
    );
    assert_eq!(passing, [(2, 7), (4, 9)]);
}

#[test]
fn an_endless_line_is_measured_without_being_held() {
    let endless = io::repeat(b'x').take(1 << 20);
    let mut reader = Reader::new(endless, 100);
    let (chunk, stop) = reader.next_chunk("test", Chunk::default());
    assert!(matches!(stop, Stop::End));
    assert!(
        matches!(chunk.lines[..], [ChunkLine { line_no: 1, what: What::Oversized(len) }] if len == 1 << 20)
    );
    assert!(
        chunk.bytes.len() <= 100 + 2 * READ_BYTES,
        "the buffer grew to {} bytes",
        chunk.bytes.len()
    );
}

/// Reads what it holds, then fails (or is interrupted once first).
struct Failing<'a> {
    data: &'a [u8],
    interrupted: bool,
}

impl Read for Failing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.interrupted {
            self.interrupted = true;
            return Err(io::ErrorKind::Interrupted.into());
        }
        if self.data.is_empty() {
            return Err(io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn a_read_error_keeps_the_lines_before_it_and_names_the_last() {
    let failing = Failing {
        data: b"one\ntwo\nthr",
        interrupted: false,
    };
    let (chunk, stop) = Reader::new(failing, 100).next_chunk("rec.jsonl", Chunk::default());
    assert_eq!(
        chunk.lines.len(),
        2,
        "the cut line is lost, the whole ones kept"
    );
    match stop {
        Stop::Failed(error) => assert_eq!(
            error, "cannot read rec.jsonl after line 2: disk on fire",
            "{error}"
        ),
        _ => panic!("want a failed read"),
    }
}

/// A compressed recording cut short (a recorder killed) is read to its
/// last whole line and the error says why it ends there.
#[test]
fn a_compressed_recording_cut_short_is_named_as_such() {
    let body: Vec<u8> = (0..2000)
        .flat_map(|i: u64| {
            format!("{{\"n\":{}}}\n", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).into_bytes()
        })
        .collect();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gzip, &body).expect("gzip");
    let gzip = gzip.finish().expect("gzip");
    let zstd = zstd::encode_all(&body[..], 3).expect("zstd");
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, bytes) in [("r.gz", gzip), ("r.zst", zstd)] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("write");
        let path = path.to_str().expect("utf8");
        let mut reader = Reader::new(crate::source::recording::open(path).expect("open"), 100);
        let mut lines = 0;
        let error = loop {
            let (read, stop) = reader.next_chunk(name, Chunk::default());
            lines += read.lines.len();
            match stop {
                Stop::Full => {}
                Stop::End => panic!("{name}: read to an end"),
                Stop::Failed(error) => break error,
            }
        };
        assert!(lines < 2000, "{name}: {lines}");
        assert!(
            error.contains(&format!("cannot read {name} after line {lines}")),
            "{error}"
        );
        assert!(error.contains("cut short"), "{error}");
    }
}

/// Numbers of the lines `prepare_all` hands over, per hand-over, until
/// `take` fails at hand-over `fail_at` (if given).
fn taken(input: &[u8], fail_at: Option<usize>) -> (Vec<Vec<u64>>, Result<Stop, usize>) {
    let matcher = Matcher::embedded().expect("the built-in patterns");
    let mut handed = Vec::new();
    let stop = Reader::new(input, 1 << 20).prepare_all(&matcher, "rec.jsonl", |lines| {
        if fail_at == Some(handed.len()) {
            return Err(handed.len());
        }
        handed.push(lines.iter().map(|(line_no, _)| *line_no).collect());
        Ok(())
    });
    (handed, stop)
}

/// Every line, in order, chunk after chunk, the last chunk included;
/// a failing pipeline stops the reading at once with its error.
#[test]
fn prepare_all_hands_over_every_chunk_in_order_and_stops_at_an_error() {
    let lines = 2 * CHUNK_LINES + 7;
    let input = "{}\n".repeat(lines);
    let (handed, stop) = taken(input.as_bytes(), None);
    assert!(matches!(stop, Ok(Stop::End)), "read to its end");
    let sizes: Vec<usize> = handed.iter().map(Vec::len).collect();
    assert_eq!(sizes, [CHUNK_LINES, CHUNK_LINES, 7]);
    let all: Vec<u64> = handed.concat();
    assert_eq!(all, (1..=lines as u64).collect::<Vec<_>>());

    let (handed, stop) = taken(input.as_bytes(), Some(1));
    assert!(matches!(stop, Err(1)), "the pipeline's error is returned");
    assert_eq!(handed.len(), 1, "nothing is handed over after it");

    let (handed, stop) = taken(b"", None);
    assert!(matches!(stop, Ok(Stop::End)));
    assert_eq!(
        handed,
        [Vec::<u64>::new()],
        "an empty file: one empty hand-over"
    );
}

proptest! {
    /// Lines, CRLFs, empty and oversized lines, `#`s and clock lines
    /// (whole, cut, or over the limit), at any read size.
    #[test]
    fn any_input_splits_as_a_line_reader_splits_it(
        input in proptest::collection::vec(
            prop_oneof![
                Just(&b"a"[..]), Just(&b"{"[..]), Just(&b"\n"[..]), Just(&b"\r"[..]),
                Just(&b"#"[..]),
                Just(&br##"{"kind":"#clock","time_us":7,"source":"s","protocol":"jetstream"}"##[..]),
                Just(&br##"{"kind":"#clock","time_us":9,"source":"t","protocol":"jetstream"}"##[..]),
            ],
            0..120,
        ).prop_map(|tokens| tokens.concat()),
        limit in prop_oneof![0usize..12, 60usize..90],
        read_bytes in 1usize..100,
    ) {
        let (got, clocks, _, stop) = chunked(&input, limit, read_bytes);
        let (want, want_clocks) = line_by_line(&input, limit);
        prop_assert_eq!(got, want);
        prop_assert_eq!(clocks, want_clocks);
        prop_assert!(matches!(stop, Stop::End));
    }
}
