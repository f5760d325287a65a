//! A frame's way into the pipeline, after [`prepare`](super::prepare()):
//! dropped if its sequence number was seen, judged by its source's clock
//! (quarantined if too far ahead), counted in total and per source, then
//! added to the windows as a post or counted as a skip.

use super::prepare::Unnamed;
use super::{Arrival, Content, Emitted, Judged, Pipeline, PipelineError, Prepared, Received};
use crate::events::InternalEvent;
use crate::events::pipeline::{EventQuarantined, FrameMalformed, PostStale, per_source};
use crate::matcher::Class;
use crate::source::clock::{Judgement, Tick, closing_watermark};
use crate::source::jetstream::SeqCursor;
use crate::source::url::SourceUrl;
use crate::source::{FrameError, SkipReason};
use crate::state::Store;
use crate::window::Placement;
use crate::{MICROS_PER_SEC, Micros};

/// How far behind a source's sequence cursor a frame is taken for a
/// repeat (a reconnect's overlap, a server resending): a million events,
/// minutes of the whole firehose. Further back, the server is numbering
/// afresh.
pub const SEQ_REWIND: u64 = 1_000_000;

impl<S: Store> Pipeline<S> {
    /// [`Pipeline::process_frame`] for a frame [`prepare`](super::prepare())d already (on
    /// another thread, say): everything that needs the pipeline's state,
    /// in frame order.
    pub fn process_prepared(
        &mut self,
        source: &str,
        frame_no: u64,
        prepared: Prepared,
        received: &Received<'_>,
    ) -> Result<Vec<Emitted>, PipelineError> {
        if self.stats.by_source.len() >= super::MAX_SOURCES
            && !self.stats.by_source.contains_key(source)
        {
            return Err(PipelineError::TooManySources {
                name: crate::text::server_text(source),
                limit: super::MAX_SOURCES + 1,
            });
        }
        let mut alerts = self.time_passed(source, received)?;
        alerts.extend(self.process_received(source, frame_no, prepared, received)?);
        Ok(alerts)
    }

    /// [`Pipeline::process_prepared`] once the time of its arrival has passed.
    fn process_received(
        &mut self,
        source: &str,
        frame_no: u64,
        prepared: Prepared,
        received: &Received<'_>,
    ) -> Result<Vec<Emitted>, PipelineError> {
        let (decoded, own_clock) = match prepared {
            Prepared::Blank => {
                self.stats.frames += 1;
                self.stats.blank_lines += 1;
                self.stats.source_mut(source, |counts| {
                    counts.frames += 1;
                    *counts.skipped.entry("blank").or_default() += 1;
                });
                return Ok(Vec::new());
            }
            Prepared::Malformed(error) => (Err(error), false),
            Prepared::Frame {
                time_us,
                seq,
                own_clock,
                mut content,
            } => {
                if let (Some(host), Some(seq)) = (received.host, seq)
                    && self.seen_before(source, host, seq)
                {
                    self.stats.frames += 1;
                    self.stats.duplicate_frames += 1;
                    return Ok(Vec::new());
                }
                if let Content::Post(judged) = &mut content {
                    judged.server = received
                        .kind
                        .source()
                        .server_of(&judged.post.author, source);
                }
                (Ok((time_us, content)), own_clock)
            }
        };
        let arrival = Arrival {
            at_us: received.arrival_us,
            own_clock,
            stored: received.stored_since.is_some(),
        };
        self.process_arrived(source, frame_no, decoded, arrival)
    }

