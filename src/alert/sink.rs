//! Sinks that write alerts as JSON lines (stdout or a file).
//!
//! A file gets each line whole or not at all. It was written through a
//! `BufWriter`: after a short write on a full disk the writer kept the
//! unwritten rest, and every retry appended another whole copy behind it,
//! so the file held a torn line glued to the next alert (invalid JSON, the
//! alert lost to a line reader) or the same line several times.
//!
//! A stream (stdout, a pipe, a device) cannot be cut back, so a line cut
//! short there is finished by the retry instead: the sink remembers how
//! much of it landed. Stdout is written unbuffered for the same reason:
//! through `io::stdout()`'s line buffer a failed write stayed in the
//! buffer, and each retry added another copy behind it.
//!
//! The delivery task writes a line through `write_line`, on a blocking
//! thread: here, beside the sink, because how a write can block (a pipe
//! nobody reads) is this sink's matter, not the delivery loop's.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::Alert;
use super::pipe::Pipe;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot open alert file {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write alert to {target}: {source}")]
    Write {
        target: String,
        #[source]
        source: io::Error,
    },
    /// A line that did not land whole and could not be cut off again: the
    /// next line starts with a newline, so the torn one stands alone.
    #[error(
        "cannot write alert to {target}: {source}; nor cut the file back to {len} bytes: {cut}"
    )]
    Torn {
        target: String,
        len: u64,
        #[source]
        source: io::Error,
        cut: io::Error,
    },
    #[error("cannot encode alert: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Anything that takes alerts in order.
pub trait AlertSink {
    fn send(&mut self, alert: &Alert) -> Result<(), SinkError>;
    /// Makes everything sent so far visible (flushes buffers).
    fn flush(&mut self) -> Result<(), SinkError>;
}

/// The alerts file as the sink needs it: appended to, and cut back to its
/// length before a line that failed. A trait so that a test can fill the
/// disk.
pub trait AlertFile: Write + Send {
    /// Its length in bytes now.
    fn size(&mut self) -> io::Result<u64>;
    /// Cuts it back to `len` bytes.
    fn cut(&mut self, len: u64) -> io::Result<()>;
}

