//! One bucket of event time and what it holds per service: reports,
//! distinct authors (with the servers that vouch for them, where accounts
//! cost nothing), recoveries, the best sample posts, copies of long texts,
//! phrases and languages (the evidence an alert shows).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{AddedIn8, AuthorId, ServerId, WindowConfig};
use crate::Micros;
use crate::matcher::{Class, Verdict};
use crate::normalize::Post;
use crate::text::truncate_chars;

/// Distinct languages counted per service in a bucket, and listed in an
/// alert: a post declares its own, so a flood of reports each declaring
/// another made-up code would otherwise reach every alert's `languages`.
pub const MAX_LANGUAGES: usize = 16;
/// Where the reports in languages past [`MAX_LANGUAGES`] are counted.
pub const OTHER_LANGUAGES: &str = "other";

/// One bucket of event time: all posts, and what was reported per service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub start: Micros,
    /// Every post in the bucket, reports or not: the firehose's own volume.
    pub total_posts: u64,
    /// Per service (canonical or discovered id), in id order.
    pub services: BTreeMap<String, ServiceCounts>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceCounts {
    pub reports: u64,
    /// Distinct reporting authors, by digest ([`AuthorId`]: 16 bytes, where
    /// an id may take 2 KiB, and a closed bucket is kept 8 days); one
    /// author counts once per bucket. Sorted once the bucket closes ([`Bucket::seal`]); in order of
    /// arrival while it is open (a sorted insert per new author moved the
    /// whole list: 200 000 authors in one bucket took 15 s).
    pub authors: Vec<AuthorId>,
    /// Posts saying the service works again.
    pub recoveries: u64,
    /// The best few reports of the bucket, by score then arrival.
    pub samples: Vec<Sample>,
    /// (fingerprint of a long text, author's digest) for reports long enough to be
    /// copypasta: the same long text from many accounts is a storm, not
    /// many people. Sorted once the bucket closes, as `authors`.
    #[serde(default)]
    pub copies: Vec<(u64, AuthorId)>,
    /// How often each outage phrase was used (evidence for alerts).
    #[serde(default)]
    pub phrases: BTreeMap<String, u64>,
    /// Reports per language: at most [`MAX_LANGUAGES`] of them, the
    /// reports in languages first seen after that under
    /// [`OTHER_LANGUAGES`].
    #[serde(default)]
    pub langs: BTreeMap<String, u64>,
    /// Distinct authors without names: a plain count series (`outagewatch
    /// series`) has counts but no authors.
    #[serde(default)]
    pub extra_authors: u64,
    #[serde(default)]
    pub discovered: bool,
    /// (server that vouches for the author, author), by digest,
    /// for reports from networks whose accounts cost nothing to make (a
    /// Mastodon account's domain, Nostr as a whole; see
    /// [`crate::source::Source::server_of`]): the detector counts at most
    /// `max_authors_per_server` authors of one server, so one hostile
    /// server's made-up accounts are not many people. Sorted once the
    /// bucket closes, as `authors`. Added in store format 8.
    #[serde(default)]
    pub servers: AddedIn8<Vec<(ServerId, AuthorId)>>,
    /// What `authors`, `copies` and `servers` hold, while the bucket is open: not
    /// saved (rebuilt from them when missing), not part of equality.
    #[serde(skip)]
    pub seen: Seen,
}

/// A hash index of an open bucket's authors, copies and servers, so a
/// post's author is looked up in constant time, not by search and sorted
/// insert.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    authors: HashSet<AuthorId>,
    copies: HashSet<(u64, AuthorId)>,
    servers: HashSet<(ServerId, AuthorId)>,
    /// Authors per server, of the pairs in `servers`.
    per_server: HashMap<ServerId, u64>,
}

/// An index says nothing of the counts: buckets with the same counts are
/// equal whether or not their index has been built.
impl PartialEq for Seen {
    fn eq(&self, _: &Seen) -> bool {
        true
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub text: String,
    pub uri: String,
    pub author: String,
    pub score: f32,
    pub time_us: Micros,
    /// Declared language, else the language of the phrase that matched.
    #[serde(default)]
    pub lang: String,
}

/// The fingerprint of a post's text, when it is long enough to be a copy
/// (`copy_min_chars`): the same long text from many accounts counts as
/// a few of them ([`ServiceCounts::copies`]).
pub(super) fn copy_of(post: &Post, config: &WindowConfig) -> Option<u64> {
    (post.text.chars().count() >= config.copy_min_chars)
        .then(|| xxhash_rust::xxh3::xxh3_64(post.text.as_bytes()))
}

/// The phrases that made a verdict a report, and its language.
pub(super) fn phrases_and_lang<'a>(
    post: &'a Post,
    verdict: &'a Verdict,
) -> (Vec<&'a str>, &'a str) {
    let evidence = verdict
        .reasons
        .iter()
        .filter(|r| r.weight > 0.0 && r.rule.is_failure_evidence());
    let phrases: Vec<&str> = evidence
        .clone()
        .filter_map(|r| r.matched.as_deref())
        .collect();
    let lang = post
        .langs
        .first()
        .map(String::as_str)
        .or_else(|| evidence.filter_map(|r| r.lang.as_deref()).next())
        .unwrap_or("und");
    (phrases, lang)
}

