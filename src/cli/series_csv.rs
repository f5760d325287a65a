//! Plain count series (`outagewatch series`): CSV with a header
//! `timestamp,value` or `timestamp,value,authors`, timestamps RFC 3339 or
//! `YYYY-MM-DD HH:MM:SS` (UTC), values non-negative numbers (counts, or a
//! gauge), `authors` (optional) the distinct authors behind the value. The
//! bucket width is inferred from the data: the median gap between
//! consecutive timestamps. Pure parsing; the command feeds the result to
//! the detector.

use std::io::Read;

use crate::{MICROS_PER_SEC, Micros};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SeriesError {
    #[error("line {line}: {message}")]
    Line { line: u64, message: String },
    #[error("the header must be `timestamp,value` or `timestamp,value,authors`, found {0:?}")]
    Header(String),
    /// The input could not be read at all (a directory, an I/O error): not
    /// a wrong header, which is what it used to be reported as.
    #[error("cannot read it: {0}")]
    Unreadable(String),
    #[error("{0}")]
    Shape(String),
}

/// One point of a series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub time_us: Micros,
    pub value: f64,
    /// Distinct authors behind the value, when the file says.
    pub authors: Option<u64>,
}

/// Whether every value is a whole number a count can be: a count, not a
/// gauge.
pub fn all_counts(points: &[Point]) -> bool {
    points.iter().all(|p| is_count(p.value))
}

fn is_count(value: f64) -> bool {
    value.fract() == 0.0 && value < MAX_COUNT
}

/// A count must be below 2^64, the reports the detector can hold
/// (`1.5e308` was read as u64::MAX reports).
pub const MAX_COUNT: f64 = 18_446_744_073_709_551_616.0;

/// Refuses a series to be judged as counts whose values are not counts,
/// naming the first such row by its time: `--kind count` rounded 0.4 to
/// nothing in silence.
pub fn check_counts(points: &[Point]) -> Result<(), SeriesError> {
    let Some(p) = points.iter().find(|p| !is_count(p.value)) else {
        return Ok(());
    };
    let at = crate::alert::rfc3339(p.time_us);
    let what = if p.value >= MAX_COUNT {
        "2^64 or more, too large for a count"
    } else {
        "not a whole number"
    };
    Err(SeriesError::Shape(format!(
        "the value at {at}, {}, is {what}: a count is a whole number of reports (`--kind gauge` reads a level)",
        if p.value >= MAX_COUNT {
            format!("{:e}", p.value)
        } else {
            p.value.to_string()
        }
    )))
}

/// Whether most rows stand on the grid of `step_us` from the first row
/// (within a tenth of a step, for clocks that jitter): a count exported per
/// bucket does, each row being its bucket's start, while the readings of a
/// level sampled at irregular times (a sensor's speeds and travel times)
/// do not, whole numbers or not. The step is the rows' own median gap, to
/// the microsecond: counts every 250 ms, judged on a grid of whole
/// seconds, stood three quarters off it and were averaged as a gauge.
pub fn on_grid(points: &[Point], step_us: Micros) -> bool {
    let Some(first) = points.first() else {
        return true;
    };
    let bucket_us = step_us.max(1);
    let tolerance = bucket_us / 10;
    let off = points
        .iter()
        .filter(|p| {
            let offset = (p.time_us - first.time_us).rem_euclid(bucket_us);
            offset > tolerance && bucket_us - offset > tolerance
        })
        .count();
    off * 2 <= points.len()
}

/// Most rows a series may have: each is held in memory until the file is
/// read (32 bytes a row). A file of 10 million rows within one minute took
/// 547 MB before the bound on buckets, checked after reading, refused it.
pub const MAX_ROWS: usize = 10_000_000;

/// Longest line, in bytes: a row is a timestamp and two numbers. A file
/// without line breaks (`/dev/zero`) grew without bound, a 400 MB number
/// took 940 MB.
pub const MAX_LINE_BYTES: usize = 4096;

/// The width of a series' buckets: its rows' median gap in whole seconds,
/// at least one (rows closer than a second are summed or averaged per
/// second).
pub fn bucket_secs_of(gap_us: Micros) -> i64 {
    (gap_us / MICROS_PER_SEC).max(1)
}

