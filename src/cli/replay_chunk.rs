//! Replaying on every core: a reading thread reads lines into chunks and
//! prepares the frames of each (decoded, normalized, classified: pure
//! work) in parallel on the thread pool, while the pipeline takes the
//! previous chunk's frames one by one in line order, so the alerts are
//! exactly those of a one-frame-at-a-time replay.

use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;

use std::io::BufRead;
use std::sync::mpsc::SyncSender;

use crate::matcher::Matcher;
use crate::pipeline::{Prepared, Received, prepare};
use crate::source::recording::{ClockLine, Length, LineReader};

/// Lines per chunk: enough to keep both cores busy between two hand-overs,
/// small enough that memory stays flat. A prepared frame (a post with its
/// verdict) takes a kilobyte or more, and three prepared chunks are alive
/// at most (one being prepared, one waiting, one in the pipeline): 4096
/// lines cost about 15 MiB more peak memory than 1024 on the realistic
/// recording, for no measurable speed (issue 15's 64 MiB target).
pub const CHUNK_LINES: usize = 1024;
/// Bytes per chunk, whatever the lines' lengths: 1024 lines of the longest
/// accepted length (`--max-line-bytes`, up to 64 MiB) must not be read into
/// memory at once. The reading thread reuses two buffers (one chunk being
/// read while the other is prepared), so this bounds the replay's raw line
/// buffers at twice 2 MiB plus one line.
pub const CHUNK_BYTES: usize = 2 << 20;

/// Lines read but not processed yet, their bytes in one buffer.
#[derive(Default)]
pub struct Chunk {
    bytes: Vec<u8>,
    lines: Vec<ChunkLine>,
}

struct ChunkLine {
    line_no: u64,
    what: What,
}

enum What {
    /// A frame (its bytes in the chunk), sent as the last clock line before
    /// it says (none: a Jetstream recording without clock lines).
    Frame {
        bytes: Range<usize>,
        clock: Option<Arc<ClockLine>>,
    },
    /// A line longer than the limit: its length.
    Oversized(usize),
}

impl Chunk {
    #[cfg(test)]
    fn push_frame(&mut self, line_no: u64, bytes: &[u8], clock: Option<Arc<ClockLine>>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        self.push_appended(line_no, start, clock);
    }

    /// A frame whose bytes were appended to the chunk's buffer from `start`.
    fn push_appended(&mut self, line_no: u64, start: usize, clock: Option<Arc<ClockLine>>) {
        let what = What::Frame {
            bytes: start..self.bytes.len(),
            clock,
        };
        self.lines.push(ChunkLine { line_no, what });
    }

    fn push_oversized(&mut self, line_no: u64, len: usize) {
        let what = What::Oversized(len);
        self.lines.push(ChunkLine { line_no, what });
    }

    fn is_full(&self) -> bool {
        self.lines.len() >= CHUNK_LINES || self.bytes.len() >= CHUNK_BYTES
    }

    /// Prepares every frame on the thread pool and hands the lines back in
    /// order, each frame with its preparation; the chunk is empty after.
    pub fn prepare(&mut self, matcher: &Matcher, file: &str) -> Lines {
        let bytes = &self.bytes;
        let ready = self
            .lines
            .par_drain(..)
            .map(|line| {
                let ready = match line.what {
                    What::Frame {
                        bytes: range,
                        clock,
                    } => {
                        let (_, received) = sender(file, clock.as_deref());
                        let prepared = prepare(matcher, &bytes[range], &received);
                        Ready::Frame { clock, prepared }
                    }
                    What::Oversized(len) => Ready::Oversized(len),
                };
                (line.line_no, ready)
            })
            .collect();
        self.bytes.clear();
        ready
    }
}

/// A chunk's lines ready for the pipeline, with their line numbers, in order.
pub type Lines = Vec<(u64, Ready)>;

/// A line of a chunk, ready for the pipeline.
pub enum Ready {
    Frame {
        clock: Option<Arc<ClockLine>>,
        prepared: Prepared,
    },
    Oversized(usize),
}

/// A recording's lines, read a chunk at a time.
pub struct Reader<R> {
    lines: LineReader<R>,
    /// Set by the last clock line: who sent the frames that follow, when.
    clock: Option<Arc<ClockLine>>,
    last_line: u64,
}

