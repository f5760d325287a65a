//! Admission of discovered services (named by `#FooDown` or `foo.com`, not
//! in the catalogue), bounded in count over any span of time.
//!
//! Anyone can invent a hashtag, so a name costs nothing until it has
//! earned a place:
//!
//! - **candidates**: a new name is remembered with the distinct authors
//!   who used it in the last `admit_secs`, in a table of at most
//!   `max_candidates` names (least recently used out first). Its reports
//!   are held back, counted as pending.
//! - **admission**: once `min_authors` distinct authors used the name
//!   within `admit_secs`, it is tracked: its held-back authors join the
//!   current bucket, each post as what it was (a report, or a recovery),
//!   and its posts are counted from then on.
//! - **a global cap with eviction by score**: at most `capacity` names are
//!   tracked. Each has a score, its distinct reporting authors per bucket,
//!   halving every `ttl` of quiet. A newcomer takes the place of the
//!   lowest-scored name if it scores at least [`EVICT_MARGIN`] times as
//!   much, else it is turned away (counted). Without the margin a newcomer
//!   scoring `min_authors` beat any name admitted the same way a
//!   microsecond earlier (its score had already decayed below), so the cap
//!   bounded the table but not the admissions: junk tags streamed through
//!   it, each into the detector for an hour.
//! - **a budget per author** ([`super::budget`]): an author counts toward
//!   admitting a few names an hour, so a few accounts cannot admit names
//!   at will.
//!
//! 100 000 junk tags, each from one author, therefore never reach the
//! windows, the detector or the store, whether they come in ten minutes or
//! over a day: the memory is the two bounded tables.
//!
//! **Saved with the checkpoint** ([`SavedNames`]): a run resumed from its
//! checkpoint must admit the names the uninterrupted run admits, so both
//! tables and the authors' budgets are saved, and every choice among them is deterministic (ties
//! broken by name, candidates forgotten at bucket closes by event time),
//! never by hash order or by when a save happened.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use lru::LruCache;
use serde::{Deserialize, Serialize};

use super::budget::{AuthorBudgets, SavedBudgets};
use super::{AddedIn, AddedIn8, ServerId};
use crate::Micros;
use crate::matcher::Class;
use crate::store_format::AddedIn10;

/// How many times a tracked name's (decayed) score a newcomer must score
/// to take its place: a name admitted as the newcomer was gives way after
/// one `ttl` of quiet, not a microsecond after its admission.
pub const EVICT_MARGIN: f64 = 2.0;

/// The bounds (see [`crate::window::WindowConfig`]).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub capacity: usize,
    pub max_candidates: usize,
    pub min_authors: usize,
    pub admit_us: Micros,
    pub ttl_us: Micros,
    /// Names one author may help admit per hour ([`super::budget`]).
    pub admissions_per_author: usize,
    /// Authors of one server that count toward admitting a name (the
    /// detector's `max_authors_per_server`, for the same reason: made-up
    /// accounts of one server are one voice).
    pub per_server: usize,
}

/// What to do with one report of a discovered service.
#[derive(Debug, PartialEq)]
pub enum Admission {
    /// Tracked: count it.
    Counted,
    /// Just admitted: count it, and what these authors who used the name
    /// before posted.
    Admitted(Vec<HeldBack>),
    /// Not (yet) tracked: held back.
    Pending,
    /// Admitted by its authors, but no tracked name would give way; or
    /// its author has helped admit their share of names lately.
    Rejected,
}

/// One post of a name, as [`DiscoveredNames::admit`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct NamePost<'a> {
    pub author: &'a str,
    /// The server that vouches for the author, if any.
    pub server: Option<ServerId>,
    /// A report or a recovery.
    pub class: Class,
    /// Whether the author is new to the name's current bucket and, where
    /// a server vouches for them, one of the few of that server that
    /// count (see [`DiscoveredNames::admit`]).
    pub counts_toward_score: bool,
    /// The fingerprint of its text, when long enough to be a copy.
    pub copy: Option<u64>,
    /// Its event time.
    pub now: Micros,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tracked {
    score: f64,
    at: Micros,
}