    /// Time passed at `source` as `received` says: a frame's arrival, a
    /// connection's tick, or a recording's clock line. A source dated by
    /// arrival (Mastodon, Nostr) cannot send anything dated earlier from
    /// then on, so its watermark moves to the arrival and the buckets
    /// behind it close even when nothing else comes: a surge followed by
    /// quiet was alerted only at the next post. Stored events (a relay's
    /// catch-up), sources dated by their server, and a source with no
    /// clock yet (no event of it judged: nothing of it to close) are left
    /// as they are. A clock without a watermark (a relay heard only in its
    /// catch-up, whose stored notes sit in open buckets) starts one here
    /// ([`crate::source::clock::SourceClock::time_passed`]). It runs
    /// before every frame ([`Pipeline::process_prepared`]) and at every
    /// clock line of a replay, so a recording moves the same watermarks at
    /// the same points as the run that received it.
    pub fn time_passed(
        &mut self,
        source: &str,
        received: &Received<'_>,
    ) -> Result<Vec<Emitted>, PipelineError> {
        let Some(arrival_us) = received.arrival_us else {
            return Ok(Vec::new());
        };
        if !received.kind.arrival_passes_time(received.stored_since) {
            return Ok(Vec::new());
        }
        let Some(clock) = self.clocks.get_mut(source) else {
            return Ok(Vec::new());
        };
        let before = clock.watermark();
        clock.time_passed(arrival_us);
        let after = clock.watermark();
        if after == before {
            return Ok(Vec::new());
        }
        self.watermark_moved(before, after);
        let closed = self.windows.advance();
        self.close(closed)
    }

    /// Whether sequence number `seq` from `host` was processed already;
    /// if not, it becomes the source's sequence cursor. Only a number at
    /// most [`SEQ_REWIND`] behind the cursor is a repeat: one further back
    /// is the server numbering afresh (or a stranger's number far ahead
    /// before it), followed and counted; a repeat within the rewind
    /// would have blinded the source for good after one frame numbered
    /// near 2^63, as every later number stood below it.
    fn seen_before(&mut self, source: &str, host: &SourceUrl, seq: u64) -> bool {
        match self.seqs.get_mut(source) {
            Some(saved) if &saved.host == host.masked() && seq <= saved.seq => {
                if saved.seq - seq <= SEQ_REWIND {
                    return true;
                }
                saved.seq = seq;
                self.stats.seq_restarts += 1;
            }
            Some(saved) if &saved.host == host.masked() => saved.seq = seq,
            _ => {
                let cursor = SeqCursor {
                    host: host.masked().clone(),
                    seq,
                };
                self.seqs.insert(source.to_owned(), cursor);
            }
        }
        false
    }

    /// A decoded frame with its arrival: judged by the source's clock
    /// (quarantined if too far ahead), then counted against the source's
    /// own watermark. The source's cursor is its watermark, which only
    /// accepted events move.
    fn process_arrived(
        &mut self,
        source: &str,
        frame_no: u64,
        decoded: Result<(Option<Micros>, Content), FrameError>,
        arrival: Arrival,
    ) -> Result<Vec<Emitted>, PipelineError> {
        self.stats.frames += 1;
        let (time_us, content) = match decoded {
            Ok(decoded) => decoded,
            Err(error) => {
                self.stats.source_mut(source, |counts| counts.frames += 1);
                self.note_malformed(source, frame_no, &error);
                return Ok(Vec::new());
            }
        };
        let fallback = self.newest;
        let reference = if let Some(time_us) = time_us {
            let (author, key) = content.author_and_key();
            let tick = arrival.tick(time_us, author);
            match self.clock_in(source, frame_no, tick, fallback) {
                Clocked::Accepted(watermark) => watermark.or(fallback),
                Clocked::Quarantined => {
                    self.stats.source_mut(source, |counts| counts.frames += 1);
                    // Its key is remembered (and saved with the
                    // checkpoint: it is dated ahead): a run resumed from an
                    // earlier watermark would otherwise accept and count
                    // the post this run quarantined.
                    if let Some(key) = key {
                        self.dedupe.is_duplicate(key, time_us, None);
                    }
                    return Ok(Vec::new());
                }
            }
        } else {
            fallback
        };
        // Everything an accepted frame adds to its source's counts, in one
        // look-up (this runs for every frame of a replay).
        self.stats.source_mut(source, |counts| {
            counts.frames += 1;
            if let Some(time_us) = time_us {
                counts.newest = Some(counts.newest.map_or(time_us, |n| n.max(time_us)));
            }
            if let Content::Skipped(reason) = &content {
                *counts.skipped.entry(reason.name()).or_default() += 1;
            }
        });
        match content {
            Content::Post(judged) => {
                self.process_post(source, Incoming::Named(judged), reference, arrival)
            }
            Content::Unnamed(post) => {
                self.process_post(source, Incoming::Unnamed(post), reference, arrival)
            }
            Content::Skipped(reason) => {
                self.skip(reason);
                Ok(Vec::new())
            }
        }
    }

