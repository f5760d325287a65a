//! Replaying on every core: lines are read into chunks and the frames of
//! each are prepared (decoded, normalized, classified: pure work) in
//! parallel on the thread pool, while the pipeline, also on the pool,
//! takes the previous chunk's frames one by one in line order, so the
//! alerts are exactly those of a one-frame-at-a-time replay.
//!
//! The recording is read in blocks straight into the chunk's buffer, and
//! its lines are split there: reading it line by line through a buffered
//! reader copied every byte once more on its way into the chunk.

use std::io::{self, Read};
use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;

use crate::matcher::Matcher;
use crate::pipeline::{Prepared, Received, prepare};
use crate::source::recording::ClockLine;

/// Lines per chunk: enough to keep both cores busy between two hand-overs,
/// small enough that memory stays flat. A prepared frame (a post with its
/// verdict) takes a kilobyte or more, and two prepared chunks are alive
/// at most (one being prepared, one in the pipeline). Against 1024 lines,
/// 4096 replayed the realistic 1 GB recording 8–10 % faster on both cores
/// (a round's hand-over and its wait at the end are paid a quarter as
/// often) for 2–5 MiB more peak memory (docs/speed-log.md, stop 50).
pub const CHUNK_LINES: usize = 4096;
/// Bytes per chunk, whatever the lines' lengths: 4096 lines of the longest
/// accepted length (`--max-line-bytes`, up to 64 MiB) must not be read into
/// memory at once. Reading reuses two buffers (one chunk being
/// read while the other is prepared), so this bounds the replay's raw line
/// buffers at twice 2 MiB plus one line and one read ([`READ_BYTES`]).
pub const CHUNK_BYTES: usize = 2 << 20;
/// Bytes asked of the recording per read. Reading stops at the first line
/// that fills the chunk, and the lines read past it are copied to start
/// the next chunk: about half a read per chunk of some 350 KB, against the
/// whole chunk when every line was copied.
pub const READ_BYTES: usize = 64 << 10;

/// Lines read but not processed yet, their bytes in one buffer.
#[derive(Default)]
pub struct Chunk {
    /// `bytes[..filled]` are the chunk's bytes; the rest is room for the
    /// next read, zeroed once when the buffer grew and reused ever since
    /// (a read into a `Vec`'s spare capacity zeroed it first, every time).
    bytes: Vec<u8>,
    filled: usize,
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
    /// A clock line of a source dated by arrival: time passed there
    /// ([`Pipeline::time_passed`](crate::pipeline::Pipeline::time_passed)),
    /// whether frames follow or not (a connection's tick is a clock line
    /// alone).
    Clock(Arc<ClockLine>),
}

impl Chunk {
    #[cfg(test)]
    fn push_frame(&mut self, line_no: u64, bytes: &[u8], clock: Option<Arc<ClockLine>>) {
        let start = self.filled;
        self.append(bytes);
        self.push_read(line_no, start..self.filled, clock);
    }

    /// Appends `bytes` after the chunk's own, growing the buffer if needed.
    fn append(&mut self, bytes: &[u8]) {
        self.room(bytes.len()).copy_from_slice(bytes);
        self.filled += bytes.len();
    }

    /// Room for `len` more bytes after the chunk's own, to read into.
    fn room(&mut self, len: usize) -> &mut [u8] {
        let end = self.filled + len;
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
        }
        &mut self.bytes[self.filled..end]
    }

    /// A frame whose bytes are `bytes` of the chunk's buffer.
    fn push_read(&mut self, line_no: u64, bytes: Range<usize>, clock: Option<Arc<ClockLine>>) {
        let what = What::Frame { bytes, clock };
        self.lines.push(ChunkLine { line_no, what });
    }

    fn push_clock(&mut self, line_no: u64, clock: Arc<ClockLine>) {
        let what = What::Clock(clock);
        self.lines.push(ChunkLine { line_no, what });
    }

    fn push_oversized(&mut self, line_no: u64, len: usize) {
        let what = What::Oversized(len);
        self.lines.push(ChunkLine { line_no, what });
    }

    /// Full once it holds [`CHUNK_LINES`] lines or its lines `used` bytes
    /// reach [`CHUNK_BYTES`].
    fn is_full(&self, used: usize) -> bool {
        self.lines.len() >= CHUNK_LINES || used >= CHUNK_BYTES
    }

    /// Prepares every frame on the thread pool and hands the lines back in
    /// order, each frame with its preparation; the chunk is empty after.
    pub fn prepare(&mut self, matcher: &Matcher, file: &str) -> Lines {
        let bytes = &self.bytes[..self.filled];
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
                    What::Clock(clock) => Ready::Clock(clock),
                };
                (line.line_no, ready)
            })
            .collect();
        self.filled = 0;
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
    Clock(Arc<ClockLine>),
}

