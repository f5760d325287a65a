//! Window: per-service counts in fixed event-time buckets.
//!
//! Posts are added to the bucket of their event time. A bucket closes when
//! the watermark it closes on (the sources' clocks decide it: see
//! [`closing_watermark`](crate::source::clock::closing_watermark)) has
//! passed its end by the allowed lateness
//! (Jetstream's `time_us` is nearly, not strictly, increasing), and closed
//! buckets go to the detector and, in batches, to the store. A post older
//! than every open bucket is counted as late and added to the oldest open
//! bucket rather than dropped; one more than `max_late_secs` behind its own
//! source's watermark (a stream replayed out of order, a wrong clock) is
//! counted as stale
//! and left out of the counts, since lumping it into "now" would fake a
//! surge. Everything runs on event time, so the same
//! input closes the same buckets, whatever the machine's speed.

mod author;
mod bucket;
mod budget;
mod config;
mod discovered;

use std::collections::BTreeMap;

pub use self::author::{AuthorId, ServerId};
use self::discovered::{Admission, NamePost};
pub use self::discovered::{
    DiscoveredNames, HeldBack, SavedNames, SavedNamesFormat4, SavedNamesFormat6,
};
use crate::matcher::{Class, Verdict};
use crate::normalize::Post;
pub use crate::store_format::{AddedIn, AddedIn8, reading_format};
use crate::{MICROS_PER_SEC, Micros};

pub use self::bucket::{Bucket, MAX_LANGUAGES, OTHER_LANGUAGES, Sample, Seen, ServiceCounts};
pub use self::config::{DEFAULT_MAX_AUTHORS_PER_SERVER, WindowConfig};

/// Where [`Windows::add`] put a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// In the bucket of its event time.
    Counted,
    /// Its bucket had closed: in the oldest open one.
    Late,
    /// Too far behind its source's watermark: counted as stale, not added.
    Stale,
}

/// Whether a report or recovery of a discovered name counts: only once
/// enough authors have used the name (see `discovered`). When the name is
/// admitted now, the authors who named it first count in this bucket.
fn admit_discovered(
    discovered: &mut DiscoveredNames,
    bucket: &mut Bucket,
    service: &str,
    class: Class,
    post: &Post,
    server: Option<ServerId>,
    config: &WindowConfig,
) -> bool {
    let author = AuthorId::of(&post.author);
    let per_server = config.max_authors_per_server;
    let counts_toward_score = bucket.services.get_mut(service).is_none_or(|c| {
        !c.has_author(author) && server.is_none_or(|s| c.authors_of(s) < per_server)
    });
    let name_post = NamePost {
        author: &post.author,
        server,
        class,
        counts_toward_score,
        copy: bucket::copy_of(post, config),
        now: post.time_us,
    };
    match discovered.admit(service, name_post) {
        Admission::Counted => true,
        Admission::Admitted(before) => {
            let counts = bucket.services.entry(service.to_owned()).or_default();
            counts.discovered = true;
            // Each held-back post as what it was: a recovery is no report,
            // and its author no reporting author (as `Bucket::count`).
            for held in before {
                counts.reports += held.reports;
                counts.recoveries += held.recoveries;
                if held.reports > 0 {
                    let author = AuthorId::of(&held.author);
                    counts.add_author(author);
                    if let Some(server) = *held.server {
                        counts.add_server(server, author);
                    }
                    if let Some(copy) = *held.copy {
                        counts.add_copy(copy, author);
                    }
                }
            }
            true
        }
        Admission::Pending | Admission::Rejected => false,
    }
}

/// Open buckets and the event-time watermark.
#[derive(Debug)]
pub struct Windows {
    config: WindowConfig,
    open: BTreeMap<Micros, Bucket>,
    /// The watermark buckets close on (set by [`Windows::observe`]).
    newest: Option<Micros>,
    /// Start of the first bucket that may still be open: everything before
    /// it has been closed and handed on.
    closed_through: Option<Micros>,
    late: u64,
    stale: u64,
    discovered: DiscoveredNames,
}

impl Windows {
    pub fn new(config: WindowConfig) -> Self {
        Windows {
            config,
            open: BTreeMap::new(),
            newest: None,
            closed_through: None,
            late: 0,
            stale: 0,
            discovered: DiscoveredNames::new(config.discovered_bounds()),
        }
    }