impl AlertFile for File {
    fn size(&mut self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn cut(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
}

/// Where the lines go.
enum Out {
    /// Stdout, a pipe, a device: written as it comes, unbuffered.
    /// `torn`: a line that failed part-way, with how many of its bytes
    /// landed; the retry of the same line writes only the rest.
    Stream {
        out: Box<dyn Write + Send>,
        torn: Option<(Vec<u8>, usize)>,
    },
    /// A regular file, unbuffered, so nothing of a failed line is kept to
    /// be written again. `mid_line`: the file ends inside a line (an
    /// earlier run or write cut short), so the next line starts with `\n`.
    File {
        file: Box<dyn AlertFile>,
        mid_line: bool,
    },
}

/// One alert per line, flushed after each so a reader of the file or pipe
/// sees it at once.
pub struct JsonLines {
    target: String,
    out: Out,
    /// It writes to the process's standard output: a failed write there
    /// ends a one-shot command (see [`super::deliver::Delivery::stdout_failure`]).
    stdout: bool,
}

impl JsonLines {
    /// Stdout, through a duplicate of its descriptor (unbuffered; see the
    /// module's documentation). Should the duplicate fail (no descriptor
    /// left), through `io::stdout()`, whose line buffer flushes after
    /// each alert anyway.
    pub fn stdout() -> JsonLines {
        let out: Box<dyn Write + Send> = match io::stdout().as_fd().try_clone_to_owned() {
            Ok(fd) => Box::new(File::from(fd)),
            Err(error) => {
                tracing::warn!(%error, "cannot duplicate stdout; alerts go through its buffer");
                Box::new(io::stdout())
            }
        };
        JsonLines {
            stdout: true,
            ..JsonLines::writer("stdout", out)
        }
    }

    /// Whether it writes to the process's standard output.
    pub fn is_stdout(&self) -> bool {
        self.stdout
    }

    /// Appends to `path` (`-` means stdout), creating it if needed. A
    /// regular file that does not end with a newline (a line torn by a
    /// crash or a full disk) gets one before the first alert.
    pub fn file(path: &Path) -> Result<JsonLines, SinkError> {
        if path == Path::new("-") {
            return Ok(JsonLines::stdout());
        }
        let open_error = |source| SinkError::Open {
            path: path.to_path_buf(),
            source,
        };
        let target = path.display().to_string();
        // A pipe or a device (`/dev/stderr`) can be neither read nor cut:
        // opened for writing only, and a FIFO without waiting for its
        // reader (see [`Pipe`]).
        let regular = match std::fs::metadata(path) {
            Ok(meta) => meta.is_file(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => return Err(open_error(e)),
        };
        if !regular {
            let pipe = Pipe::open(path).map_err(open_error)?;
            if !pipe.is_open() {
                tracing::warn!(file = %target, "the alerts file is a FIFO nobody has open for reading: this sink retries until a reader opens it, its alerts wait in the outbox, the other sinks go on");
            }
            return Ok(JsonLines::writer(&target, Box::new(pipe)));
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(open_error)?;
        let mid_line = ends_mid_line(&mut file).map_err(open_error)?;
        Ok(JsonLines::on_file(&target, Box::new(file), mid_line))
    }

    /// A sink on a stream (nothing is cut back after a failure).
    pub fn writer(target: &str, out: Box<dyn Write + Send>) -> JsonLines {
        JsonLines {
            target: target.into(),
            out: Out::Stream { out, torn: None },
            stdout: false,
        }
    }

    /// A sink on a file that lines are cut back from after a failure;
    /// `mid_line`: it ends inside a line.
    pub fn on_file(target: &str, file: Box<dyn AlertFile>, mid_line: bool) -> JsonLines {
        JsonLines {
            target: target.into(),
            out: Out::File { file, mid_line },
            stdout: false,
        }
    }
}

fn write_error(target: &str, source: io::Error) -> SinkError {
    SinkError::Write {
        target: target.to_owned(),
        source,
    }
}

/// Whether a non-empty file's last byte is not a newline.
fn ends_mid_line(file: &mut File) -> io::Result<bool> {
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

impl AlertSink for JsonLines {
    fn send(&mut self, alert: &Alert) -> Result<(), SinkError> {
        let mut line = serde_json::to_vec(alert)?;
        line.push(b'\n');
        let target = self.target.as_str();
        let (file, mid_line) = match &mut self.out {
            Out::Stream { out, torn } => {
                return send_to_stream(out, torn, line).map_err(|e| write_error(target, e));
            }
            Out::File { file, mid_line } => (file, mid_line),
        };
        if *mid_line {
            line.insert(0, b'\n');
        }
        let len = file.size().map_err(|e| write_error(target, e))?;
        let Err(source) = file.write_all(&line) else {
            *mid_line = false;
            return Ok(());
        };
        // Whatever part of the line landed goes, so the retry writes it
        // whole once.
        match file.cut(len) {
            Ok(()) => Err(write_error(target, source)),
            Err(cut) => {
                // Still torn unless nothing landed.
                *mid_line = file.size().map_or(true, |now| now != len) || *mid_line;
                Err(SinkError::Torn {
                    target: target.to_owned(),
                    len,
                    source,
                    cut,
                })
            }
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        match &mut self.out {
            Out::Stream { out, .. } => out.flush().map_err(|e| write_error(&self.target, e)),
            // Written unbuffered.
            Out::File { .. } => Ok(()),
        }
    }
}

/// Writes `line` to a stream, or the rest of it when it is the line that
/// failed part-way last time. A different line after a torn one (the torn
/// alert was given up) starts with a newline, so the torn part stands
/// alone rather than spoiling this one.
fn send_to_stream(
    out: &mut Box<dyn Write + Send>,
    torn: &mut Option<(Vec<u8>, usize)>,
    line: Vec<u8>,
) -> io::Result<()> {
    let mut landed = 0;
    match torn.take() {
        Some((previous, written)) if previous == line => landed = written,
        Some(other) => {
            // Until the newline lands, the stream still ends inside the
            // other line.
            let mut newline = 0;
            if let Err(e) = write_from(out, b"\n", &mut newline) {
                *torn = Some(other);
                return Err(e);
            }
        }
        None => {}
    }
    if let Err(e) = write_from(out, &line, &mut landed) {
        *torn = (landed > 0).then_some((line, landed));
        return Err(e);
    }
    out.flush()
}

/// Writes `bytes` from `landed` on, counting in `landed` what was written
/// even when a later write fails.
fn write_from(out: &mut dyn Write, bytes: &[u8], landed: &mut usize) -> io::Result<()> {
    while *landed < bytes.len() {
        match out.write(&bytes[*landed..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *landed += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// How long a line may take to be written before the log says the sink is
/// stuck (a pipe whose reader stopped reading).
const STUCK_WRITE_WARNING: Duration = Duration::from_secs(30);

/// Writes `alert` to a JSON-lines sink on a blocking thread. A write to a
/// pipe or a FIFO nobody reads blocks until someone does: on one of the
/// runtime's two workers it froze the daemon whole (sources, status
/// server, the signal that should stop it), with nothing logged. On its
/// own thread it holds up this sink only, which says so in the log.
pub(crate) async fn write_line(
    sink: &str,
    lines: Arc<std::sync::Mutex<JsonLines>>,
    alert: Alert,
) -> Result<(), String> {
    let mut write = tokio::task::spawn_blocking(move || match lines.lock() {
        Ok(mut lines) => lines.send(&alert).map_err(|e| e.to_string()),
        Err(_) => Err("an earlier write to this sink panicked".to_owned()),
    });
    let stuck = tokio::time::sleep(STUCK_WRITE_WARNING);
    tokio::pin!(stuck);
    let mut warned = false;
    let written = loop {
        tokio::select! {
            written = &mut write => break written,
            () = &mut stuck, if !warned => {
                warned = true;
                tracing::warn!(sink, waited_secs = STUCK_WRITE_WARNING.as_secs(), "an alert line has not been taken yet (a reader that stopped reading?); this sink waits, the others go on");
            }
        }
    };
    if warned {
        tracing::info!(sink, "the stuck alert line was taken");
    }
    match written {
        Ok(written) => written,
        // A panic in the write is this sink's: raised again in its task,
        // where the supervisor sees it. Turned into a failure to retry, it
        // left the lock poisoned and every later alert retried for a day
        // and dead-lettered, while the daemon ran on.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(format!("the write failed: {e}")),
    }
}

#[cfg(test)]
#[path = "sink_tests.rs"]
mod tests;