impl Bucket {
    /// Puts the bucket in its stored form once it closes: authors and
    /// copies sorted, the index dropped.
    pub fn seal(&mut self) {
        self.services.values_mut().for_each(ServiceCounts::seal);
    }

    /// Counts a post of `service` in this bucket: a report (with its
    /// evidence and the server that vouches for its author, if any) or a
    /// recovery; other classes only in `total_posts`.
    pub(super) fn count(
        &mut self,
        service: &str,
        post: &Post,
        verdict: &Verdict,
        server: Option<ServerId>,
        config: &WindowConfig,
    ) {
        match verdict.class {
            Class::Report => {
                let counts = self.services.entry(service.to_owned()).or_default();
                counts.discovered = verdict.discovered;
                counts.add_report(post, verdict, server, config);
            }
            Class::Recovery => {
                let counts = self.services.entry(service.to_owned()).or_default();
                counts.discovered = verdict.discovered;
                counts.recoveries += 1;
            }
            Class::Maintenance | Class::None => {}
        }
    }
}

impl ServiceCounts {
    /// The stored form of a closed bucket's counts (see [`Bucket::seal`]).
    /// Duplicates go too: none arise while counting, but counts read from
    /// ids (store format 6) could hold two ids of one digest.
    pub fn seal(&mut self) {
        self.authors.sort_unstable();
        self.authors.dedup();
        self.copies.sort_unstable();
        self.copies.dedup();
        self.servers.sort_unstable();
        self.servers.dedup();
        self.seen = Seen::default();
    }

    /// Whether `author` reported the service in this (open) bucket.
    pub(super) fn has_author(&mut self, author: AuthorId) -> bool {
        self.index();
        self.seen.authors.contains(&author)
    }

    /// Adds `author` to the distinct reporting authors, once.
    pub(super) fn add_author(&mut self, author: AuthorId) {
        if !self.has_author(author) {
            self.seen.authors.insert(author);
            self.authors.push(author);
        }
    }

    /// Builds the index from the lists when it does not hold them (a
    /// bucket restored from a checkpoint, or made elsewhere). The lists
    /// hold distinct entries, so equal lengths mean it holds them.
    fn index(&mut self) {
        if self.seen.authors.len() != self.authors.len() {
            self.seen.authors = self.authors.iter().copied().collect();
        }
        if self.seen.copies.len() != self.copies.len() {
            self.seen.copies = self.copies.iter().copied().collect();
        }
        if self.seen.servers.len() != self.servers.len() {
            self.seen.servers = self.servers.iter().copied().collect();
            self.seen.per_server.clear();
            for (server, _) in self.servers.iter() {
                *self.seen.per_server.entry(*server).or_default() += 1;
            }
        }
    }

    /// Records that `server` vouches for `author`, once.
    /// `author` wrote the text whose fingerprint is `copy` (see
    /// [`copy_of`]).
    pub(super) fn add_copy(&mut self, copy: u64, author: AuthorId) {
        self.index();
        if self.seen.copies.insert((copy, author)) {
            self.copies.push((copy, author));
        }
    }

    pub(super) fn add_server(&mut self, server: ServerId, author: AuthorId) {
        self.index();
        if self.seen.servers.insert((server, author)) {
            self.servers.push((server, author));
            *self.seen.per_server.entry(server).or_default() += 1;
        }
    }

    /// Authors `server` vouched for in this (open) bucket.
    pub(super) fn authors_of(&mut self, server: ServerId) -> u64 {
        self.index();
        self.seen.per_server.get(&server).copied().unwrap_or(0)
    }