    /// Continues an earlier run: buckets before `closed_through` were
    /// closed, `open` ones were still filling, `discovered` the names it
    /// was tracking and gathering authors for.
    pub fn resume(
        config: WindowConfig,
        closed_through: Option<Micros>,
        newest: Option<Micros>,
        open: Vec<Bucket>,
        discovered: SavedNames,
    ) -> Self {
        Windows {
            closed_through,
            newest: newest.or(closed_through),
            open: open.into_iter().map(|b| (b.start, b)).collect(),
            discovered: DiscoveredNames::restored(config.discovered_bounds(), discovered),
            ..Windows::new(config)
        }
    }

    /// The discovered names' tables, for the checkpoint.
    pub fn discovered(&self) -> &DiscoveredNames {
        &self.discovered
    }

    /// Buckets still filling, oldest first.
    pub fn open_buckets(&self) -> impl Iterator<Item = &Bucket> {
        self.open.values()
    }

    pub fn config(&self) -> &WindowConfig {
        &self.config
    }

    /// Posts that arrived after their bucket had closed.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Reports of discovered services turned away by the bound on them.
    pub fn discovered_rejected(&self) -> u64 {
        self.discovered.rejected()
    }

    /// Reports of discovered names held back until enough authors use them.
    pub fn discovered_pending(&self) -> u64 {
        self.discovered.pending()
    }

    /// Discovered names tracked now, and candidates remembered now.
    pub fn discovered_sizes(&self) -> (usize, usize) {
        self.discovered.sizes()
    }

    /// Posts too old to count (see the module documentation).
    pub fn stale(&self) -> u64 {
        self.stale
    }

    /// Start of the oldest bucket not yet closed.
    pub fn closed_through(&self) -> Option<Micros> {
        self.closed_through
    }

    pub fn newest(&self) -> Option<Micros> {
        self.newest
    }

    /// Moves the watermark buckets close on (never back).
    pub fn observe(&mut self, watermark: Micros) {
        self.newest = Some(self.newest.map_or(watermark, |n| n.max(watermark)));
    }

    /// Counts one post with the matcher's verdict on it. `server` vouches
    /// for its author where the network's accounts cost nothing to make
    /// ([`ServiceCounts::servers`]). `reference` is the
    /// watermark of the post's own source (or, while it has none, the
    /// newest of any): staleness is judged against it alone, so another
    /// source running ahead never makes this one's posts stale.
    pub fn add(
        &mut self,
        post: &Post,
        verdict: &Verdict,
        server: Option<&str>,
        reference: Option<Micros>,
    ) -> Placement {
        let (start, placement) = match self.enter(post.time_us, reference) {
            Ok(entered) => entered,
            Err(stale) => return stale,
        };
        let Some(service) = &verdict.service else {
            return placement;
        };
        let Some(bucket) = self.open.get_mut(&start) else {
            return placement;
        };
        let server = server.map(ServerId::of);
        if verdict.discovered
            && matches!(verdict.class, Class::Report | Class::Recovery)
            && !admit_discovered(
                &mut self.discovered,
                bucket,
                service,
                verdict.class,
                post,
                server,
                &self.config,
            )
        {
            return placement;
        }
        bucket.count(service, post, verdict, server, &self.config);
        placement
    }

    /// Counts a post that names no service (nearly every post): in the
    /// firehose's volume of its bucket only.
    pub fn add_unnamed(&mut self, time_us: Micros, reference: Option<Micros>) -> Placement {
        self.enter(time_us, reference)
            .map_or_else(|stale| stale, |(_, placement)| placement)
    }

    /// Counts a post of `time_us` in its bucket's volume: the bucket's
    /// start and where the post went, or `Err(Stale)` when it is too far
    /// behind `reference` to count at all.
    fn enter(
        &mut self,
        time_us: Micros,
        reference: Option<Micros>,
    ) -> Result<(Micros, Placement), Placement> {
        let max_late = self.config.max_late_secs * MICROS_PER_SEC;
        if reference.is_some_and(|r| r.saturating_sub(time_us) > max_late) {
            self.stale += 1;
            return Err(Placement::Stale);
        }
        let (start, placement) = self.place(time_us);
        self.open
            .entry(start)
            .or_insert_with(|| Bucket {
                start,
                ..Bucket::default()
            })
            .total_posts += 1;
        Ok((start, placement))
    }