/// Parses a CSV series, sorted by time, with its rows' median gap in µs
/// (positive; see [`bucket_secs_of`]).
pub fn parse(input: impl Read) -> Result<(Vec<Point>, Micros), SeriesError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(LineBound::new(input));
    let header = reader
        .headers()
        .map_err(|e| match e.kind() {
            // The line bound's own error names the line it counted.
            csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                SeriesError::Shape(io.to_string())
            }
            csv::ErrorKind::Io(io) => SeriesError::Unreadable(io.to_string()),
            // Said as what it is, not as a header "found" to be an error.
            csv::ErrorKind::Utf8 { .. } => SeriesError::Line {
                line: 1,
                message: "the header is not UTF-8 text (a UTF-16 export? save it as UTF-8)".into(),
            },
            _ => SeriesError::Header(shown(&e.to_string())),
        })?
        .clone();
    let columns: Vec<String> = header.iter().map(str::to_ascii_lowercase).collect();
    let with_authors = columns == ["timestamp", "value", "authors"];
    if columns != ["timestamp", "value"] && !with_authors {
        return Err(SeriesError::Header(shown(
            &header.iter().collect::<Vec<_>>().join(","),
        )));
    }
    let mut points = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| match e.kind() {
            // The line bound's own error names the line it counted.
            csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                SeriesError::Shape(io.to_string())
            }
            csv::ErrorKind::Io(io) => SeriesError::Unreadable(io.to_string()),
            _ => SeriesError::Line {
                line: e.position().map_or(0, |p| p.line()),
                message: e.to_string(),
            },
        })?;
        if points.len() == MAX_ROWS {
            return Err(SeriesError::Shape(format!(
                "more than {MAX_ROWS} rows: give the series in wider buckets"
            )));
        }
        points.push(parse_row(&record, with_authors)?);
    }
    points.sort_by_key(|p| p.time_us);
    let gap_us = median_gap_us(&points)?;
    Ok((points, gap_us))
}

/// `text` as an error message shows it: whole up to 64 characters, else
/// its start and its length (a 10 MB field was echoed whole).
fn shown(text: &str) -> String {
    let cut = crate::text::truncate_chars(text, 64);
    if cut == text {
        cut
    } else {
        format!("{cut} ({} bytes)", text.len())
    }
}

/// Ends the input with an error at the first row longer than
/// [`MAX_LINE_BYTES`], naming its line (the CSV reader buffers a whole
/// record, however long). A row is bounded, not a line: a quoted field
/// may hold line breaks, and a field of many short lines grew without
/// bound while every line passed.
struct LineBound<R> {
    inner: R,
    /// 1-based number of the line being read.
    line: u64,
    /// Bytes of the row being read so far.
    in_row: usize,
    field: Field,
    /// The byte read last was a `\r` ending a line: a `\n` right after it
    /// ends the same one.
    after_cr: bool,
}

/// Where the byte read last stands in its field, as the CSV reader sees
/// it: a quote opens a quoted field only at the field's start (a stray
/// `5"` ran the row on to the next quote, and the bound named a line far
/// after the one at fault), and `""` within one is a quote.
#[derive(Clone, Copy)]
enum Field {
    Start,
    Bare,
    Quoted,
    /// A quote inside a quoted field: its end, or the first of `""`.
    QuoteInQuoted,
}

impl Field {
    /// The state after `byte`; a line break outside a quoted field ends
    /// the row (back at `Start`): `\n`, `\r\n` or a lone `\r`, as the CSV
    /// reader ends one (a file saved with classic Mac line ends was one row
    /// to the bound, refused once past 4 KiB as a row too long).
    fn after(self, byte: u8) -> Field {
        match (self, byte) {
            (Field::Quoted, b'"') => Field::QuoteInQuoted,
            (Field::Quoted, _) | (Field::QuoteInQuoted, b'"') => Field::Quoted,
            (Field::Start, b'"') => Field::Quoted,
            (_, b',' | b'\n' | b'\r') => Field::Start,
            _ => Field::Bare,
        }
    }
}

impl<R: Read> LineBound<R> {
    fn new(inner: R) -> Self {
        LineBound {
            inner,
            line: 1,
            in_row: 0,
            field: Field::Start,
            after_cr: false,
        }
    }
}

