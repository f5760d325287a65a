//! The check `record` makes of an existing recording before appending to
//! it: a run killed (`kill -9`, OOM, power loss) leaves a torn tail, a
//! plain line without its line end, a gzip member without its trailer or
//! a zstd frame without its last blocks. Appended after as it was, the new
//! run was glued onto the half line, or sat behind a compressed stream no
//! reader gets past: everything appended was lost too. The torn tail is
//! what came after the last commit point (see [`super::writer`]), so it is
//! cut; damage anywhere else is refused, naming the byte offset, as no
//! rule says what to keep past it.
//!
//! Each check reads the file once, front to back (plain: only the tail,
//! back to its last line end), in constant memory. On the way it notes
//! where the recording's last [`RECENT_TEXT`] bytes of text start, for
//! [`super::resume`]: a compressed stream can only be read from the start
//! of a member or frame, and only this walk knows where those are.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

use zstd::zstd_safe::{DCtx, DParameter, InBuffer, OutBuffer};

use super::{GZIP_MAGIC, MAX_ZSTD_WINDOW_LOG};

/// How a recording is written: by its name (`.gz`, `.zst`, else plain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Plain,
    Gzip,
    Zstd,
}

impl Format {
    pub fn of(path: &std::path::Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("gz") => Format::Gzip,
            Some("zst") => Format::Zstd,
            _ => Format::Plain,
        }
    }

    /// The format a file's first bytes say, whatever its name.
    pub fn sniff(head: &[u8]) -> Format {
        if head.starts_with(&super::GZIP_MAGIC) {
            Format::Gzip
        } else if head.starts_with(&super::ZSTD_MAGIC) {
            Format::Zstd
        } else {
            Format::Plain
        }
    }

    /// The file name ending that says this format.
    fn ending(self) -> &'static str {
        match self {
            Format::Plain => "neither `.gz` nor `.zst`",
            Format::Gzip => "`.gz`",
            Format::Zstd => "`.zst`",
        }
    }

    /// What a complete unit is, for messages.
    pub fn unit(self) -> &'static str {
        match self {
            Format::Plain => "line",
            Format::Gzip => "gzip member",
            Format::Zstd => "zstd frame",
        }
    }
}

/// Where the complete part of a recording ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    /// Bytes of complete lines, members or frames, from the start.
    pub kept: u64,
    /// Bytes after them: a torn tail, to cut.
    pub cut: u64,
    /// Where reading starts to get at least the last [`RECENT_TEXT`]
    /// bytes of text of the kept part (all of it when shorter): a
    /// compressed file's member or frame start, a plain file's line start.
    pub recent: u64,
}

/// Text (decompressed bytes) read back from the end of a recording to
/// restore its sources' clocks ([`super::resume`]): 16 MiB, a few seconds
/// of the whole Jetstream firehose, minutes of its posts, far more than the
/// last 32 posts a watermark looks at.
pub const RECENT_TEXT: u64 = 16 << 20;

/// Member or frame starts remembered while walking a compressed file: at
/// 16 bytes each, 1 MiB of memory whatever the file. More units than this
/// in the last [`RECENT_TEXT`] bytes (under 256 bytes of text a unit) and
/// less text is read back.
const MAX_STARTS: usize = 1 << 16;

/// The unit starts of a compressed file that its last `margin` bytes of
/// text need, oldest first.
struct RecentStarts {
    margin: u64,
    /// (byte offset in the file, bytes of text before it)
    starts: VecDeque<(u64, u64)>,
}

impl RecentStarts {
    fn new(margin: u64) -> Self {
        RecentStarts {
            margin,
            starts: VecDeque::from([(0, 0)]),
        }
    }

    /// A member or frame starts at byte `at`, after `text` bytes of text.
    fn unit_starts(&mut self, at: u64, text: u64) {
        if self.starts.back().is_some_and(|last| last.0 == at) {
            return;
        }
        self.starts.push_back((at, text));
        // Drop the oldest start while the next one still gives `margin`
        // bytes of text up to here.
        while self.starts.len() > 1
            && (self.starts.len() > MAX_STARTS
                || self
                    .starts
                    .get(1)
                    .is_some_and(|s| text - s.1 >= self.margin))
        {
            self.starts.pop_front();
        }
    }

    /// Where to read from, once the last start noted is the kept end.
    fn first(&self) -> u64 {
        self.starts.front().map_or(0, |s| s.0)
    }
}

