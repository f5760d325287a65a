//! Writing a recording so that a crash loses only its last seconds.
//!
//! A compressed stream is readable only up to its last complete gzip
//! member or zstd frame, and a plain file up to its last line end: written
//! as one member or frame finished at a clean stop, a `kill -9` (OOM,
//! power loss) lost the whole recording, and what a later run appended sat
//! behind the damage, lost too. So the writer makes **commit points**, at
//! least every [`COMMIT_EVERY`] while lines are written and at the end:
//! plain, the buffer is flushed to the operating system; `.gz`, the member
//! is ended and a new one started; `.zst`, the frame is ended and a new one
//! started (concatenated members and frames are one valid stream, and
//! `replay` reads them all). A commit point is always between whole lines
//! (the caller writes whole lines), so everything before one reads back
//! whole. There is no fsync: a commit survives the process, not
//! necessarily the machine.
//!
//! Opening an existing file checks its tail first ([`super::recover`]): a
//! torn tail (what came after the last commit point of a run that did not
//! stop cleanly) is cut, damage before it refused.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::recover::{self, Format, Tail, TailError};

/// The longest a recorded line waits for its commit point: a crash loses
/// at most these seconds. Each commit point costs the compressor its
/// history; measured on the demo's posts with a clock line each, at 40
/// posts a second (Bluesky's rate): every 5 s, 1.2 % (zstd) and 1.7 %
/// (gzip) of the file; every 2 s, 4.0 % and 4.3 %.
pub const COMMIT_EVERY: Duration = Duration::from_secs(5);

/// Why a recording cannot be opened for writing.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot append to {path}: {source}")]
    Tail {
        path: String,
        #[source]
        source: TailError,
    },
    #[error("cannot cut the torn tail of {path}: {source}")]
    Cut {
        path: String,
        #[source]
        source: io::Error,
    },
    /// Another process (a second `record`) is writing the file.
    #[error(
        "{path} is being written by another process (another `outagewatch record`?): two writers would cut each other's unfinished lines as torn tails and ruin the recording; stop the other one or choose another --out"
    )]
    InUse { path: String },
}

/// The compressor (or buffer) over the file.
enum Stream {
    /// After a commit point, before the next line: the next member or
    /// frame starts with that line (a stop without one adds no empty one).
    Between(BufWriter<File>),
    Plain(BufWriter<File>),
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<File>>),
}

impl Stream {
    fn start(format: Format, file: BufWriter<File>) -> io::Result<Stream> {
        Ok(match format {
            Format::Plain => Stream::Plain(file),
            Format::Gzip => Stream::Gzip(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::default(),
            )),
            Format::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(file, 3)?;
                // 4 bytes a frame: damage is found when appending, not
                // replayed as frames.
                encoder.include_checksum(true)?;
                Stream::Zstd(encoder)
            }
        })
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Stream::Between(w) | Stream::Plain(w) => w,
            Stream::Gzip(w) => w,
            Stream::Zstd(w) => w,
        }
    }

    /// Ends the member or frame and hands back the file, flushed.
    fn end(self) -> io::Result<BufWriter<File>> {
        let mut file = match self {
            Stream::Between(w) | Stream::Plain(w) => w,
            Stream::Gzip(w) => w.finish()?,
            Stream::Zstd(w) => w.finish()?,
        };
        file.flush()?;
        Ok(file)
    }
}

/// A recording being written, line by line, with commit points.
pub struct RecordingWriter {
    /// `None` once a commit point failed: nothing more is written.
    stream: Option<Stream>,
    /// The file as first opened, holding the lock that keeps a second
    /// writer out for as long as this one lives.
    _lock: File,
    format: Format,
    /// Lines written since the last commit point.
    pending: bool,
    last_commit: Instant,
    every: Duration,
}