/// Where a chunk's reading stopped.
pub enum Stop {
    Full,
    End,
    /// A read error ended the file (what was read before counts).
    Failed(String),
}

impl<R: BufRead> Reader<R> {
    pub fn new(lines: LineReader<R>) -> Self {
        Reader {
            lines,
            clock: None,
            last_line: 0,
        }
    }

    /// The next chunk of `file`'s lines, and why it stopped there, read
    /// into `chunk` (an emptied one, whose buffers are reused: growing a
    /// new 2 MiB buffer for every chunk copied each line several times).
    pub fn next_chunk(&mut self, file: &str, mut chunk: Chunk) -> (Chunk, Stop) {
        debug_assert!(chunk.lines.is_empty() && chunk.bytes.is_empty());
        while !chunk.is_full() {
            // Read straight into the chunk's buffer; a clock line is taken
            // back out of it.
            let start = chunk.bytes.len();
            let (line_no, length) = match self.lines.append_line(&mut chunk.bytes) {
                Ok(Some(next)) => next,
                Ok(None) => return (chunk, Stop::End),
                Err(e) => {
                    let last = self.last_line;
                    let error = format!("cannot read {file} after line {last}: {e}");
                    return (chunk, Stop::Failed(error));
                }
            };
            self.last_line = line_no;
            match length {
                Length::Within => match ClockLine::parse(&chunk.bytes[start..]) {
                    Some(line) => {
                        self.clock = Some(Arc::new(line));
                        chunk.bytes.truncate(start);
                    }
                    None => chunk.push_appended(line_no, start, self.clock.clone()),
                },
                Length::Over(len) => chunk.push_oversized(line_no, len),
            }
        }
        (chunk, Stop::Full)
    }
}

impl<R: BufRead + Send> Reader<R> {
    /// Reads `file` to its end (or its first read error) a chunk at a
    /// time, prepares each on the thread pool and sends its lines, in
    /// order, with where the reading stopped; returns early when the
    /// receiver is gone. The next chunk is read while the pool prepares
    /// this one: read only once the pool was done, each read (a tenth of
    /// the work, more for a compressed file) left a core idle. Two
    /// chunks' buffers serve the whole file.
    pub fn prepare_all(mut self, matcher: &Matcher, file: &str, out: &SyncSender<(Lines, Stop)>) {
        let (mut chunk, mut stop) = self.next_chunk(file, Chunk::default());
        let mut spare = Chunk::default();
        loop {
            if !matches!(stop, Stop::Full) {
                let _ = out.send((chunk.prepare(matcher, file), stop));
                return;
            }
            let (lines, (next, next_stop)) = rayon::join(
                || chunk.prepare(matcher, file),
                || self.next_chunk(file, spare),
            );
            if out.send((lines, stop)).is_err() {
                return;
            }
            spare = std::mem::replace(&mut chunk, next);
            stop = next_stop;
        }
    }
}

/// Who sent a frame of `file` and how: its source name and receipt, from
/// the last clock line, or a Jetstream recording named after the file.
pub fn sender<'a>(file: &'a str, clock: Option<&'a ClockLine>) -> (&'a str, Received<'a>) {
    match clock {
        None => (file, Received::jetstream()),
        Some(clock) => (
            &clock.source,
            Received {
                kind: clock.protocol,
                host: None,
                instance: &clock.instance,
                arrival_us: Some(clock.time_us),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_full_at_its_line_count_or_its_byte_size() {
        let mut lines = Chunk::default();
        for n in 0..CHUNK_LINES as u64 {
            assert!(!lines.is_full());
            lines.push_frame(n, b"{}", None);
        }
        assert!(lines.is_full());
        let long = vec![b'x'; 256 << 10];
        let mut bytes = Chunk::default();
        for n in 0..8 {
            assert!(!bytes.is_full(), "{n} quarter MiB");
            bytes.push_frame(n, &long, None);
        }
        assert!(bytes.is_full(), "8 lines of 256 KiB fill a chunk");
        assert_eq!(bytes.lines.len(), 8);
    }
}
