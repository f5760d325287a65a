//! One bucket of event time and what it holds per service: reports,
//! distinct authors, recoveries, the best sample posts, copies of long
//! texts, phrases and languages (the evidence an alert shows).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::WindowConfig;
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
    /// Distinct reporting authors, sorted; one author counts once per bucket.
    pub authors: Vec<String>,
    /// Posts saying the service works again.
    pub recoveries: u64,
    /// The best few reports of the bucket, by score then arrival.
    pub samples: Vec<Sample>,
    /// (fingerprint of a long text, author) for reports long enough to be
    /// copypasta: the same long text from many accounts is a storm, not
    /// many people.
    #[serde(default)]
    pub copies: Vec<(u64, String)>,
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
    /// Counts a post of `service` in this bucket: a report (with its
    /// evidence) or a recovery; other classes only in `total_posts`.
    pub(super) fn count(
        &mut self,
        service: &str,
        post: &Post,
        verdict: &Verdict,
        config: &WindowConfig,
    ) {
        match verdict.class {
            Class::Report => {
                let counts = self.services.entry(service.to_owned()).or_default();
                counts.discovered = verdict.discovered;
                counts.add_report(post, verdict, config);
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
    pub(super) fn add_report(&mut self, post: &Post, verdict: &Verdict, config: &WindowConfig) {
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
        if let Err(at) = self.authors.binary_search(&post.author) {
            self.authors.insert(at, post.author.clone());
        }
        if post.text.chars().count() >= config.copy_min_chars {
            let copy = (
                xxhash_rust::xxh3::xxh3_64(post.text.as_bytes()),
                post.author.clone(),
            );
            if let Err(at) = self.copies.binary_search(&copy) {
                self.copies.insert(at, copy);
            }
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