/// An author's posts held back while a name was a candidate, by class: a
/// recovery held back was counted as a report once the name was admitted
/// (three "zorbly.com is back up" posts made 2 reports and 1 recovery).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldBack {
    pub author: String,
    pub reports: u64,
    pub recoveries: u64,
    /// The server that vouched for the author when they joined, if any
    /// (see [`super::ServiceCounts::servers`]): an admitted name's first
    /// authors are capped per server as every later one is.
    #[serde(default)]
    pub server: AddedIn8<Option<ServerId>>,
    /// When the author last used the name: a candidate holds the authors
    /// of the last `admit_secs` (it was a span from the name's first use,
    /// so one post long before kept three authors within a minute from
    /// admitting it). `None`: held before format 10, as old as the
    /// candidate.
    #[serde(default)]
    pub at: AddedIn10<Option<Micros>>,
    /// The fingerprint of the author's first held-back text long enough to
    /// be a copy ([`super::ServiceCounts::copies`]): an admitted name's
    /// first authors are capped per text as every later one is (five
    /// accounts posting one text paged a name nobody else used).
    #[serde(default)]
    pub copy: AddedIn10<Option<u64>>,
}

impl HeldBack {
    /// Whether the author used the name within `admit_us` of `now`
    /// (one held before their times were kept: the candidate's `since`).
    fn fresh(&self, since: Micros, now: Micros, admit_us: Micros) -> bool {
        now - self.at.unwrap_or(since) <= admit_us
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Candidate {
    since: Micros,
    /// Distinct authors and their posts: at most `min_authors` with budget
    /// left, and fewer than `min_authors` who spent it since the last
    /// author joined (a joining author drops them).
    authors: Vec<HeldBack>,
}

/// Both tables as the checkpoint holds them: tracked names by name,
/// candidates least recently used first (the order a restore puts them
/// back in, so the same one is evicted next), and the authors' budgets.
/// Written straight from a [`DiscoveredNames`] (its `Serialize` has this
/// shape), read back as this.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedNames {
    tracked: Vec<(String, Tracked)>,
    candidates: Vec<(String, Candidate)>,
    budgets: SavedBudgets,
}

/// [`SavedNames`] as store formats 5 and 6 wrote them: without the
/// authors' budgets, which start afresh (as those builds did).
#[derive(Debug, Deserialize)]
pub struct SavedNamesFormat6 {
    tracked: Vec<(String, Tracked)>,
    candidates: Vec<(String, Candidate)>,
}

#[cfg(test)]
impl DiscoveredNames {
    /// [`DiscoveredNames::admit`] of a post whose text is no copy.
    pub fn admit_post(
        &mut self,
        name: &str,
        author: &str,
        server: Option<ServerId>,
        class: Class,
        counts_toward_score: bool,
        now: Micros,
    ) -> Admission {
        let post = NamePost {
            author,
            server,
            class,
            counts_toward_score,
            copy: None,
            now,
        };
        self.admit(name, post)
    }
}

#[cfg(test)]
impl SavedNames {
    /// These tables with every author's budget afresh, as a checkpoint of
    /// format 6 or before restores them.
    pub fn with_budgets_afresh(mut self) -> Self {
        self.budgets.clear();
        self
    }

    /// These tables as store formats 5 and 6 wrote them.
    pub fn as_format_6(&self) -> impl Serialize + '_ {
        (&self.tracked, self.candidates_before_8())
    }

    /// These tables as store format 7 wrote them: with the budgets, but
    /// no server for the held-back posts.
    pub fn as_format_7(&self) -> impl Serialize + '_ {
        (&self.tracked, self.candidates_before_8(), &self.budgets)
    }

    /// These tables with no server known for the held-back posts, as a
    /// checkpoint of format 7 or before restores them.
    pub fn without_servers(mut self) -> Self {
        for (_, candidate) in &mut self.candidates {
            for held in &mut candidate.authors {
                held.server = AddedIn(None);
            }
        }
        self
    }

    /// These tables as store formats 8 and 9 wrote them: held-back
    /// authors without their last use nor copied text.
    pub fn as_format_9(&self) -> impl Serialize + '_ {
        let candidates: Vec<_> = self
            .candidates
            .iter()
            .map(|(name, c)| {
                let held = c.authors.iter();
                let held: Vec<_> = held
                    .map(|h| (&h.author, h.reports, h.recoveries, &h.server))
                    .collect();
                (name, (c.since, held))
            })
            .collect();
        (&self.tracked, candidates, &self.budgets)
    }

    /// These tables with no last use nor copied text known for the
    /// held-back posts, as a checkpoint of format 9 or before restores
    /// them.
    pub fn without_last_uses(mut self) -> Self {
        for (_, candidate) in &mut self.candidates {
            for held in &mut candidate.authors {
                held.at = AddedIn(None);
                held.copy = AddedIn(None);
            }
        }
        self
    }

    /// The candidates in the layout before format 8: (since, [(author,
    /// reports, recoveries)]).
    #[allow(clippy::type_complexity)]
    fn candidates_before_8(&self) -> Vec<(&String, (Micros, Vec<(&String, u64, u64)>))> {
        self.candidates
            .iter()
            .map(|(name, c)| {
                let held = c.authors.iter();
                let held = held.map(|h| (&h.author, h.reports, h.recoveries)).collect();
                (name, (c.since, held))
            })
            .collect()
    }
}