    /// Whether the bucket of `time_us` has closed, or the watermark has
    /// passed it: one that never opened (no post in a gap) closes as soon
    /// as a post opens it, as the watermark passed it long ago.
    pub fn has_closed(&self, time_us: Micros) -> bool {
        let start = self.config.bucket_start(time_us);
        let passed = self.newest.is_some_and(|newest| {
            let horizon = newest.saturating_sub(self.config.lateness_secs * MICROS_PER_SEC);
            start.saturating_add(self.config.bucket_us()) <= horizon
        });
        passed
            || self
                .closed_through
                .is_some_and(|first_open| start < first_open)
    }

    /// The bucket a post of `time_us` goes to: its own, or the oldest open
    /// one when its own has closed (a late post).
    fn place(&mut self, time_us: Micros) -> (Micros, Placement) {
        let start = self.config.bucket_start(time_us);
        match self.closed_through {
            Some(first_open) if start < first_open => {
                self.late += 1;
                (first_open, Placement::Late)
            }
            _ => (start, Placement::Counted),
        }
    }

    /// Closes the buckets the watermark has passed, oldest first.
    pub fn advance(&mut self) -> Vec<Bucket> {
        let Some(newest) = self.newest else {
            return Vec::new();
        };
        let horizon = newest - self.config.lateness_secs * MICROS_PER_SEC;
        let bucket_us = self.config.bucket_us();
        let mut closed = Vec::new();
        while let Some(entry) = self.open.first_entry() {
            if entry.key() + bucket_us > horizon {
                break;
            }
            let mut bucket = entry.remove();
            bucket.seal();
            closed.push(bucket);
        }
        if let Some(last) = closed.last() {
            self.closed_through = Some(last.start + bucket_us);
            let max_late = self.config.max_late_secs * MICROS_PER_SEC;
            self.discovered
                .forget_expired(newest.saturating_sub(max_late));
        }
        closed
    }

