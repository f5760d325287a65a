//! Sinks that write alerts as JSON lines (stdout or a file).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::Alert;

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
    #[error("cannot encode alert: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Anything that takes alerts in order.
pub trait AlertSink {
    fn send(&mut self, alert: &Alert) -> Result<(), SinkError>;
    /// Makes everything sent so far visible (flushes buffers).
    fn flush(&mut self) -> Result<(), SinkError>;
}

/// One alert per line, flushed after each so a reader of the file or pipe
/// sees it at once.
pub struct JsonLines {
    target: String,
    out: Box<dyn Write + Send>,
}

impl JsonLines {
    pub fn stdout() -> JsonLines {
        JsonLines {
            target: "stdout".into(),
            out: Box::new(io::stdout()),
        }
    }

    /// Appends to `path` (`-` means stdout), creating it if needed.
    pub fn file(path: &Path) -> Result<JsonLines, SinkError> {
        if path == Path::new("-") {
            return Ok(JsonLines::stdout());
        }
        let file: File = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| SinkError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(JsonLines {
            target: path.display().to_string(),
            out: Box::new(BufWriter::new(file)),
        })
    }

    pub fn writer(target: &str, out: Box<dyn Write + Send>) -> JsonLines {
        JsonLines {
            target: target.into(),
            out,
        }
    }
}

impl AlertSink for JsonLines {
    fn send(&mut self, alert: &Alert) -> Result<(), SinkError> {
        let mut line = serde_json::to_vec(alert)?;
        line.push(b'\n');
        self.out
            .write_all(&line)
            .and_then(|()| self.out.flush())
            .map_err(|source| SinkError::Write {
                target: self.target.clone(),
                source,
            })
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|source| SinkError::Write {
            target: self.target.clone(),
            source,
        })
    }
}