impl<R: Read> Read for LineBound<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &byte in &buf[..n] {
            let line_ends = byte == b'\r' || (byte == b'\n' && !self.after_cr);
            let row_ends = matches!(byte, b'\n' | b'\r') && !matches!(self.field, Field::Quoted);
            self.field = self.field.after(byte);
            self.after_cr = byte == b'\r';
            if line_ends {
                self.line += 1;
            }
            if row_ends {
                self.in_row = 0;
                continue;
            }
            self.in_row += 1;
            if self.in_row > MAX_LINE_BYTES {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "line {}: a row longer than {MAX_LINE_BYTES} bytes (a row is a timestamp and one or two numbers)",
                        self.line
                    ),
                ));
            }
        }
        Ok(n)
    }
}

/// One row: a timestamp, a non-negative finite value and, in the
/// three-column form, the authors (empty: not known).
fn parse_row(record: &csv::StringRecord, with_authors: bool) -> Result<Point, SeriesError> {
    let line = record.position().map_or(0, |p| p.line());
    let bad = |message: String| SeriesError::Line { line, message };
    let (Some(stamp), Some(value)) = (record.get(0), record.get(1)) else {
        return Err(bad("needs a timestamp and a value".into()));
    };
    let time_us = parse_time(stamp).ok_or_else(|| {
        bad(format!(
            "timestamp {:?} is neither RFC 3339 nor YYYY-MM-DD HH:MM:SS from 1970 to 9999",
            shown(stamp)
        ))
    })?;
    let text = value;
    let value: f64 = text
        .parse()
        .map_err(|_| bad(format!("value {:?} is not a number", shown(text))))?;
    // What was written, not what it parsed to (`1e400` said "value inf").
    if !(value.is_finite() && value >= 0.0) {
        return Err(bad(format!(
            "value {} is not a count (negative or not finite)",
            shown(text)
        )));
    }
    let authors = match record.get(2).filter(|_| with_authors) {
        None | Some("") => None,
        Some(a) => Some(a.parse::<u64>().map_err(|_| {
            bad(format!(
                "authors {:?} is not a non-negative whole number",
                shown(a)
            ))
        })?),
    };
    // Distinct people behind a value of reports are at most that many:
    // 500 authors beside a value of 0 made a quiet count fire `high`.
    // Compared as whole numbers (as floats, 2^53 + 1 authors passed
    // beside 2^53), and only beside a count: a gauge's reading is its own
    // count, its authors column not read.
    if let Some(a) = authors.filter(|a| is_count(value) && *a > value as u64) {
        return Err(bad(format!(
            "authors {a} is more than the value {} (the distinct authors behind the value's reports)",
            shown(text)
        )));
    }
    Ok(Point {
        time_us,
        value,
        authors,
    })
}

/// The median positive gap between consecutive timestamps of sorted
/// `points`, in µs.
fn median_gap_us(points: &[Point]) -> Result<Micros, SeriesError> {
    if points.len() < 2 {
        return Err(SeriesError::Shape(
            "a series needs at least two points".into(),
        ));
    }
    let mut gaps: Vec<i64> = points
        .windows(2)
        .map(|w| w[1].time_us - w[0].time_us)
        .filter(|gap| *gap > 0)
        .collect();
    if gaps.is_empty() {
        return Err(SeriesError::Shape(
            "every point has the same timestamp".into(),
        ));
    }
    gaps.sort_unstable();
    Ok(gaps[gaps.len() / 2])
}

