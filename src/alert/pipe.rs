//! An alerts file that is a FIFO (or another non-regular file: a device,
//! `/dev/stderr`), opened without waiting for a reader.
//!
//! Opening a FIFO for writing blocks until a process opens it for reading.
//! The alerts file was opened that way while the sinks started, before the
//! status server and the signal handling: with nobody reading, `run` and
//! `replay` hung at start-up, serving nothing, and only SIGKILL ended
//! them. Here it is opened with `O_NONBLOCK`, which fails at once (ENXIO)
//! while there is no reader; the sink then waits like a webhook that is
//! down: each try opens it again, the failure is retried with backoff,
//! counted and logged with its reason, and the alerts wait in the outbox.
//! Once open, the flag is cleared, so a write still waits for room in the
//! pipe (on the sink's writer thread, see [`super::sink::write_line`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why a write did not happen: the FIFO has no reader (yet).
pub const NO_READER: &str = "no process has it open for reading";

/// A FIFO or device, opened at the first write that finds a reader.
pub struct Pipe {
    path: PathBuf,
    file: Option<File>,
}

impl Pipe {
    /// Opens `path` if a reader has it open; without one it is opened at
    /// a later write. Any other failure (no permission) is an error now.
    pub fn open(path: &Path) -> io::Result<Pipe> {
        let file = open_without_waiting(path)?;
        Ok(Pipe {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Whether it is open (it had a reader).
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// The open file, opening it now if it has a reader.
    fn file(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            self.file = open_without_waiting(&self.path)?;
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, NO_READER))
    }
}

impl Write for Pipe {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.file()?.write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

/// Opens `path` for appending without waiting for a reader: `None` when
/// it is a FIFO nobody has open for reading (ENXIO). The descriptor is
/// made blocking again, so a write waits for room rather than failing
/// with EAGAIN half-way through a line.
fn open_without_waiting(path: &Path) -> io::Result<Option<File>> {
    let opened = OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok(None),
        Err(e) => return Err(e),
    };
    let fd = file.as_raw_fd();
    // SAFETY: `fd` is the open descriptor `file` owns for this whole
    // block; F_GETFL and F_SETFL read and set its status flags only.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(Some(file))
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::time::Duration;

    use super::*;

    /// A FIFO in a fresh directory.
    fn fifo() -> (tempfile::TempDir, PathBuf) {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("alerts.fifo");
        let path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).expect("path");
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "mkfifo");
        (dir, fifo)
    }

    /// Its read end, opened without waiting for a writer.
    fn reader(fifo: &Path) -> File {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo)
            .expect("reader")
    }

    /// Nobody reading: opening returns at once, and each write says why
    /// it did not happen (the open used to wait for a reader for ever).
    /// Once a reader comes, the next write opens it and lands whole, and
    /// the descriptor blocks again (no EAGAIN half-way through a line).
    #[test]
    fn a_fifo_without_a_reader_is_opened_at_the_first_write_that_finds_one() {
        let (_dir, fifo) = fifo();
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(Pipe::open(&path));
        });
        let mut pipe = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("opening does not wait for a reader")
            .expect("opens");
        assert!(!pipe.is_open());
        let error = pipe.write_all(b"one\n").expect_err("no reader");
        assert_eq!(error.kind(), io::ErrorKind::NotConnected);
        assert!(
            error.to_string().contains("no process has it open"),
            "{error}"
        );

        let mut reader = reader(&fifo);
        pipe.write_all(b"one\n").expect("a reader now");
        assert!(pipe.is_open());
        let file = pipe.file.as_ref().expect("open");
        // SAFETY: reads the status flags of a descriptor `file` owns.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(flags & libc::O_NONBLOCK, 0, "blocking again");
        let mut got = [0u8; 4];
        reader.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"one\n");
    }

    /// A regular file or a device opens at once, as before; a path that
    /// cannot be opened is still an error at start.
    #[test]
    fn other_files_open_at_once_and_errors_still_show() {
        let mut null = Pipe::open(Path::new("/dev/null")).expect("opens");
        assert!(null.is_open());
        null.write_all(b"x\n").expect("written");
        let missing = Pipe::open(Path::new("/nonexistent-dir/alerts.fifo"));
        assert!(missing.is_err());
    }

    /// A sink on a FIFO nobody reads starts, and retries (counted, with
    /// why) while its alerts wait in the outbox; once a reader opens it,
    /// they arrive whole and in order.
    #[tokio::test]
    async fn a_fifo_sink_retries_until_a_reader_comes_and_loses_nothing() {
        use crate::alert::deliver::{Delivery, Filter, RetryPolicy, SinkSpec, Target};
        let (dir, fifo) = fifo();
        let store = crate::state::SledStore::open(&dir.path().join("state")).expect("store");
        let outbox: crate::alert::outbox::Outbox = store.outbox();
        let firing = crate::detect::TransitionKind::Firing;
        let alerts: Vec<_> = (0..3)
            .map(|i| crate::alert::Alert::source_health(&format!("s{i}"), firing, 0, 0, "x".into()))
            .collect();
        for alert in &alerts {
            outbox.append(alert).expect("append");
        }
        let sink = SinkSpec {
            name: "alerts".into(),
            formerly: None,
            target: Target::Lines(Some(fifo.clone())),
            filter: Filter::default(),
            retry: RetryPolicy {
                horizon: Duration::from_secs(600),
                min_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(200),
            },
        };
        let supervisor = crate::supervise::Supervisor::new();
        let delivery = Delivery::start(vec![sink], outbox, crate::wall::system(), &supervisor)
            .expect("starts without a reader");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while delivery.reports()[0].retries < 2 {
            assert!(std::time::Instant::now() < deadline, "no retries");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let report = &delivery.reports()[0];
        assert_eq!((report.delivered, report.pending), (0, 3));
        let why = report.failing.as_ref().map(|f| f.last_error.clone());
        assert!(
            why.as_deref()
                .is_some_and(|w| w.contains("no process has it open")),
            "{why:?}"
        );

        let mut reader = reader(&fifo);
        assert!(delivery.drain(Duration::from_secs(30)).await, "delivered");
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("read: {e}"),
            }
        }
        let ids: Vec<String> = String::from_utf8_lossy(&got)
            .lines()
            .map(|l| {
                serde_json::from_str::<crate::alert::Alert>(l)
                    .expect("whole")
                    .id
            })
            .collect();
        let want: Vec<String> = alerts.iter().map(|a| a.id.clone()).collect();
        assert_eq!(ids, want);
        delivery.stop(Duration::ZERO).await;
    }
}