impl From<SavedNamesFormat6> for SavedNames {
    fn from(old: SavedNamesFormat6) -> Self {
        SavedNames {
            tracked: old.tracked,
            candidates: old.candidates,
            budgets: SavedBudgets::new(),
        }
    }
}

/// [`SavedNames`] as store formats 3 and 4 wrote them: a candidate's
/// authors with a count of posts, of either class. Read as reports, as
/// that build counted them.
#[derive(Debug, Deserialize)]
pub struct SavedNamesFormat4 {
    tracked: Vec<(String, Tracked)>,
    candidates: Vec<(String, CandidateFormat4)>,
}

/// A candidate as formats 3 and 4 wrote it: (since, [(author, posts)]).
type CandidateFormat4 = (Micros, Vec<(String, u64)>);

impl From<SavedNamesFormat4> for SavedNames {
    fn from(old: SavedNamesFormat4) -> Self {
        let candidates = old
            .candidates
            .into_iter()
            .map(|(name, (since, authors))| {
                let authors = authors
                    .into_iter()
                    .map(|(author, reports)| HeldBack {
                        author,
                        reports,
                        recoveries: 0,
                        server: AddedIn(None),
                        at: AddedIn(None),
                        copy: AddedIn(None),
                    })
                    .collect();
                (name, Candidate { since, authors })
            })
            .collect();
        SavedNames {
            tracked: old.tracked,
            candidates,
            budgets: SavedBudgets::new(),
        }
    }
}

#[derive(Debug)]
pub struct DiscoveredNames {
    bounds: Bounds,
    tracked: HashMap<String, Tracked>,
    candidates: LruCache<String, Candidate>,
    budgets: AuthorBudgets,
    rejected: u64,
    pending: u64,
    evicted: u64,
}

impl DiscoveredNames {
    pub fn new(bounds: Bounds) -> Self {
        let candidates =
            NonZeroUsize::new(bounds.max_candidates.max(1)).unwrap_or(NonZeroUsize::MIN);
        DiscoveredNames {
            bounds,
            tracked: HashMap::new(),
            candidates: LruCache::new(candidates),
            budgets: AuthorBudgets::new(remembered_authors(&bounds), bounds.admissions_per_author),
            rejected: 0,
            pending: 0,
            evicted: 0,
        }
    }

    /// Continues from a checkpoint's tables. Bounds lowered since they were
    /// saved apply from here on: the least recently used candidates (and
    /// authors charged) beyond the new bound are dropped, tracked names
    /// give way one per newcomer.
    pub fn restored(bounds: Bounds, saved: SavedNames) -> Self {
        let mut names = DiscoveredNames::new(bounds);
        names.budgets = AuthorBudgets::restored(
            remembered_authors(&bounds),
            bounds.admissions_per_author,
            saved.budgets,
        );
        names.tracked = saved.tracked.into_iter().collect();
        for (name, candidate) in saved.candidates {
            names.candidates.put(name, candidate);
        }
        names
    }