    /// Closes every open bucket, whatever the watermark.
    pub fn close_all(&mut self) -> Vec<Bucket> {
        let closed: Vec<Bucket> = std::mem::take(&mut self.open)
            .into_values()
            .map(|mut bucket| {
                bucket.seal();
                bucket
            })
            .collect();
        if let Some(last) = closed.last() {
            self.closed_through = Some(last.start + self.config.bucket_us());
        }
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::Verdict;

    fn post(time_s: i64, author: &str) -> Post {
        Post {
            time_us: time_s * MICROS_PER_SEC,
            author: author.into(),
            uri: format!("at://{author}/p/{time_s}"),
            key: None,
            original: format!("post at {time_s}"),
            text: format!("post at {time_s}"),
            langs: vec![],
            hashtags: vec![],
        }
    }

    /// Adds a post as one source would: judged against the watermark so
    /// far, which then moves to it.
    fn put(w: &mut Windows, post: &Post, verdict: &Verdict) -> Placement {
        let placement = w.add(post, verdict, None, w.newest());
        w.observe(post.time_us);
        placement
    }

    fn report(service: &str, score: f32) -> Verdict {
        Verdict {
            class: Class::Report,
            service: Some(service.into()),
            discovered: false,
            score,
            reasons: vec![],
        }
    }

    #[test]
    fn buckets_close_after_lateness_and_count_distinct_authors() {
        let mut w = Windows::new(WindowConfig::default());
        put(&mut w, &post(100, "a"), &report("discord", 1.0));
        put(&mut w, &post(101, "a"), &report("discord", 1.0));
        put(&mut w, &post(102, "b"), &report("discord", 1.5));
        put(&mut w, &post(103, "c"), &Verdict::none());
        assert!(w.advance().is_empty(), "nothing has passed the watermark");
        put(&mut w, &post(114, "d"), &Verdict::none());
        assert!(w.advance().is_empty(), "110 + 5 s lateness not yet passed");
        put(&mut w, &post(115, "d"), &Verdict::none());
        let closed = w.advance();
        assert_eq!(closed.len(), 1);
        let b = &closed[0];
        assert_eq!(b.start, 100 * MICROS_PER_SEC);
        assert_eq!(b.total_posts, 4);
        let d = &b.services["discord"];
        assert_eq!(d.reports, 3);
        let mut authors = vec![AuthorId::of("a"), AuthorId::of("b")];
        authors.sort_unstable();
        assert_eq!(d.authors, authors, "each once, sorted by digest");
        assert_eq!(d.samples[0].author, "b", "best score first");
        assert_eq!(w.closed_through(), Some(110 * MICROS_PER_SEC));
    }

    #[test]
    fn late_posts_are_counted_not_lost() {
        let mut w = Windows::new(WindowConfig::default());
        put(&mut w, &post(100, "a"), &Verdict::none());
        put(&mut w, &post(130, "a"), &Verdict::none());
        assert_eq!(w.advance().len(), 1);
        put(&mut w, &post(101, "late"), &report("x", 1.0));
        assert_eq!(w.late(), 1);
        assert_eq!(
            put(&mut w, &post(60, "stale"), &report("x", 1.0)),
            Placement::Stale
        );
        assert_eq!(w.stale(), 1, "70 s behind the newest post");
        // Judged against its own source's watermark: 70 s behind another
        // source is not stale when its own source is at 65.
        assert_eq!(
            w.add(
                &post(60, "other"),
                &report("x", 1.0),
                None,
                Some(65 * MICROS_PER_SEC)
            ),
            Placement::Late
        );
        let rest = w.close_all();
        let total: u64 = rest.iter().map(|b| b.total_posts).sum();
        assert_eq!(total, 3);
        assert_eq!(
            rest[0].start,
            110 * MICROS_PER_SEC,
            "joined the oldest open bucket"
        );
        assert_eq!(rest[0].services["x"].reports, 2);
    }

    #[test]
    fn samples_are_cut_by_characters() {
        let mut w = Windows::new(WindowConfig {
            sample_chars: 20,
            ..WindowConfig::default()
        });
        let mut p = post(100, "a");
        p.original = "🔥".repeat(100_000);
        w.add(&p, &report("s", 1.0), None, None);
        let b = w.close_all();
        let text = &b[0].services["s"].samples[0].text;
        assert_eq!(text.chars().count(), 20);
        assert!(text.ends_with('…'));
    }

    #[test]
    fn samples_keep_the_best_few() {
        let mut w = Windows::new(WindowConfig {
            samples_per_bucket: 2,
            ..WindowConfig::default()
        });
        for (i, score) in [1.0, 2.0, 1.5, 3.0, 1.0].into_iter().enumerate() {
            put(
                &mut w,
                &post(100 + i as i64, &format!("u{i}")),
                &report("s", score),
            );
        }
        let b = w.close_all();
        let scores: Vec<f32> = b[0].services["s"].samples.iter().map(|s| s.score).collect();
        assert_eq!(scores, vec![3.0, 2.0]);
    }

    /// One sample an author, their best: one account posting its
    /// high-scoring text again and again filled every slot, and the alert
    /// carried only its words.
    #[test]
    fn one_author_holds_one_sample() {
        let mut w = Windows::new(WindowConfig {
            samples_per_bucket: 5,
            ..WindowConfig::default()
        });
        for i in 0..5 {
            put(
                &mut w,
                &post(100 + i, "troll"),
                &report("s", 3.0 + i as f32),
            );
        }
        for i in 0..5 {
            put(&mut w, &post(105 + i, &format!("u{i}")), &report("s", 2.0));
        }
        let b = w.close_all();
        let samples = &b[0].services["s"].samples;
        let authors: Vec<&str> = samples.iter().map(|s| s.author.as_str()).collect();
        assert_eq!(authors, ["troll", "u0", "u1", "u2", "u3"]);
        assert_eq!(samples[0].score, 7.0, "the author's best");
        assert_eq!(samples[0].time_us, 104 * MICROS_PER_SEC);
    }

    /// An alert quotes the words people wrote to say a service fails (the
    /// outage phrase, the outage hashtag), chosen by rule kind: not the
    /// name, not the boost, not the decision.
    #[test]
    fn alert_phrases_are_the_failure_evidence() {
        use super::bucket::phrases_and_lang;
        let matcher = crate::matcher::Matcher::embedded().expect("built-in patterns");
        let post = crate::normalize::normalize(crate::source::RawPost {
            time_us: 0,
            author: "a".into(),
            uri: String::new(),
            key: None,
            text: "twitter is down #TwitterDown anyone else?".into(),
            langs: vec![],
            tags: vec!["TwitterDown".into()],
        });
        let verdict = matcher.classify(&post);
        assert!(verdict.is_report(), "{verdict:?}");
        let (mut phrases, lang) = phrases_and_lang(&post, &verdict);
        phrases.sort_unstable();
        assert_eq!(phrases, ["#twitterdown", "is down"], "{verdict:#?}");
        assert_eq!(lang, "en");
    }

    /// A stranger chooses the language each post declares: a bucket counts
    /// at most `MAX_LANGUAGES` of them, the reports in later ones as other.
    #[test]
    fn a_bucket_counts_a_bounded_number_of_languages() {
        let mut w = Windows::new(WindowConfig::default());
        for i in 0..40i64 {
            let mut p = post(100, &format!("u{i}"));
            // Letters only, as a declared language is.
            let code: String = [b'a' + (i / 26) as u8, b'a' + (i % 26) as u8, b'x']
                .iter()
                .map(|b| char::from(*b))
                .collect();
            p.langs = vec![code];
            put(&mut w, &p, &report("s", 1.0));
        }
        // An early language goes on being counted as itself.
        let mut again = post(101, "again");
        again.langs = vec!["aax".into()];
        put(&mut w, &again, &report("s", 1.0));
        let b = w.close_all();
        let langs = &b[0].services["s"].langs;
        assert_eq!(langs.len(), MAX_LANGUAGES + 1, "{langs:?}");
        assert_eq!(langs.get("aax"), Some(&2));
        assert_eq!(
            langs.get(OTHER_LANGUAGES),
            Some(&(40 - MAX_LANGUAGES as u64))
        );
        assert_eq!(langs.values().sum::<u64>(), 41, "every report counted");
    }

    /// A discovered name's held-back posts count as what they were once
    /// it is admitted (three authors needed): a recovery held back was
    /// counted as a report, so three "zorbly.com is back up" posts made 2
    /// reports and 1 recovery.
    #[test]
    fn held_back_posts_of_a_discovered_name_keep_their_class() {
        use Class::{Recovery as V, Report as R};
        // Posts in order (author, class); the bucket's reports, recoveries
        // and reporting authors after them.
        /// Posts (author, class); reports, recoveries, reporting authors.
        type Case = (
            &'static [(&'static str, Class)],
            (u64, u64, &'static [&'static str]),
        );
        let cases: &[Case] = &[
            (&[("a", V), ("b", V), ("c", V)], (0, 3, &[])),
            (&[("a", R), ("b", R), ("c", R)], (3, 0, &["a", "b", "c"])),
            (&[("a", V), ("b", R), ("c", V)], (1, 2, &["b"])),
            (&[("a", R), ("b", V), ("c", R)], (2, 1, &["a", "c"])),
            (
                &[("a", R), ("a", V), ("b", V), ("c", R)],
                (2, 2, &["a", "c"]),
            ),
            (&[("a", V), ("a", R), ("b", V), ("c", V)], (1, 3, &["a"])),
            // Two authors: held back, not counted.
            (&[("a", V), ("a", V), ("b", R)], (0, 0, &[])),
            (
                &[("a", V), ("b", V), ("c", V), ("d", R), ("d", V)],
                (1, 4, &["d"]),
            ),
        ];
        for (n, (posts, (reports, recoveries, authors))) in cases.iter().enumerate() {
            let mut w = Windows::new(WindowConfig::default());
            for (i, (author, class)) in posts.iter().enumerate() {
                let verdict = Verdict {
                    class: *class,
                    discovered: true,
                    ..report("zorbly", 1.0)
                };
                put(&mut w, &post(i as i64, author), &verdict);
            }
            let counts = w
                .open_buckets()
                .next()
                .and_then(|b| b.services.get("zorbly"));
            let got = counts.map(|c| (c.reports, c.recoveries, c.authors.clone()));
            let want = (
                *reports,
                *recoveries,
                authors.iter().map(|a| AuthorId::of(a)).collect(),
            );
            assert_eq!(
                got,
                (reports + recoveries > 0).then_some(want),
                "case {n}: {posts:?}"
            );
        }
    }

    /// A discovered name's first authors are capped per text as every
    /// later one is: their copied text comes with their held-back posts
    /// (five accounts posting one text paged a name nobody else used, as
    /// five authors).
    #[test]
    fn a_discovered_name_s_first_authors_keep_their_copied_text() {
        let mut w = Windows::new(WindowConfig::default());
        let discovered = Verdict {
            discovered: true,
            ..report("zorbly", 1.0)
        };
        let text = "zorbly is down for everyone here, cannot log in at all since this morning";
        for (i, author) in ["a", "b", "c", "d"].into_iter().enumerate() {
            let mut post = post(i as i64, author);
            post.text = text.into();
            put(&mut w, &post, &discovered);
        }
        let bucket = w.open_buckets().next().expect("a bucket");
        let counts = &bucket.services["zorbly"];
        assert_eq!(counts.authors.len(), 4);
        let fingerprint = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
        let mut copies = counts.copies.to_vec();
        copies.sort();
        let mut want: Vec<_> = ["a", "b", "c", "d"]
            .map(|a| (fingerprint, AuthorId::of(a)))
            .to_vec();
        want.sort();
        assert_eq!(copies, want);
    }

    /// The server that vouched for an author comes with each report:
    /// with the report counted at once for a tracked name, and with a
    /// discovered name's held-back reports once the name is admitted, so
    /// the first authors of a name made up on one server are capped as
    /// every later one is. A report without a server records none.
    #[test]
    fn a_reports_server_is_kept_with_its_author() {
        let mut w = Windows::new(WindowConfig::default());
        let discovered = Verdict {
            discovered: true,
            ..report("zorbly", 1.0)
        };
        // Two authors of one server and one of another admit the name (a
        // server's authors count as at most 2 toward it).
        for (i, (author, server)) in [("a", "relay"), ("b", "relay"), ("c", "other")]
            .into_iter()
            .enumerate()
        {
            let post = post(i as i64, author);
            w.add(&post, &discovered, Some(server), w.newest());
            w.observe(post.time_us);
        }
        w.add(
            &post(3, "d"),
            &report("discord", 1.0),
            Some("town.social"),
            w.newest(),
        );
        w.add(&post(4, "e"), &report("discord", 1.0), None, w.newest());
        let bucket = w.open_buckets().next().expect("a bucket");
        let mut held: Vec<_> = bucket.services["zorbly"].servers.to_vec();
        held.sort();
        let mut want: Vec<_> = [("a", "relay"), ("b", "relay"), ("c", "other")]
            .map(|(a, s)| (ServerId::of(s), AuthorId::of(a)))
            .to_vec();
        want.sort();
        assert_eq!(held, want);
        assert_eq!(
            bucket.services["discord"].servers.to_vec(),
            vec![(ServerId::of("town.social"), AuthorId::of("d"))]
        );
        assert_eq!(bucket.services["discord"].authors.len(), 2);

        // Once tracked, a name's score rises with each new author as the
        // detector counts them: not past a server's cap in the bucket.
        let score = |w: &Windows| w.discovered.score("zorbly");
        assert_eq!(score(&w), Some(3.0));
        for (i, author) in ["d", "e", "f", "g"].into_iter().enumerate() {
            w.add(
                &post(5 + i as i64, author),
                &discovered,
                Some("relay"),
                w.newest(),
            );
        }
        assert_eq!(score(&w), Some(3.0), "relay's two places are taken");
        w.add(&post(9, "h"), &discovered, Some("third"), w.newest());
        w.add(&post(9, "i"), &discovered, None, w.newest());
        // Two rises (the score halves per 15 minutes of quiet: a little
        // less than 3 + 2).
        assert!(
            score(&w).is_some_and(|s| s > 4.9 && s < 5.0),
            "{:?}",
            score(&w)
        );
    }
}