impl RecordingWriter {
    /// Opens `path` for appending (creating it), its torn tail cut first:
    /// returns what the check found, for the caller to report.
    pub fn open(path: &Path) -> Result<(RecordingWriter, Tail), OpenError> {
        let name = || path.display().to_string();
        let format = Format::of(path);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| OpenError::Open {
                path: name(),
                source,
            })?;
        // Before the check: a second `record` on the same file took the
        // first one's unfinished member for a crash's torn tail, cut it,
        // and both wrote on, each saying it had recorded its frames; the
        // file read back as nothing.
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(OpenError::InUse { path: name() });
            }
            // A file system without locks (some network and FUSE ones)
            // still records, as before, said once.
            Err(std::fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
                tracing::warn!(path = %name(), error = %e, "cannot lock the recording: a second `record` on it would not be refused");
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(OpenError::Open {
                    path: name(),
                    source,
                });
            }
        }
        let tail = recover::check(&mut file, format).map_err(|source| OpenError::Tail {
            path: name(),
            source,
        })?;
        if tail.cut > 0 {
            file.set_len(tail.kept)
                .and_then(|()| file.sync_all())
                .map_err(|source| OpenError::Cut {
                    path: name(),
                    source,
                })?;
        }
        // Appending from here on (the cursor is wherever the check left it).
        let appending = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|source| OpenError::Open {
                path: name(),
                source,
            })?;
        let writer = RecordingWriter {
            stream: Some(Stream::Between(BufWriter::new(appending))),
            _lock: file,
            format,
            pending: false,
            last_commit: Instant::now(),
            every: COMMIT_EVERY,
        };
        Ok((writer, tail))
    }

    /// A crash, for tests: the stream's buffered bytes are lost, as on a
    /// `kill -9`, and the lock goes with the process.
    #[cfg(test)]
    fn crash(self) {
        std::mem::forget(self.stream);
        drop(self._lock);
    }

    /// Commit points this often instead (`record --commit-secs`).
    pub fn commit_every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    /// How the file is written.
    pub fn format(&self) -> Format {
        self.format
    }

    /// One line, `line` then `\n` (`line` holds no line end).
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let stream = self.stream.take().ok_or_else(Self::failed)?;
        let stream = match stream {
            Stream::Between(file) => Stream::start(self.format, file)?,
            started => started,
        };
        let out = self.stream.insert(stream).writer();
        out.write_all(line)?;
        out.write_all(b"\n")?;
        self.pending = true;
        Ok(())
    }

    /// A commit point when lines wait and the last one is
    /// [`COMMIT_EVERY`] old; call it after whole lines only.
    pub fn commit_if_due(&mut self) -> io::Result<()> {
        if self.pending && self.last_commit.elapsed() >= self.every {
            self.commit()?;
        }
        Ok(())
    }

    /// A commit point now (when lines wait): see the module's text.
    pub fn commit(&mut self) -> io::Result<()> {
        self.last_commit = Instant::now();
        if !self.pending {
            return Ok(());
        }
        let stream = self.stream.take().ok_or_else(Self::failed)?;
        self.stream = Some(Stream::Between(stream.end()?));
        self.pending = false;
        Ok(())
    }

    /// The last commit point, at a clean stop.
    pub fn finish(mut self) -> io::Result<()> {
        let stream = self.stream.take().ok_or_else(Self::failed)?;
        stream.end().map(drop)
    }

    fn failed() -> io::Error {
        io::Error::other("an earlier commit point failed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Lines of run `run`, `n` of them, some long enough to pass the
    /// writer's buffer.
    fn lines(run: usize, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                // Hard to compress, so the compressors pass on bytes.
                let mut seed = (run * 1000 + i) as u64;
                let text: String = (0..(i * 97) % 3000)
                    .map(|_| {
                        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        char::from(b'a' + (seed >> 59) as u8)
                    })
                    .collect();
                format!(r#"{{"run":{run},"n":{i},"text":"{text}"}}"#)
            })
            .collect()
    }

    fn read_back(path: &Path) -> Vec<String> {
        let mut text = String::new();
        super::super::open(path.to_str().expect("utf8"))
            .expect("open")
            .read_to_string(&mut text)
            .expect("every byte kept reads back");
        text.lines().map(str::to_owned).collect()
    }

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).expect("metadata").len()
    }

    /// Run one in commits of 10 lines, noting the file's length after each
    /// and the lines before it.
    fn first_run(path: &Path, run: &[String]) -> Vec<(u64, usize)> {
        let (mut out, tail) = RecordingWriter::open(path).expect("open");
        assert_eq!(
            tail,
            Tail {
                kept: 0,
                cut: 0,
                recent: 0
            }
        );
        let mut commits = Vec::new();
        for (i, line) in run.iter().enumerate() {
            out.write_line(line.as_bytes()).expect("write");
            if i % 10 == 9 {
                out.commit().expect("commit");
                commits.push((file_len(path), i + 1));
            }
        }
        out.finish().expect("finish");
        commits.push((file_len(path), run.len()));
        commits
    }

    fn second_run(path: &Path, run: &[String]) -> Tail {
        let (mut out, tail) = RecordingWriter::open(path).expect("a torn tail is cut, not refused");
        for line in run {
            out.write_line(line.as_bytes()).expect("write");
        }
        out.finish().expect("finish");
        tail
    }

    const FORMATS: [(&str, Format); 3] = [
        ("r.jsonl", Format::Plain),
        ("r.jsonl.gz", Format::Gzip),
        ("r.jsonl.zst", Format::Zstd),
    ];

    /// A crash simulated by cutting the file anywhere in its last two
    /// commits: the next run cuts the torn tail and appends, and the file
    /// reads back as every line committed before the cut (plain: every
    /// whole line) and then every line of the next run, nothing garbled.
    #[test]
    fn a_recording_cut_anywhere_reads_back_to_its_last_commit_then_the_next_run() {
        let (run1, run2) = (lines(1, 60), lines(2, 15));
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, format) in FORMATS {
            let whole = dir.path().join(name);
            let commits = first_run(&whole, &run1);
            let bytes = std::fs::read(&whole).expect("read");
            assert_eq!(read_back(&whole), run1, "{name}: a clean stop");
            let from = commits[commits.len() - 3].0 as usize;
            let step = ((bytes.len() - from) / 150).max(1);
            let path = dir.path().join(format!("cut-{name}"));
            for cut in (from..=bytes.len()).step_by(step).chain([bytes.len() - 1]) {
                std::fs::write(&path, &bytes[..cut]).expect("write");
                let tail = second_run(&path, &run2);
                let kept = match format {
                    Format::Plain => {
                        let text = String::from_utf8_lossy(&bytes[..cut]);
                        text.matches('\n').count()
                    }
                    _ => commits
                        .iter()
                        .take_while(|(end, _)| *end as usize <= cut)
                        .last()
                        .map_or(0, |(_, lines)| *lines),
                };
                let mut want = run1[..kept].to_vec();
                want.extend(run2.iter().cloned());
                assert_eq!(read_back(&path), want, "{name} cut at {cut}");
                assert_eq!(tail.kept + tail.cut, cut as u64, "{name} cut at {cut}");
            }
        }
    }

    /// A writer dropped without its last commit point (the process killed):
    /// the lines before that commit point read back, then the next run's.
    #[test]
    fn a_writer_lost_between_commits_keeps_what_was_committed() {
        let (mut run1, run2) = (lines(1, 80), lines(2, 5));
        // Longer than the buffer: written past it, its line end not.
        run1.push(format!(r#"{{"long":"{}"}}"#, lines(3, 120).concat()));
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, format) in FORMATS {
            let path = dir.path().join(name);
            let (mut out, _) = RecordingWriter::open(&path).expect("open");
            for line in &run1[..40] {
                out.write_line(line.as_bytes()).expect("write");
            }
            out.commit().expect("commit");
            let committed = file_len(&path);
            // Past the buffer, so part of it reached the file, torn.
            for line in &run1[40..] {
                out.write_line(line.as_bytes()).expect("write");
            }
            out.crash();
            assert!(file_len(&path) > committed, "{name}: a torn tail");
            let tail = second_run(&path, &run2);
            let got = read_back(&path);
            let kept = got.len() - run2.len();
            match format {
                Format::Plain => assert!(kept >= 40, "{name}: {kept}"),
                _ => assert_eq!((kept, tail.kept), (40, committed), "{name}"),
            }
            assert!(tail.cut > 0, "{name}");
            assert_eq!(got[..kept], run1[..kept], "{name}");
            assert_eq!(got[kept..], run2[..], "{name}");
        }
    }

    /// Damage before the end is refused, the message naming its offset,
    /// and the file is left as it was.
    #[test]
    fn a_damaged_recording_is_refused_naming_the_offset() {
        let run = lines(1, 40);
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, format) in FORMATS.into_iter().skip(1) {
            let path = dir.path().join(name);
            let commits = first_run(&path, &run);
            let mut bytes = std::fs::read(&path).expect("read");
            let (second, third) = (commits[1].0 as usize, commits[2].0 as usize);
            bytes[(second + third) / 2] ^= 0xa5;
            std::fs::write(&path, &bytes).expect("write");
            let err = RecordingWriter::open(&path)
                .err()
                .unwrap_or_else(|| panic!("{name} ({format:?}) must be refused"));
            let text = err.to_string();
            assert!(
                text.contains(&format!("damaged at byte {second}")),
                "{text}"
            );
            assert_eq!(
                std::fs::read(&path).expect("read"),
                bytes,
                "{name} untouched"
            );
        }
    }

    /// A second writer of the same file is refused while the first lives,
    /// the file left as it is: it took the first one's unfinished member
    /// for a crash's torn tail and cut it, and both wrote on.
    #[test]
    fn a_second_writer_of_one_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, _) in FORMATS {
            let path = dir.path().join(name);
            let (mut first, _) = RecordingWriter::open(&path).expect("open");
            first.write_line(b"{\"n\":1}").expect("write");
            first.commit().expect("commit");
            first.write_line(b"{\"n\":2}").expect("write");
            let before = std::fs::read(&path).expect("read");
            let err = RecordingWriter::open(&path)
                .err()
                .unwrap_or_else(|| panic!("{name}: a second writer must be refused"));
            assert!(
                err.to_string().contains("being written by another process"),
                "{err}"
            );
            assert_eq!(std::fs::read(&path).expect("read"), before, "{name}");
            first.finish().expect("finish");
            let (second, _) = RecordingWriter::open(&path).expect("free again");
            second.finish().expect("finish");
            assert_eq!(read_back(&path), [r#"{"n":1}"#, r#"{"n":2}"#], "{name}");
        }
    }

    /// A whole recording of another format than its name says is refused
    /// as misnamed, naming both and the way out, and left as it is: it was
    /// called damaged at byte 0, with the advice to `truncate -s 0` it.
    #[test]
    fn a_recording_of_another_format_than_its_name_is_misnamed_not_damaged() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (written, named, want) in [
            ("r.zst", "r.gz", "a Zstd recording, but its name says Gzip"),
            (
                "r.jsonl",
                "p.zst",
                "a Plain recording, but its name says Zstd",
            ),
            (
                "r.gz",
                "g.jsonl",
                "a Gzip recording, but its name says Plain",
            ),
        ] {
            let from = dir.path().join(written);
            let (mut out, _) = RecordingWriter::open(&from).expect("open");
            out.write_line(b"{}").expect("write");
            out.finish().expect("finish");
            let path = dir.path().join(named);
            std::fs::rename(&from, &path).expect("rename");
            let before = std::fs::read(&path).expect("read");
            let err = RecordingWriter::open(&path)
                .err()
                .unwrap_or_else(|| panic!("{named} must be refused"))
                .to_string();
            assert!(err.contains(want) && err.contains("rename it"), "{err}");
            assert!(!err.contains("damaged at"), "{err}");
            assert_eq!(std::fs::read(&path).expect("read"), before, "{named}");
            std::fs::remove_file(&path).expect("rm");
        }
    }

    /// A clean stop after a commit point adds no empty member or frame.
    #[test]
    fn commit_points_add_no_empty_member_or_frame() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, _) in FORMATS {
            let path = dir.path().join(name);
            let (mut out, _) = RecordingWriter::open(&path).expect("open");
            out.write_line(b"{}").expect("write");
            out.commit().expect("commit");
            let committed = file_len(&path);
            out.commit().expect("nothing to commit");
            out.finish().expect("finish");
            assert_eq!(file_len(&path), committed, "{name}");
            assert_eq!(read_back(&path), ["{}"], "{name}");
        }
    }
}