    /// Forgets the candidates no countable post can join any more: last
    /// used more than `admit_us` before `oldest_countable` (the oldest
    /// event time a post can have and still be counted). Run when buckets
    /// close, so the table saved with the checkpoint holds live candidates
    /// only (a daemon meets many one-author names over days), and at the
    /// same event times in a resumed run as in an uninterrupted one.
    pub fn forget_expired(&mut self, oldest_countable: Micros) {
        let admit_us = self.bounds.admit_us;
        let expired: Vec<String> = self
            .candidates
            .iter()
            .filter(|(_, c)| {
                let last = c.authors.iter().filter_map(|h| *h.at).max();
                oldest_countable.saturating_sub(last.unwrap_or(c.since)) > admit_us
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in expired {
            self.candidates.pop(&name);
        }
    }

    /// One post of `name` by `author` at event time `now`, a report or a
    /// recovery (`class`); `counts_toward_score` says whether the author
    /// is new to the name's current bucket and, where a server vouches
    /// for them, one of the few of that server that count (the score
    /// counts distinct authors as the detector does: fresh keys of one
    /// server could otherwise raise a tracked name's score without end).
    pub fn admit(&mut self, name: &str, post: NamePost<'_>) -> Admission {
        let NamePost {
            author,
            class,
            counts_toward_score,
            now,
            ..
        } = post;
        let ttl = self.bounds.ttl_us.max(1);
        if let Some(tracked) = self.tracked.get_mut(name) {
            if counts_toward_score {
                tracked.score = decayed(tracked, now, ttl) + 1.0;
                tracked.at = tracked.at.max(now);
            }
            return Admission::Counted;
        }
        let recovery = class == Class::Recovery;
        let authors = match self.gather(name, post) {
            Ok(authors) => authors,
            Err(not_yet) => return not_yet,
        };
        let admitting: Vec<&HeldBack> = authors
            .iter()
            .filter(|h| self.budgets.allows(&h.author, now))
            .collect();
        let score = per_server_count(admitting.iter().copied(), self.bounds.per_server) as f64;
        if !self.make_room(score, now) {
            self.rejected += 1;
            return Admission::Rejected;
        }
        for admitter in admitting {
            self.budgets.charge(&admitter.author, now);
        }
        self.tracked
            .insert(name.to_owned(), Tracked { score, at: now });
        // The post being admitted is the caller's to count.
        let mut before = authors;
        if let Some(at) = before.iter().position(|h| h.author == author) {
            let held = &mut before[at];
            let count = if recovery {
                &mut held.recoveries
            } else {
                &mut held.reports
            };
            *count = count.saturating_sub(1);
            if held.reports == 0 && held.recoveries == 0 {
                before.remove(at);
            }
        }
        Admission::Admitted(before)
    }

    /// Adds the post (a recovery or a report) to the candidate `name`, which
    /// holds the authors who used the name in the last `admit_us` (a fresh
    /// candidate when it had none left). Once `min_authors` of its authors
    /// have budget left, the candidate leaves the table and its authors
    /// are returned; until then the post is counted as pending. A new
    /// author without budget is turned away (counted), and joins no
    /// candidate.
    fn gather(&mut self, name: &str, post: NamePost<'_>) -> Result<Vec<HeldBack>, Admission> {
        let NamePost {
            author,
            server,
            class,
            copy,
            now,
            ..
        } = post;
        let min_authors = self.bounds.min_authors.max(1);
        let admit_us = self.bounds.admit_us;
        let known = self.candidates.peek(name).is_some_and(|c| {
            c.authors
                .iter()
                .any(|h| h.author == author && h.fresh(c.since, now, admit_us))
        });
        if !known && !self.budgets.allows(author, now) {
            self.rejected += 1;
            return Err(Admission::Rejected);
        }
        let candidate = match self.candidates.get_mut(name) {
            Some(c) => {
                // Authors of more than `admit_us` ago leave, their posts
                // with them (held back, never counted).
                let since = c.since;
                c.authors.retain(|h| h.fresh(since, now, admit_us));
                if c.authors.is_empty() {
                    c.since = now;
                }
                c
            }
            None => {
                let fresh = Candidate {
                    since: now,
                    authors: Vec::new(),
                };
                self.candidates.put(name.to_owned(), fresh);
                self.candidates.get_mut(name).ok_or(Admission::Pending)?
            }
        };
        let held = match candidate.authors.iter().position(|h| h.author == author) {
            Some(at) => &mut candidate.authors[at],
            None => {
                // Authors who spent their budget since joining make room:
                // the list stays below twice `min_authors`.
                let budgets = &self.budgets;
                candidate.authors.retain(|h| budgets.allows(&h.author, now));
                // A server's authors past its cap would not count: held
                // back, they would grow the list without end. Turned away
                // (counted) instead.
                let per_server = self.bounds.per_server;
                if server.is_some()
                    && candidate
                        .authors
                        .iter()
                        .filter(|h| *h.server == server)
                        .count()
                        >= per_server
                {
                    self.rejected += 1;
                    return Err(Admission::Rejected);
                }
                candidate.authors.push(HeldBack {
                    author: author.to_owned(),
                    reports: 0,
                    recoveries: 0,
                    server: AddedIn(server),
                    at: AddedIn(None),
                    copy: AddedIn(None),
                });
                let last = candidate.authors.len() - 1;
                &mut candidate.authors[last]
            }
        };
        if class == Class::Recovery {
            held.recoveries += 1;
        } else {
            held.reports += 1;
        }
        *held.at = Some(held.at.map_or(now, |at| at.max(now)));
        if held.copy.is_none() {
            *held.copy = copy;
        }
        // An author who spent their budget since joining no longer counts
        // toward the name.
        let budgets = &self.budgets;
        let able = per_server_count(
            candidate
                .authors
                .iter()
                .filter(|h| budgets.allows(&h.author, now)),
            self.bounds.per_server,
        );
        if able < min_authors {
            self.pending += 1;
            return Err(Admission::Pending);
        }
        Ok(self
            .candidates
            .pop(name)
            .map(|c| c.authors)
            .unwrap_or_default())
    }

    /// Room for a newcomer scoring `score`: always below `capacity`; at
    /// it, by evicting the lowest-scored tracked name if the newcomer
    /// scores at least [`EVICT_MARGIN`] times as much.
    fn make_room(&mut self, score: f64, now: Micros) -> bool {
        if self.tracked.len() < self.bounds.capacity {
            return true;
        }
        let ttl = self.bounds.ttl_us.max(1);
        // Ties (names admitted together score the same) go to the first
        // name in order, not to whichever the hash map visits first.
        let lowest = self
            .tracked
            .iter()
            .map(|(n, t)| (decayed(t, now, ttl), n))
            .min_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)))
            .map(|(s, n)| (s, n.clone()));
        match lowest {
            Some((lowest, victim)) if lowest * EVICT_MARGIN <= score => {
                self.tracked.remove(&victim);
                self.evicted += 1;
                true
            }
            _ => false,
        }
    }

    /// Reports turned away: no tracked name would give way, their author
    /// had spent their budget of admissions, or their server already had
    /// as many authors toward the name as count.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// A tracked name's score as it stood when it last rose.
    #[cfg(test)]
    pub fn score(&self, name: &str) -> Option<f64> {
        self.tracked.get(name).map(|t| t.score)
    }

    /// Reports held back while their name had too few authors.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Tracked names that gave way to a higher-scored one.
    #[cfg(test)]
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Names tracked now, and candidates remembered now.
    pub fn sizes(&self) -> (usize, usize) {
        (self.tracked.len(), self.candidates.len())
    }
}

