//! The file sink on a full disk: every alert lands once and whole.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use super::*;
use crate::MICROS_PER_SEC;
use crate::detect::TransitionKind;

/// A file on a disk with `free` bytes left: a write takes what fits and
/// reports it (a short write), then fails with ENOSPC, as write(2) does.
#[derive(Default)]
struct Disk {
    data: Vec<u8>,
    free: usize,
    /// Cutting the file back fails (an I/O error on truncate).
    cut_fails: bool,
}

#[derive(Clone, Default)]
struct FullDisk(Arc<Mutex<Disk>>);

impl FullDisk {
    fn with_free(free: usize) -> FullDisk {
        FullDisk(Arc::new(Mutex::new(Disk {
            free,
            ..Disk::default()
        })))
    }

    fn disk(&self) -> std::sync::MutexGuard<'_, Disk> {
        self.0.lock().expect("disk")
    }

    /// A file sink on this disk.
    fn sink(&self) -> JsonLines {
        JsonLines::on_file("alerts.jsonl", Box::new(self.clone()), false)
    }

    /// The file's lines.
    fn lines(&self) -> Vec<String> {
        let text = String::from_utf8(self.disk().data.clone()).expect("utf-8");
        text.lines().map(str::to_owned).collect()
    }
}

impl Write for FullDisk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut disk = self.disk();
        let n = buf.len().min(disk.free);
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        disk.data.extend_from_slice(&buf[..n]);
        disk.free -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AlertFile for FullDisk {
    fn size(&mut self) -> io::Result<u64> {
        Ok(self.disk().data.len() as u64)
    }

    fn cut(&mut self, len: u64) -> io::Result<()> {
        let mut disk = self.disk();
        if disk.cut_fails {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        let len = usize::try_from(len).expect("small");
        let freed = disk.data.len().saturating_sub(len);
        disk.data.truncate(len);
        disk.free += freed;
        Ok(())
    }
}

/// Alert `i`, with a detail long enough that a line spans several writes
/// of a short-writing disk.
fn alert(i: i64) -> Alert {
    let at = 1_800_000_000 * MICROS_PER_SEC + i * MICROS_PER_SEC;
    let detail = format!("alert {i}: {}", "x".repeat(300));
    Alert::source_health("bluesky", TransitionKind::Firing, at, at, detail)
}

fn line_len(i: i64) -> usize {
    serde_json::to_vec(&alert(i)).expect("encodes").len() + 1
}

/// The ids of the file's lines, `None` for a line that is not JSON.
fn ids(lines: &[String]) -> Vec<Option<String>> {
    lines
        .iter()
        .map(|l| serde_json::from_str::<Alert>(l).ok().map(|a| a.id))
        .collect()
}

/// Alert 2 meets a disk with `left` bytes free after alert 1, fails
/// `tries` times, then space is freed: the file holds alerts 1, 2, 3 once
/// each, every line valid JSON.
#[test]
fn a_full_disk_leaves_each_alert_in_the_file_once_and_whole() {
    let first = line_len(1);
    let second = line_len(2);
    let cases: &[(usize, usize)] = &[
        (0, 1),
        (0, 3),
        (1, 1),
        (1, 4),
        (second / 2, 1),
        (second / 2, 3),
        (second - 1, 1),
        (second - 1, 2),
    ];
    let want: Vec<Option<String>> = (1..=3).map(|i| Some(alert(i).id)).collect();
    for &(left, tries) in cases {
        let disk = FullDisk::with_free(first + left);
        let mut sink = disk.sink();
        sink.send(&alert(1)).expect("room for alert 1");
        for _ in 0..tries {
            let err = sink.send(&alert(2)).expect_err("disk full");
            assert!(matches!(err, SinkError::Write { .. }), "{err}");
            assert_eq!(
                disk.lines().len(),
                1,
                "left {left}: the torn line is cut off"
            );
        }
        disk.disk().free += 10_000;
        sink.send(&alert(2)).expect("room again");
        sink.send(&alert(3)).expect("room");
        sink.flush().expect("flush");
        assert_eq!(
            ids(&disk.lines()),
            want,
            "left {left}, {tries} failed tries"
        );
    }
}

/// A torn line that cannot be cut off (truncate fails too) stands on a
/// line of its own: the alerts after it are still read.
#[test]
fn a_torn_line_that_cannot_be_cut_stands_alone() {
    let disk = FullDisk::with_free(line_len(1) + 40);
    let mut sink = disk.sink();
    sink.send(&alert(1)).expect("room");
    disk.disk().cut_fails = true;
    let err = sink.send(&alert(2)).expect_err("disk full");
    assert!(matches!(err, SinkError::Torn { .. }), "{err}");
    disk.disk().free += 10_000;
    sink.send(&alert(2)).expect("room again");
    sink.send(&alert(3)).expect("room");
    let ids = ids(&disk.lines());
    let id = |i| Some(alert(i).id);
    assert_eq!(ids, [id(1), None, id(2), id(3)], "{:?}", disk.lines());
}

/// A file an earlier run left ending inside a line (torn by a crash or a
/// full disk) gets a newline before the first alert of this run.
#[test]
fn a_file_ending_inside_a_line_gets_a_newline_before_the_next_alert() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (before, lines_before) in [("", 0), ("{\"id\":\"a\"}\n", 1), ("{\"id\":\"discord-", 1)] {
        let path = dir.path().join("alerts.jsonl");
        std::fs::write(&path, before).expect("write");
        let mut sink = JsonLines::file(&path).expect("opens");
        sink.send(&alert(1)).expect("written");
        sink.send(&alert(2)).expect("written");
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), lines_before + 2, "{before:?}: {text}");
        assert_eq!(
            ids(&lines[lines_before..]),
            [Some(alert(1).id), Some(alert(2).id)]
        );
        assert!(text.ends_with('\n'));
    }
}