/// Why a recording cannot be appended to.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("cannot read it: {0}")]
    Read(#[source] io::Error),
    #[error(
        "it is damaged at byte {offset} ({reason}), before its end: refusing to append after \
         the damage (replay reads up to there; to keep that part, `truncate -s {offset}` it, \
         or record to a new file)"
    )]
    Damaged { offset: u64, reason: String },
    #[error(
        "it ends in {bytes} bytes without a line end, {why}: not the torn line a killed \
         recording leaves, so nothing is cut (check the path: a recording is JSON lines)"
    )]
    NotTorn { bytes: u64, why: &'static str },
    #[error(
        "it does not look like a recording ({why}); not appending (a recording is JSON lines: \
         check the path, or record to a new file)"
    )]
    NotRecording { why: String },
    /// A whole recording of another format than its name says: `record`
    /// writes by the name, so it cannot append, but nothing is damaged.
    #[error(
        "it is a {is:?} recording, but its name says {named:?}: not appending (`record` writes the format its name says; \
         nothing in it is damaged: rename it to end in {ending}, or record to a new file)",
        ending = is.ending()
    )]
    Misnamed { named: Format, is: Format },
}

/// Complete lines read back from the end of a plain file to tell a
/// recording from another file (a config, a binary) given by mistake:
/// cutting that one's "torn tail" destroyed its last line. At least the
/// last whole line is read, however long (up to [`TORN_LINE_MAX`]).
const LOOK_BACK: u64 = 64 * 1024;

/// The longest torn line a killed plain recording can end in: a frame is
/// at most the websocket's hard limit (16 MiB), its clock line far less.
const TORN_LINE_MAX: u64 = 32 << 20;

/// The complete part of the recording `file`, of `format`.
pub fn check<F: Read + Seek>(file: &mut F, format: Format) -> Result<Tail, TailError> {
    check_with(file, format, RECENT_TEXT)
}

/// [`check`], noting where the last `margin` bytes of text start.
pub(super) fn check_with<F: Read + Seek>(
    file: &mut F,
    format: Format,
    margin: u64,
) -> Result<Tail, TailError> {
    let mut head = Vec::with_capacity(4);
    file.seek(SeekFrom::Start(0)).map_err(TailError::Read)?;
    file.by_ref()
        .take(4)
        .read_to_end(&mut head)
        .map_err(TailError::Read)?;
    // Said as such: a zstd recording named `.gz` was called damaged at
    // byte 0, with the advice to `truncate -s 0` it.
    let is = Format::sniff(&head);
    if !head.is_empty() && is != format {
        return Err(TailError::Misnamed { named: format, is });
    }
    let len = file.seek(SeekFrom::End(0)).map_err(TailError::Read)?;
    let (kept, recent) = match format {
        Format::Plain => {
            let kept = last_line_end(file, len).map_err(TailError::Read)?;
            // Cutting is safe only for what a recording leaves: a text
            // file given by mistake would lose its last line, or all of it.
            let bytes = len - kept;
            let why = if kept == 0 {
                "and no complete line before them"
            } else {
                "more than the longest line a recording holds"
            };
            if bytes > 0 && (kept == 0 || bytes > TORN_LINE_MAX) {
                return Err(TailError::NotTorn { bytes, why });
            }
            looks_like_plain_recording(file, kept, len)?;
            // Back from `margin` before the end to the start of its line.
            let recent = match kept.checked_sub(margin) {
                Some(at) if at > 0 => last_line_end(file, at).map_err(TailError::Read)?,
                _ => 0,
            };
            (kept, recent)
        }
        Format::Gzip | Format::Zstd => {
            file.seek(SeekFrom::Start(0)).map_err(TailError::Read)?;
            let reader = BufReader::with_capacity(READ_BUFFER, &mut *file);
            let mut recent = RecentStarts::new(margin);
            let mut head = Head::default();
            let kept = if format == Format::Gzip {
                complete_members(reader, &mut recent, &mut head)?
            } else {
                complete_frames(reader, &mut recent, &mut head)?
            };
            if let Some(first) = head.first
                && !starts_a_line(first)
            {
                return Err(TailError::NotRecording {
                    why: format!(
                        "its text starts with byte 0x{first:02x}, not a JSON frame's `{{` or `[`"
                    ),
                });
            }
            (kept, recent.first())
        }
    };
    Ok(Tail {
        kept,
        cut: len - kept,
        recent,
    })
}

const READ_BUFFER: usize = 64 * 1024;

/// Whether a recording's line may start with `byte`: a frame or clock
/// line is a JSON object or array, and a blank frame is an empty line.
fn starts_a_line(byte: u8) -> bool {
    matches!(byte, b'{' | b'[' | b'\n')
}