    pub(super) fn add_report(
        &mut self,
        post: &Post,
        verdict: &Verdict,
        server: Option<ServerId>,
        config: &WindowConfig,
    ) {
        let keep = config.samples_per_bucket;
        let (phrases, lang) = phrases_and_lang(post, verdict);
        for phrase in phrases {
            *self.phrases.entry(phrase.to_owned()).or_default() += 1;
        }
        let lang_key = if self.langs.len() < MAX_LANGUAGES || self.langs.contains_key(lang) {
            lang
        } else {
            OTHER_LANGUAGES
        };
        *self.langs.entry(lang_key.to_owned()).or_default() += 1;
        self.reports += 1;
        let author = AuthorId::of(&post.author);
        self.add_author(author);
        if let Some(server) = server {
            self.add_server(server, author);
        }
        if let Some(copy) = copy_of(post, config) {
            self.add_copy(copy, author);
        }
        // One sample an author, their best: one account posting a
        // high-scoring text five times a bucket filled every slot, and the
        // alert showed only its words (and whatever link it wrote).
        if let Some(at) = self.samples.iter().position(|s| s.author == post.author) {
            if self.samples[at].score >= verdict.score {
                return;
            }
            self.samples.remove(at);
        }
        let better = |s: &Sample| s.score < verdict.score;
        if self.samples.len() < keep || self.samples.iter().any(better) {
            let sample = Sample {
                text: truncate_chars(&post.original, config.sample_chars),
                uri: post.uri.clone(),
                author: post.author.clone(),
                score: verdict.score,
                time_us: post.time_us,
                lang: lang.to_owned(),
            };
            let at = self
                .samples
                .iter()
                .position(better)
                .unwrap_or(self.samples.len());
            self.samples.insert(at, sample);
            self.samples.truncate(keep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(author: &str, text: &str) -> Post {
        Post {
            time_us: 0,
            author: author.into(),
            uri: String::new(),
            key: None,
            original: text.into(),
            text: text.into(),
            langs: vec![],
            hashtags: vec![],
        }
    }

    fn report() -> Verdict {
        Verdict {
            class: Class::Report,
            service: Some("s".into()),
            discovered: false,
            score: 1.0,
            reasons: vec![],
        }
    }

    /// Posts of `n` authors, three each, out of order: even authors share
    /// one long text, odd ones write their own.
    fn posts(n: u64) -> Vec<Post> {
        (0..3 * n)
            .map(|i| {
                let a = (i * 7919) % n;
                let text = match a % 2 {
                    0 => "the same long text from every even author".to_owned(),
                    _ => format!("a long text of author {a}, theirs and nobody else's"),
                };
                post(&format!("did:{a}"), &text)
            })
            .collect()
    }

    /// Many authors in one bucket: each counted once, and the closed
    /// bucket holds them (and the copies) sorted, as it always did.
    #[test]
    fn many_authors_are_counted_once_and_sorted_at_close() {
        let n = 20_000;
        let config = WindowConfig::default();
        let mut bucket = Bucket::default();
        for p in posts(n) {
            bucket.count("s", &p, &report(), None, &config);
        }
        bucket.seal();
        let counts = &bucket.services["s"];
        let mut authors: Vec<AuthorId> =
            (0..n).map(|a| AuthorId::of(&format!("did:{a}"))).collect();
        authors.sort_unstable();
        let mut copies: Vec<(u64, AuthorId)> = posts(n)[..n as usize]
            .iter()
            .map(|p| {
                (
                    xxhash_rust::xxh3::xxh3_64(p.text.as_bytes()),
                    AuthorId::of(&p.author),
                )
            })
            .collect();
        copies.sort_unstable();
        copies.dedup();
        assert_eq!(counts.reports, 3 * n);
        assert_eq!(counts.authors, authors);
        assert_eq!(counts.copies.len(), n as usize);
        assert_eq!(counts.copies, copies);
    }

    /// An open bucket saved with the checkpoint (its index is not) and
    /// restored goes on counting each author once: it closes as the
    /// uninterrupted bucket does.
    #[test]
    fn a_restored_open_bucket_counts_each_author_once() {
        let config = WindowConfig::default();
        let all = posts(300);
        let (before, after) = all.split_at(500);
        let mut whole = Bucket::default();
        let mut first = Bucket::default();
        for p in before {
            whole.count("s", p, &report(), None, &config);
            first.count("s", p, &report(), None, &config);
        }
        let bytes = postcard::to_allocvec(&first).expect("encode");
        let mut resumed: Bucket = postcard::from_bytes(&bytes).expect("decode");
        for p in after {
            whole.count("s", p, &report(), None, &config);
            resumed.count("s", p, &report(), None, &config);
        }
        whole.seal();
        resumed.seal();
        assert_eq!(resumed.services["s"].authors.len(), 300);
        assert_eq!(resumed, whole);
    }
}