/// Written in the shape of [`SavedNames`], without copying the tables.
impl Serialize for DiscoveredNames {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut tracked: Vec<(&String, &Tracked)> = self.tracked.iter().collect();
        tracked.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let candidates: Vec<(&String, &Candidate)> = self.candidates.iter().rev().collect();
        let budgets: Vec<_> = self.budgets.saved().collect();
        let mut saved = serializer.serialize_struct("SavedNames", 3)?;
        saved.serialize_field("tracked", &tracked)?;
        saved.serialize_field("candidates", &candidates)?;
        saved.serialize_field("budgets", &budgets)?;
        saved.end()
    }
}

/// Authors whose admissions are remembered: as many as candidates, and at
/// least the admitters of a full table. A smaller record is churned by a
/// few more accounts than it holds (each pushing out the one charged
/// longest ago, and with it that one's spent budget).
fn remembered_authors(bounds: &Bounds) -> usize {
    bounds
        .max_candidates
        .max(bounds.capacity.saturating_mul(bounds.min_authors))
        .max(1)
}

/// How many of `authors` count toward a name: each author without a
/// server, and at most `per_server` of each server's.
fn per_server_count<'a>(authors: impl Iterator<Item = &'a HeldBack>, per_server: usize) -> usize {
    let mut of_server: HashMap<ServerId, usize> = HashMap::new();
    let mut counted = 0;
    for held in authors {
        match *held.server {
            None => counted += 1,
            Some(server) => {
                let n = of_server.entry(server).or_default();
                if *n < per_server {
                    *n += 1;
                    counted += 1;
                }
            }
        }
    }
    counted
}

/// A tracked name's score at `now`: halved for every `ttl` since it last rose.
fn decayed(t: &Tracked, now: Micros, ttl: Micros) -> f64 {
    let quiet = (now - t.at).max(0) as f64 / ttl as f64;
    t.score * 0.5f64.powf(quiet)
}

#[cfg(test)]
#[path = "discovered_tests.rs"]
mod tests;