/// Refuses a plain file whose end is not a recording's: the complete
/// lines in its last [`LOOK_BACK`] bytes must be UTF-8 with at least one
/// JSON object or array (a frame or a clock line; a recorded frame may be
/// malformed, so not every one need be), and a torn tail must start like a
/// line of one. An empty file is a new recording.
fn looks_like_plain_recording<F: Read + Seek>(
    file: &mut F,
    kept: u64,
    len: u64,
) -> Result<(), TailError> {
    let refuse = |why: String| Err(TailError::NotRecording { why });
    if len > kept {
        let mut first = [0u8; 1];
        file.seek(SeekFrom::Start(kept)).map_err(TailError::Read)?;
        file.read_exact(&mut first).map_err(TailError::Read)?;
        if !starts_a_line(first[0]) {
            return refuse(format!(
                "its last {} bytes, without a line end, do not start with a JSON frame's `{{` or `[`",
                len - kept
            ));
        }
    }
    if kept == 0 {
        return Ok(());
    }
    // The start of the last whole line, then back to a line start at
    // least LOOK_BACK before the end.
    let last = last_line_end(file, kept - 1).map_err(TailError::Read)?;
    if kept - last > TORN_LINE_MAX {
        return refuse(format!(
            "its last line is {} bytes, longer than any recorded frame",
            kept - last
        ));
    }
    let from = match kept.checked_sub(LOOK_BACK) {
        Some(at) if at > 0 && at < last => last_line_end(file, at).map_err(TailError::Read)?,
        Some(_) => last,
        None => 0,
    };
    let mut text = vec![0u8; (kept - from) as usize];
    file.seek(SeekFrom::Start(from)).map_err(TailError::Read)?;
    file.read_exact(&mut text).map_err(TailError::Read)?;
    if let Err(e) = std::str::from_utf8(&text) {
        return refuse(format!(
            "byte {} is not UTF-8 text",
            from + e.valid_up_to() as u64
        ));
    }
    let json = text.split(|&b| b == b'\n').any(|line| {
        line.first().is_some_and(|&b| b == b'{' || b == b'[')
            && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
    });
    if !json {
        return refuse(format!(
            "none of its lines from byte {from} on is a JSON frame or clock line"
        ));
    }
    Ok(())
}

/// The first byte of text a compressed recording holds, noted on the way.
#[derive(Default)]
struct Head {
    first: Option<u8>,
}

impl Head {
    fn saw(&mut self, text: &[u8]) {
        if self.first.is_none() {
            self.first = text.first().copied();
        }
    }
}