    /// Judges one timed event by its source's clock: a quarantined one
    /// (too far ahead) is counted and goes no further; an accepted one
    /// moves, with its watermark, the source's cursor and the windows'
    /// watermark (its caller moves the source's newest time).
    fn clock_in(
        &mut self,
        source: &str,
        frame_no: u64,
        tick: Tick,
        fallback: Option<Micros>,
    ) -> Clocked {
        let rule = &self.clock_rule;
        let (judgement, before, watermark) = per_source(&mut self.clocks, source, |clock| {
            let before = clock.watermark();
            (clock.judge(tick, fallback, rule), before, clock.watermark())
        });
        if watermark != before {
            self.watermark_moved(before, watermark);
        }
        if judgement == Judgement::Future {
            EventQuarantined {
                stats: &mut self.stats,
                source,
                frame_no,
                time_us: tick.time_us,
                watermark,
                arrival_us: tick.arrival_us,
            }
            .emit();
            return Clocked::Quarantined;
        }
        Clocked::Accepted(watermark)
    }

    /// A source's watermark moved (a jump on a quarantined event
    /// included): the newest of any moves with it, and where buckets close
    /// is worked out again over every source's clock, but only when this
    /// watermark passes a bucket's end plus the lateness. Nothing closes
    /// between two such steps, and a scan of every clock at each move cost
    /// a replay of a thousand files six times the time of its one big one.
    fn watermark_moved(&mut self, before: Option<Micros>, after: Option<Micros>) {
        let Some(after) = after else {
            return;
        };
        self.newest = Some(self.newest.map_or(after, |n| n.max(after)));
        let config = self.windows.config();
        let lateness = config.lateness_secs * MICROS_PER_SEC;
        let step = |w: Micros| config.bucket_start(w.saturating_sub(lateness));
        if before.map(step) == Some(step(after)) {
            return;
        }
        if let Some(closing) = closing_watermark(self.clocks.values(), self.wait_us) {
            self.windows.observe(closing);
        }
    }

    /// One post through [`Pipeline::process_judged`], its effect on the
    /// totals attributed to its source too.
    fn process_post(
        &mut self,
        source: &str,
        post: Incoming,
        reference: Option<Micros>,
        arrival: Arrival,
    ) -> Result<Vec<Emitted>, PipelineError> {
        let before = self.class_counts();
        let alerts = self.process_judged(source, post, reference, arrival);
        let after = self.class_counts();
        self.stats.source_mut(source, |counts| {
            counts.posts += after[0] - before[0];
            counts.reports += after[1] - before[1];
            counts.recoveries += after[2] - before[2];
            counts.maintenance += after[3] - before[3];
            counts.duplicates += after[4] - before[4];
        });
        alerts
    }

    /// A frame the source could not even hand over (oversized, say).
    pub fn reject_frame(&mut self, source: &str, frame_no: u64, error: &FrameError) {
        self.stats.frames += 1;
        self.stats.source_mut(source, |counts| counts.frames += 1);
        self.note_malformed(source, frame_no, error);
    }

    /// Posts, reports, recoveries, maintenance, duplicates: to attribute
    /// one post's effect to its source.
    fn class_counts(&self) -> [u64; 5] {
        let s = &self.stats;
        [
            s.posts,
            s.reports,
            s.recoveries,
            s.maintenance,
            s.duplicates,
        ]
    }

    fn note_malformed(&mut self, source: &str, frame_no: u64, error: &FrameError) {
        FrameMalformed {
            stats: &mut self.stats,
            source,
            frame_no,
            reason: error.reason(),
            unverified: match error {
                FrameError::Unverified(why) => Some(why),
                _ => None,
            },
            error,
        }
        .emit();
    }

    pub fn skip(&mut self, reason: SkipReason) {
        *self.stats.skipped.entry(reason.name()).or_default() += 1;
        if !reason.shows_life() {
            self.stats.lifeless += 1;
        }
    }