/// A row's time, if it is one within 1970 to 9999 (the event times every
/// source accepts): `%Y` also reads `+200000-01-01`, and the gap between
/// two such times does not fit in 64 bits.
fn parse_time(stamp: &str) -> Option<Micros> {
    let time = match chrono::DateTime::parse_from_rfc3339(stamp) {
        Ok(t) => t.timestamp_micros(),
        Err(_) => chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S")
            .ok()?
            .and_utc()
            .timestamp_micros(),
    };
    crate::source::EVENT_TIMES.contains(&time).then_some(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points at these offsets in seconds from the first.
    fn at(offsets: &[i64]) -> Vec<Point> {
        offsets
            .iter()
            .map(|s| Point {
                time_us: 1_700_000_000 * MICROS_PER_SEC + s * MICROS_PER_SEC,
                value: 1.0,
                authors: None,
            })
            .collect()
    }

    /// The first row is the grid's origin.
    #[test]
    fn rows_of_a_bucketed_count_stand_on_the_grid_and_irregular_readings_do_not() {
        let minutes = |step: i64, off: fn(i64) -> i64| -> Vec<i64> {
            (0..50).map(|i| i * step + off(i)).collect()
        };
        let cases: [(&str, Vec<i64>, i64, bool); 7] = [
            ("every bucket", minutes(300, |_| 0), 300, true),
            ("buckets missing", vec![0, 300, 1200, 1500, 3000], 300, true),
            (
                "a clock that jitters by seconds",
                minutes(300, |i| (i % 3) * 7),
                300,
                true,
            ),
            (
                "a few rows off",
                minutes(300, |i| if i % 5 == 1 { 130 } else { 0 }),
                300,
                true,
            ),
            // 7 to 13 minutes apart, at no fixed second.
            (
                "readings at irregular times",
                minutes(600, |i| i * 7919 % 360 - 180),
                600,
                false,
            ),
            (
                "readings between the buckets",
                minutes(300, |i| if i > 0 { 150 } else { 0 }),
                300,
                false,
            ),
            ("one row", vec![0], 60, true),
        ];
        for (what, offsets, bucket, expected) in cases {
            let mut points = at(&offsets);
            points.sort_by_key(|p| p.time_us);
            assert_eq!(
                on_grid(&points, bucket * MICROS_PER_SEC),
                expected,
                "{what}"
            );
        }
    }

    #[test]
    fn an_authors_column_is_read() {
        let csv = "timestamp,value,authors\n2026-07-04 14:00:00,30,4\n2026-07-04 14:01:00,2,\n";
        let (points, _) = parse(csv.as_bytes()).expect("parses");
        assert_eq!(points[0].authors, Some(4));
        assert_eq!(points[1].authors, None);
    }

    #[test]
    fn parses_both_time_forms_and_infers_the_bucket() {
        let csv = "timestamp,value\n2026-07-04 14:00:00,3\n2026-07-04T14:05:00Z,4\n2026-07-04 14:10:00,0\n2026-07-04 14:20:00,1.4\n";
        let (points, gap_us) = parse(csv.as_bytes()).expect("parses");
        assert_eq!(bucket_secs_of(gap_us), 300, "the median gap");
        assert_eq!(points.len(), 4);
        assert_eq!(points[3].value, 1.4);
        assert!(!all_counts(&points));
        assert!(all_counts(&points[..3]));
        assert_eq!(points[0].time_us, 1_783_173_600 * MICROS_PER_SEC);
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("time,count\n1,2\n", "the header must be `timestamp,value`"),
            (
                "timestamp,value\n2026-07-04 14:00:00,3\nyesterday,4\n",
                "line 3: timestamp \"yesterday\"",
            ),
            (
                "timestamp,value\n2026-07-04 14:00:00,3\n2026-07-04 14:01:00,-1\n",
                "line 3: value -1 is not a count",
            ),
            (
                "timestamp,value\n2026-07-04 14:00:00,x\n",
                "line 2: value \"x\" is not a number",
            ),
            (
                "timestamp,value\n2026-07-04 14:00:00,3\n",
                "at least two points",
            ),
            (
                "timestamp,value,authors\n2026-07-04 14:00:00,3,2\n2026-07-04 14:01:00,3,x\n",
                "line 3: authors \"x\"",
            ),
        ];
        for (csv, want) in cases {
            let err = parse(csv.as_bytes()).expect_err(csv).to_string();
            assert!(err.contains(want), "{csv:?}: {err}");
        }
    }

    /// A directory given as the file failed as "the header must be ...,
    /// found \"Is a directory\"": the read error is named as one.
    #[test]
    fn an_unreadable_input_is_not_called_a_bad_header() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = std::fs::File::open(dir.path()).expect("open the directory");
        let err = parse(file).expect_err("a directory has no rows");
        assert!(matches!(err, SeriesError::Unreadable(_)), "{err:?}");
        assert!(err.to_string().starts_with("cannot read it: "), "{err}");
    }
}