/// A recording's lines, read a chunk at a time.
pub struct Reader<R> {
    inner: R,
    /// The longest line kept (`--max-line-bytes`); a longer one is reported
    /// by its length, its bytes dropped as they are read.
    limit: usize,
    read_bytes: usize,
    /// Set by the last clock line: who sent the frames that follow, when.
    clock: Option<Arc<ClockLine>>,
    last_line: u64,
    /// Bytes read past the line that filled the last chunk: the start of
    /// the next one.
    carry: Vec<u8>,
    /// The bytes of a line over the limit passed so far, not kept.
    dropped: Option<usize>,
    ended: bool,
}

/// Where a chunk's reading stopped.
pub enum Stop {
    Full,
    End,
    /// A read error ended the file (what was read before counts).
    Failed(String),
}

impl<R: Read> Reader<R> {
    /// Reads `inner` with lines of at most `limit` bytes.
    pub fn new(inner: R, limit: usize) -> Self {
        Reader {
            inner,
            limit,
            read_bytes: READ_BYTES,
            clock: None,
            last_line: 0,
            carry: Vec::new(),
            dropped: None,
            ended: false,
        }
    }

    /// The next chunk of `file`'s lines, and why it stopped there, read
    /// into `chunk` (an emptied one, whose buffers are reused). Lines end
    /// at `\n` (a `\r` before it is dropped), the last one also at the
    /// end of the file; they are numbered from 1.
    pub fn next_chunk(&mut self, file: &str, mut chunk: Chunk) -> (Chunk, Stop) {
        debug_assert!(chunk.lines.is_empty() && chunk.filled == 0);
        chunk.append(&self.carry);
        self.carry.clear();
        // Where the next line starts.
        let mut next = 0;
        let mut hash = NextHash::Unknown;
        loop {
            while let Some(at) = memchr::memchr(b'\n', &chunk.bytes[next..chunk.filled]) {
                let end = next + at;
                let clock = hash.within(&chunk.bytes[..chunk.filled], next..end);
                self.line(&mut chunk, next..end, clock);
                next = end + 1;
                if chunk.is_full(next) {
                    self.carry
                        .extend_from_slice(&chunk.bytes[next..chunk.filled]);
                    chunk.filled = next;
                    return (chunk, Stop::Full);
                }
            }
            let filled = chunk.filled;
            if self.ended {
                if next < filled || self.dropped.is_some() {
                    let clock = hash.within(&chunk.bytes[..filled], next..filled);
                    self.line(&mut chunk, next..filled, clock);
                }
                return (chunk, Stop::End);
            }
            if self.dropped.is_some() || filled - next > self.limit {
                // Over the limit already: its bytes are counted, not kept.
                *self.dropped.get_or_insert(0) += filled - next;
                chunk.filled = next;
                hash = NextHash::Unknown;
            }
            match self.inner.read(chunk.room(self.read_bytes)) {
                Ok(0) => self.ended = true,
                Ok(read) => chunk.filled += read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The line it cut short is lost with the rest.
                    chunk.filled = next;
                    let last = self.last_line;
                    let mut error = format!("cannot read {file} after line {last}: {e}");
                    if e.kind() == io::ErrorKind::UnexpectedEof {
                        error.push_str(
                            " (it ends inside a zstd frame or gzip member: cut short, \
                             as a recording killed after its last commit point leaves it)",
                        );
                    }
                    return (chunk, Stop::Failed(error));
                }
            }
        }
    }

    /// The line at `bytes` of the chunk (after any of its bytes dropped):
    /// a frame, an oversized line, or a clock line for the frames after it
    /// (only if `may_be_clock`: it holds a `#`).
    fn line(&mut self, chunk: &mut Chunk, mut bytes: Range<usize>, may_be_clock: bool) {
        self.last_line += 1;
        let line_no = self.last_line;
        let len = self.dropped.take().unwrap_or(0) + bytes.len();
        if len > self.limit {
            chunk.push_oversized(line_no, len);
            return;
        }
        if bytes.end > bytes.start && chunk.bytes[bytes.end - 1] == b'\r' {
            bytes.end -= 1;
        }
        let clock = may_be_clock
            .then(|| ClockLine::parse(&chunk.bytes[bytes.clone()]))
            .flatten();
        match clock {
            Some(clock) => {
                let clock = Arc::new(clock);
                if clock.passes_time() {
                    chunk.push_clock(line_no, Arc::clone(&clock));
                }
                self.clock = Some(clock);
            }
            None => chunk.push_read(line_no, bytes, self.clock.clone()),
        }
    }
}