/// A stream (a pipe to a reader that stopped reading, a device) cannot be
/// cut back: a line cut short there is finished by the retry, so each
/// alert is still read once and whole. It used to be written whole again
/// after the torn part, which a line reader saw as a broken line.
#[test]
fn a_stream_finishes_a_torn_line_on_the_retry() {
    let first = line_len(1);
    let second = line_len(2);
    let want: Vec<Option<String>> = (1..=3).map(|i| Some(alert(i).id)).collect();
    for (left, tries) in [
        (0, 1),
        (1, 2),
        (second / 2, 1),
        (second / 2, 3),
        (second - 1, 2),
    ] {
        let pipe = FullDisk::with_free(first + left);
        let mut sink = JsonLines::writer("pipe", Box::new(pipe.clone()));
        sink.send(&alert(1)).expect("room for alert 1");
        for _ in 0..tries {
            let err = sink.send(&alert(2)).expect_err("pipe full");
            assert!(matches!(err, SinkError::Write { .. }), "{err}");
        }
        pipe.disk().free += 10_000;
        sink.send(&alert(2)).expect("room again");
        sink.send(&alert(3)).expect("room");
        assert_eq!(
            ids(&pipe.lines()),
            want,
            "left {left}, {tries} failed tries: {:?}",
            pipe.lines()
        );
    }
}

/// When the torn alert is given up (a dead letter) and another comes, the
/// torn part gets a line of its own and the next alert is whole, even if
/// the newline that ends the torn part has to wait for room itself.
#[test]
fn a_line_after_a_torn_one_given_up_starts_on_a_line_of_its_own() {
    let id = |i| Some(alert(i).id);
    // (bytes of alert 2 that land, room for the newline at once)
    for (landed, newline_fits) in [(0, true), (1, true), (40, true), (40, false)] {
        let pipe = FullDisk::with_free(line_len(1) + landed);
        let mut sink = JsonLines::writer("pipe", Box::new(pipe.clone()));
        sink.send(&alert(1)).expect("room");
        sink.send(&alert(2)).expect_err("pipe full");
        if !newline_fits {
            sink.send(&alert(3)).expect_err("no room for the newline");
        }
        pipe.disk().free += 10_000;
        sink.send(&alert(3)).expect("room again");
        let want = if landed == 0 {
            vec![id(1), id(3)]
        } else {
            vec![id(1), None, id(3)]
        };
        assert_eq!(ids(&pipe.lines()), want, "{landed}: {:?}", pipe.lines());
        assert!(pipe.disk().data.ends_with(b"\n"));
    }
}