impl io::Write for Head {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.saw(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Just after the last `\n` of the first `len` bytes (0 without one),
/// reading back from the end a block at a time.
fn last_line_end<F: Read + Seek>(file: &mut F, len: u64) -> io::Result<u64> {
    let mut block = vec![0u8; READ_BUFFER];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(READ_BUFFER as u64);
        let part = &mut block[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(part)?;
        if let Some(at) = memchr::memrchr(b'\n', part) {
            return Ok(start + at as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// A reader that counts what its user consumed, and notes whether it ran
/// out of bytes (a decoder that fails then met the end, not bad data) and
/// whether the file itself failed.
struct Counting<R> {
    inner: R,
    consumed: u64,
    hit_end: bool,
    failed: Option<io::Error>,
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        match self.inner.fill_buf() {
            Ok(bytes) => {
                self.hit_end |= bytes.is_empty();
                Ok(bytes)
            }
            Err(e) => {
                let kind = e.kind();
                self.failed = Some(e);
                Err(kind.into())
            }
        }
    }

    fn consume(&mut self, amount: usize) {
        self.consumed += amount as u64;
        self.inner.consume(amount);
    }
}

impl<R: BufRead> Read for Counting<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// The end of the last complete gzip member: each is decoded alone and is
/// complete when its trailer's CRC-32 and length match what it decoded.
fn complete_members<R: BufRead>(
    reader: R,
    recent: &mut RecentStarts,
    head: &mut Head,
) -> Result<u64, TailError> {
    let mut input = Counting {
        inner: reader,
        consumed: 0,
        hit_end: false,
        failed: None,
    };
    let mut text = 0u64;
    loop {
        let start = input.consumed;
        recent.unit_starts(start, text);
        match input.fill_buf() {
            Ok([]) => return Ok(start),
            // Not a member at all (a plain file named `.gz`): refused, not
            // taken for a member cut short because it is shorter than a
            // gzip header.
            Ok(head) if !GZIP_MAGIC.starts_with(&head[..head.len().min(2)]) => {
                return Err(TailError::Damaged {
                    offset: start,
                    reason: "not a gzip member".to_owned(),
                });
            }
            Ok(_) => {}
            Err(_) => return Err(read_error(input.failed.take())),
        }
        let decoded = io::copy(&mut flate2::bufread::GzDecoder::new(&mut input), &mut *head);
        match decoded {
            Ok(bytes) => text += bytes,
            Err(_) if input.failed.is_some() => return Err(read_error(input.failed.take())),
            // Torn: the member was cut short by the end of the file.
            Err(_) if input.hit_end => return Ok(start),
            Err(e) => {
                return Err(TailError::Damaged {
                    offset: start,
                    reason: format!("gzip member: {e}"),
                });
            }
        }
    }
}

fn read_error(failed: Option<io::Error>) -> TailError {
    TailError::Read(failed.unwrap_or_else(|| io::Error::other("read failed")))
}

/// The end of the last complete zstd frame (skippable frames included):
/// the frames are decoded, output discarded, and one is complete when the
/// decoder says so (its checksum checked when it has one).
fn complete_frames<R: BufRead>(
    mut reader: R,
    recent: &mut RecentStarts,
    head: &mut Head,
) -> Result<u64, TailError> {
    let mut dctx = DCtx::create();
    let damaged = |offset, code| TailError::Damaged {
        offset,
        reason: format!("zstd frame: {}", zstd::zstd_safe::get_error_name(code)),
    };
    dctx.set_parameter(DParameter::WindowLogMax(MAX_ZSTD_WINDOW_LOG))
        .map_err(|code| damaged(0, code))?;
    let mut out = vec![0u8; DCtx::out_size()];
    // Bytes consumed before the current buffer; where the frame being
    // decoded started (the end of the last complete one).
    let (mut base, mut frame_start) = (0u64, 0u64);
    // Bytes of text decoded.
    let mut text = 0u64;
    loop {
        let bytes = reader.fill_buf().map_err(TailError::Read)?;
        if bytes.is_empty() {
            return Ok(frame_start);
        }
        let mut input = InBuffer::around(bytes);
        loop {
            let mut output = OutBuffer::around(&mut out[..]);
            let hint = dctx
                .decompress_stream(&mut output, &mut input)
                .map_err(|code| damaged(frame_start, code))?;
            let filled = output.pos() == output.capacity();
            text += output.pos() as u64;
            head.saw(output.as_slice());
            if hint == 0 {
                frame_start = base + input.pos() as u64;
                recent.unit_starts(frame_start, text);
            }
            if input.pos() == bytes.len() && !filled {
                break;
            }
        }
        let used = bytes.len();
        reader.consume(used);
        base += used as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    fn gzip(parts: &[&[u8]]) -> Vec<u8> {
        let mut all = Vec::new();
        for part in parts {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(part).expect("gzip");
            all.extend(enc.finish().expect("gzip"));
        }
        all
    }

    fn zstd(parts: &[&[u8]]) -> Vec<u8> {
        // With checksums, as the writer makes them: bad bytes in a raw
        // block are found.
        let mut all = Vec::new();
        for part in parts {
            let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd");
            enc.include_checksum(true).expect("checksum");
            enc.write_all(part).expect("zstd");
            all.extend(enc.finish().expect("zstd"));
        }
        all
    }

    fn tail(bytes: &[u8], format: Format) -> Result<Tail, TailError> {
        check(&mut Cursor::new(bytes), format)
    }

    /// Every cut inside the last unit keeps exactly the units before it;
    /// a cut at a unit's end keeps it.
    #[test]
    fn a_cut_anywhere_in_the_last_unit_keeps_the_complete_ones() {
        let first: Vec<u8> = (0..300)
            .flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes())
            .collect();
        let second = b"{\"last\":1}\n{\"last\":2}\n".repeat(50);
        for format in [Format::Plain, Format::Gzip, Format::Zstd] {
            let (whole, boundary) = match format {
                Format::Plain => ([&first[..], &second].concat(), first.len()),
                Format::Gzip => (gzip(&[&first, &second]), gzip(&[&first]).len()),
                Format::Zstd => (zstd(&[&first, &second]), zstd(&[&first]).len()),
            };
            for cut in boundary..=whole.len() {
                let got = tail(&whole[..cut], format).expect("a torn tail is no damage");
                let want = match format {
                    // Plain: the last line end at or before the cut.
                    Format::Plain => whole[..cut]
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |i| i + 1),
                    _ if cut == whole.len() => cut,
                    _ => boundary,
                };
                assert_eq!(got.kept as usize, want, "{format:?} cut at {cut}");
                assert_eq!((got.kept + got.cut) as usize, cut, "{format:?}");
            }
        }
    }

    /// Bad bytes before the end are refused, naming where the damaged
    /// member or frame starts.
    #[test]
    fn damage_before_the_end_is_refused_with_its_offset() {
        let parts: [&[u8]; 3] = [&b"{\"a\":1}\n".repeat(200), b"{\"b\":2}\n", b"{\"c\":3}\n"];
        for format in [Format::Gzip, Format::Zstd] {
            let encode = |parts: &[&[u8]]| match format {
                Format::Gzip => gzip(parts),
                _ => zstd(parts),
            };
            let first = encode(&parts[..1]).len();
            let mut bytes = encode(&parts);
            // Inside the second unit's data.
            let at = first + (encode(&parts[1..2]).len() - 6);
            bytes[at] ^= 0xff;
            bytes[at - 1] ^= 0x55;
            match tail(&bytes, format) {
                Err(TailError::Damaged { offset, reason }) => {
                    assert_eq!(offset as usize, first, "{format:?}: {reason}");
                }
                other => panic!("{format:?}: {other:?}"),
            }
            // A plain file named as if compressed: misnamed, not damaged.
            match tail(b"{\"a\":1}\n", format) {
                Err(TailError::Misnamed {
                    named,
                    is: Format::Plain,
                }) if named == format => {}
                other => panic!("{format:?}: {other:?}"),
            }
        }
        assert_eq!(tail(b"", Format::Gzip).expect("empty").kept, 0);
        assert_eq!(tail(b"", Format::Zstd).expect("empty").kept, 0);
        assert_eq!(
            tail(b"{}\n{\"no line end", Format::Plain)
                .expect("plain")
                .cut,
            13
        );
    }

    /// A plain file that cannot be a torn recording is left whole: one
    /// without any line end (a text file given by mistake), or one whose
    /// unfinished last line is longer than any recorded frame.
    #[test]
    fn a_plain_file_that_is_no_torn_recording_is_not_cut() {
        assert!(matches!(
            tail(b"my notes, no line end", Format::Plain),
            Err(TailError::NotTorn { bytes: 21, .. })
        ));
        let mut long = b"{\"a\":1}\n{".to_vec();
        long.resize(long.len() + TORN_LINE_MAX as usize + 1, b'x');
        assert!(matches!(
            tail(&long, Format::Plain),
            Err(TailError::NotTorn { .. })
        ));
        long.truncate(long.len() - 2);
        assert_eq!(tail(&long, Format::Plain).expect("torn").cut, TORN_LINE_MAX);
    }

    /// A file that is not a recording is neither cut nor appended to,
    /// torn tail or not: a config's last line, a binary's tail, a text
    /// file; a recording whose last frame is malformed still is one.
    #[test]
    fn a_file_that_is_no_recording_is_refused_whole() {
        let refused: [(&[u8], Format); 8] = [
            (
                b"[window]\nbucket_secs = 10\n# my last line without newline",
                Format::Plain,
            ),
            (b"[window]\nbucket_secs = 10\n", Format::Plain),
            (b"# notes\n{\"a\":1} is not a line of JSON\n", Format::Plain),
            (
                b"\x7fELF\x02\x01\x01\n{}\n\xff\xfe\x00\n\x00\x01",
                Format::Plain,
            ),
            (b"{\"a\":1}\n\x7fELF\x02", Format::Plain),
            (b"{\"a\":1}\nnot json\n\xc3\x28\n", Format::Plain),
            (&gzip(&[b"#!/bin/sh\necho hi\n"]), Format::Gzip),
            (&zstd(&[b"PK\x03\x04 zip"]), Format::Zstd),
        ];
        for (bytes, format) in refused {
            match tail(bytes, format) {
                Err(TailError::NotRecording { .. }) => {}
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
            }
        }
        let kept: [(&[u8], Format); 6] = [
            (b"", Format::Plain),
            (
                b"{\"kind\":\"#clock\"}\nnot json, a frame as sent\n",
                Format::Plain,
            ),
            (
                b"[\"EVENT\",\"s\",{}]\n\n{\"kind\":\"commit\"",
                Format::Plain,
            ),
            (b"{\"a\":\"caf\xc3\xa9\"}\n{\"b\":\"caf\xc3", Format::Plain),
            (&gzip(&[b"{\"a\":1}\n"]), Format::Gzip),
            (&zstd(&[b"\n[1]\n"]), Format::Zstd),
        ];
        for (bytes, format) in kept {
            tail(bytes, format).expect("a recording");
        }
    }
}