    /// One post already accepted by `source`'s clock, judged stale against
    /// `reference` (its source's watermark) and its `arrival`.
    fn process_judged(
        &mut self,
        source: &str,
        post: Incoming,
        reference: Option<Micros>,
        arrival: Arrival,
    ) -> Result<Vec<Emitted>, PipelineError> {
        let (time_us, key, class) = post.counted();
        // A post further behind the newest watermark than the
        // de-duplication horizon is stale, whatever its own source's clock
        // says: its key is forgotten (and was not saved), so a replay
        // resumed after a later file had gone ten minutes past it counted
        // the earlier file's last minute a second time, and paged.
        let forgotten = key.is_some() && !self.dedupe.recognises(time_us);
        if !forgotten
            && let Some(key) = key
            && self.dedupe.is_duplicate(key, time_us, reference)
        {
            self.stats.duplicates += 1;
            return Ok(Vec::new());
        }
        // Without an arrival (a recording without clock lines) there is
        // nothing to learn, and no look-up for it on every post.
        if !forgotten
            && arrival.at_us.is_some()
            && let Some(clock) = self.clocks.get_mut(source)
        {
            clock.learn_delay(arrival);
        }
        self.stats.posts += 1;
        match class {
            Class::Report => self.stats.reports += 1,
            Class::Recovery => self.stats.recoveries += 1,
            Class::Maintenance => self.stats.maintenance += 1,
            Class::None => {}
        }
        let placement = match &post {
            _ if forgotten || self.caught_up(source, time_us, arrival) => Placement::Stale,
            Incoming::Named(judged) => {
                let Judged {
                    post,
                    verdict,
                    server,
                } = &**judged;
                self.windows
                    .add(post, verdict, server.as_deref(), reference)
            }
            Incoming::Unnamed(post) => self.windows.add_unnamed(post.time_us, reference),
        };
        match placement {
            Placement::Counted => {}
            Placement::Late => {
                if !source.is_empty() {
                    self.stats.source_mut(source, |counts| counts.late += 1);
                }
            }
            Placement::Stale => PostStale {
                stats: &mut self.stats,
                source,
                time_us,
                reference,
            }
            .emit(),
        }
        self.stats.late_posts = self.windows.late();
        self.stats.discovered_rejected = self.windows.discovered_rejected();
        self.stats.discovered_pending = self.windows.discovered_pending();
        let (tracked, candidates) = self.windows.discovered_sizes();
        self.stats.peak_discovered = self.stats.peak_discovered.max(tracked);
        self.stats.peak_candidates = self.stats.peak_candidates.max(candidates);
        let closed = self.windows.advance();
        self.close(closed)
    }

    /// Whether a post of `source` dated `time_us` is history caught up:
    /// its bucket has closed, and it arrived later than its source usually
    /// runs by more than the wait for a source behind (at least the
    /// lateness), as the posts of a source back after minutes away do,
    /// or read from its cursor after a restart, beside a source that kept
    /// going ([`crate::source::delay`]). Added to the oldest open bucket
    /// as late, minutes of them made one bucket hold minutes of reports,
    /// and paged; a source steadily behind (a server clock a minute slow)
    /// is not caught up and keeps its rate as late posts.
    fn caught_up(&self, source: &str, time_us: Micros, arrival: Arrival) -> bool {
        let config = self.windows.config();
        let margin = self.wait_us.max(config.lateness_secs * MICROS_PER_SEC);
        self.windows.has_closed(time_us)
            && self
                .clocks
                .get(source)
                .is_some_and(|clock| clock.caught_up(arrival, time_us, margin))
    }
}

/// A post as the ordered stage takes it: whole when it names a service,
/// else only what the counts read ([`Content`]); boxed as [`Content`]
/// boxes it.
enum Incoming {
    Named(Box<Judged>),
    Unnamed(Unnamed),
}

impl Incoming {
    /// Its time, de-duplication key and class: what every post adds to
    /// the counts.
    fn counted(&self) -> (Micros, Option<u64>, Class) {
        match self {
            Incoming::Named(judged) => (judged.post.time_us, judged.post.key, judged.verdict.class),
            Incoming::Unnamed(post) => (post.time_us, post.key, post.class),
        }
    }
}

/// What a source's clock made of a timed event.
enum Clocked {
    /// Accepted; the source's watermark, if it has one yet.
    Accepted(Option<Micros>),
    /// Too far ahead: counted, not processed.
    Quarantined,
}
