//! Evidence for an alert: the most representative reports of the window,
//! the phrases people used and their languages, with counts.
//!
//! Representative means: the best-scoring reports, but spread over
//! languages and authors, never the same text twice, so a reader sees the
//! breadth of the surge rather than its first five posts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::window::{MAX_LANGUAGES, OTHER_LANGUAGES, Sample, ServiceCounts};

/// How many top phrases an alert lists.
pub const TOP_PHRASES: usize = 5;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub samples: Vec<Sample>,
    pub top_phrases: Vec<PhraseCount>,
    /// Reports per language (declared, else the language of the phrase):
    /// the [`MAX_LANGUAGES`] with the most, the rest summed under
    /// [`OTHER_LANGUAGES`].
    pub languages: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhraseCount {
    pub phrase: String,
    pub count: u64,
}

/// Gathers the evidence of a window's buckets.
pub fn gather<'a>(buckets: impl Iterator<Item = &'a ServiceCounts>, keep: usize) -> Evidence {
    let mut phrases: BTreeMap<&str, u64> = BTreeMap::new();
    let mut languages: BTreeMap<String, u64> = BTreeMap::new();
    let mut candidates: Vec<&Sample> = Vec::new();
    for counts in buckets {
        for (phrase, n) in &counts.phrases {
            *phrases.entry(phrase.as_str()).or_default() += n;
        }
        for (lang, n) in &counts.langs {
            *languages.entry(lang.clone()).or_default() += n;
        }
        candidates.extend(counts.samples.iter());
    }
    let mut top: Vec<PhraseCount> = phrases
        .into_iter()
        .map(|(phrase, count)| PhraseCount {
            phrase: phrase.to_owned(),
            count,
        })
        .collect();
    top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.phrase.cmp(&b.phrase)));
    top.truncate(TOP_PHRASES);
    Evidence {
        samples: representative(candidates, keep),
        top_phrases: top,
        languages: most_reported(languages),
    }
}

/// At most [`MAX_LANGUAGES`] entries: the languages with the most reports
/// (ties by code), and the reports of all others, and of those the
/// buckets counted as other already, under [`OTHER_LANGUAGES`].
fn most_reported(languages: BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    if languages.len() <= MAX_LANGUAGES {
        return languages;
    }
    let mut ranked: Vec<(String, u64)> = languages.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut kept: BTreeMap<String, u64> = BTreeMap::new();
    let mut other = 0u64;
    for (lang, n) in ranked {
        if lang != OTHER_LANGUAGES && kept.len() < MAX_LANGUAGES - 1 {
            kept.insert(lang, n);
        } else {
            other = other.saturating_add(n);
        }
    }
    kept.insert(OTHER_LANGUAGES.to_owned(), other);
    kept
}

/// The best-scoring samples, taking turns across languages, one per author
/// and per text, shown in time order.
fn representative(mut candidates: Vec<&Sample>, keep: usize) -> Vec<Sample> {
    candidates.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.time_us.cmp(&b.time_us))
            .then_with(|| a.uri.cmp(&b.uri))
    });
    let mut by_lang: BTreeMap<&str, Vec<&Sample>> = BTreeMap::new();
    for sample in candidates {
        by_lang
            .entry(sample.lang.as_str())
            .or_default()
            .push(sample);
    }
    // Languages with the most candidates first, then round-robin.
    let mut queues: Vec<std::collections::VecDeque<&Sample>> =
        by_lang.into_values().map(Into::into).collect();
    queues.sort_by_key(|q| std::cmp::Reverse(q.len()));
    let mut picked: Vec<Sample> = Vec::new();
    while picked.len() < keep && queues.iter().any(|q| !q.is_empty()) {
        for queue in queues.iter_mut() {
            if picked.len() >= keep {
                break;
            }
            while let Some(sample) = queue.pop_front() {
                let text = sample.text.to_lowercase();
                let repeat = picked
                    .iter()
                    .any(|p| p.author == sample.author || p.text.to_lowercase() == text);
                if !repeat {
                    picked.push(sample.clone());
                    break;
                }
            }
        }
    }
    picked.sort_by_key(|s| s.time_us);
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, author: &str, lang: &str, score: f32, t: i64) -> Sample {
        Sample {
            text: text.into(),
            uri: format!("at://{author}/{t}"),
            author: author.into(),
            score,
            time_us: t,
            lang: lang.into(),
        }
    }

    #[test]
    fn samples_spread_over_languages_authors_and_texts() {
        let counts = ServiceCounts {
            samples: vec![
                sample("is x down", "a", "en", 2.0, 1),
                sample("is x down", "b", "en", 2.0, 2),
                sample("x down?", "a", "en", 1.9, 3),
                sample("x not loading", "c", "en", 1.5, 4),
                sample("o x caiu", "d", "pt", 1.0, 5),
                sample("xが落ちてる", "e", "ja", 1.0, 6),
            ],
            phrases: [("down".to_owned(), 3), ("caiu".to_owned(), 1)].into(),
            langs: [("en".to_owned(), 4), ("pt".to_owned(), 1)].into(),
            ..ServiceCounts::default()
        };
        let evidence = gather([&counts].into_iter(), 4);
        let texts: Vec<&str> = evidence.samples.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            vec!["is x down", "x not loading", "o x caiu", "xが落ちてる"]
        );
        assert_eq!(
            evidence.top_phrases[0],
            PhraseCount {
                phrase: "down".into(),
                count: 3
            }
        );
        assert_eq!(evidence.languages.get("pt"), Some(&1));
    }

    /// Languages a window's buckets counted, and what the alert lists.
    #[test]
    fn an_alert_lists_the_most_reported_languages_and_sums_the_rest() {
        let langs = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(l, n)| ((*l).to_owned(), *n)).collect()
        };
        // 20 made-up codes with 1 report each, beside real ones.
        let junk: Vec<(String, u64)> = (0..20).map(|i| (format!("zz{i:02}"), 1)).collect();
        let junk: Vec<(&str, u64)> = junk.iter().map(|(l, n)| (l.as_str(), *n)).collect();
        fn with_junk<'a>(real: &[(&'a str, u64)], junk: &[(&'a str, u64)]) -> Vec<(&'a str, u64)> {
            [real, junk].concat()
        }
        type Counts<'a> = Vec<(&'a str, u64)>;
        let cases: Vec<(Counts, Counts)> = vec![
            // Few languages: listed as they are.
            (vec![("en", 4), ("pt", 1)], vec![("en", 4), ("pt", 1)]),
            // 16 exactly: still listed as they are.
            (junk[..16].to_vec(), junk[..16].to_vec()),
            // Past 16: 15 by reports, ties by code, the rest as other.
            (
                with_junk(&[("en", 9), ("ja", 5)], &junk),
                [&[("en", 9), ("ja", 5)], &junk[..13], &[("other", 7)]].concat(),
            ),
            // What buckets counted as other joins the rest.
            (
                with_junk(&[("other", 30), ("en", 9)], &junk),
                [&[("en", 9)], &junk[..14], &[("other", 36)]].concat(),
            ),
        ];
        for (counted, listed) in cases {
            let counts = ServiceCounts {
                langs: langs(&counted),
                ..ServiceCounts::default()
            };
            let evidence = gather([&counts].into_iter(), 4);
            assert_eq!(evidence.languages, langs(&listed), "{counted:?}");
            assert!(evidence.languages.len() <= MAX_LANGUAGES);
        }
    }
}