/// The next `#` in a chunk's bytes: a clock line holds one and most frames
/// none, so it is looked for across many lines at once and a line without
/// one is never parsed as a clock line. (Looked for in every line, it cost
/// about as much as splitting the lines.)
#[derive(Clone, Copy)]
enum NextHash {
    Unknown,
    At(usize),
    /// None in the bytes before this position.
    NoneBefore(usize),
}

impl NextHash {
    /// Whether the line at `line` of `bytes` holds a `#`; lines are asked
    /// about in order, and the bytes before a known position do not change.
    fn within(&mut self, bytes: &[u8], line: Range<usize>) -> bool {
        let known = match *self {
            NextHash::At(at) if at >= line.start => Some(Some(at)),
            NextHash::NoneBefore(end) if end >= line.end => Some(None),
            _ => None,
        };
        let at = known.unwrap_or_else(|| {
            let found = memchr::memchr(b'#', &bytes[line.start..]).map(|i| line.start + i);
            *self = found.map_or(NextHash::NoneBefore(bytes.len()), NextHash::At);
            found
        });
        at.is_some_and(|at| at < line.end)
    }
}

impl<R: Read + Send> Reader<R> {
    /// Reads `file` to its end (or its first read error) a chunk at a
    /// time, prepares each on the thread pool and hands its lines to
    /// `take`, chunk after chunk, in order; returns where the reading
    /// stopped (the end, or a read error), or `take`'s first error.
    ///
    /// Three things run at once on the pool, round after round: `take`
    /// gets the lines prepared in the last round, the chunk read in the
    /// last round is prepared, and the next chunk is read. Every thread
    /// that works is a pool thread: with the pipeline on a thread of its
    /// own beside the pool's, three busy threads shared two cores and a
    /// 1 GB replay switched between them 15.6–18.5k times (10.6–11.3k
    /// now). Two chunks' buffers serve the whole file.
    pub fn prepare_all<E: Send>(
        mut self,
        matcher: &Matcher,
        file: &str,
        mut take: impl FnMut(Lines) -> Result<(), E> + Send,
    ) -> Result<Stop, E> {
        let (mut chunk, mut stop) = self.next_chunk(file, Chunk::default());
        let mut spare = Chunk::default();
        let mut waiting: Option<Lines> = None;
        loop {
            let more = matches!(stop, Stop::Full);
            let ((taken, lines), next) = rayon::join(
                || {
                    rayon::join(
                        || waiting.take().map_or(Ok(()), &mut take),
                        || chunk.prepare(matcher, file),
                    )
                },
                || more.then(|| self.next_chunk(file, std::mem::take(&mut spare))),
            );
            taken?;
            let Some((next, next_stop)) = next else {
                take(lines)?;
                return Ok(stop);
            };
            waiting = Some(lines);
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
                stored_since: clock.stored_since,
            },
        ),
    }
}

#[cfg(test)]
#[path = "replay_chunk_tests.rs"]
mod tests;
