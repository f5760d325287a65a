//! What the matcher says about a post, and why.

use serde::Serialize;

/// The matcher's decision for one post.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub class: Class,
    /// Canonical service id, or the name of a discovered service.
    pub service: Option<String>,
    /// True when `service` is not in the catalogue but was named by an
    /// outage hashtag (`#FooDown` → `foo`).
    pub discovered: bool,
    /// Evidence for the decision; a report needs at least [`REPORT_THRESHOLD`].
    pub score: f32,
    pub reasons: Vec<Reason>,
}

/// The score a post needs to count as an outage report.
pub const REPORT_THRESHOLD: f32 = 1.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// The author says the service is failing now.
    Report,
    /// The author says the service works again.
    Recovery,
    /// The post announces planned work, not a failure.
    Maintenance,
    /// Anything else.
    None,
}

/// One step of the decision, in the order the matcher took it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    /// Which rule: `alias`, `handle`, `domain`, `hashtag`, `outage`, `weak`,
    /// `target`, `cancel`, `market`, `negation`, `notice`, `decision`, ...
    pub rule: &'static str,
    /// The text the rule matched, as it stands in the normalized post.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
    /// Character offsets `[start, end)` in the normalized text (characters,
    /// not bytes), when the rule matched a place in it (hashtags from
    /// metadata have none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<[usize; 2]>,
    /// The language list the phrase came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// What it added to the score (0 for rules that only cancel or attribute).
    pub weight: f32,
    pub detail: String,
}

impl Verdict {
    pub fn is_report(&self) -> bool {
        self.class == Class::Report
    }

    pub(crate) fn none() -> Verdict {
        Verdict {
            class: Class::None,
            service: None,
            discovered: false,
            score: 0.0,
            reasons: Vec::new(),
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:<11}", self.rule)?;
        if let Some(matched) = &self.matched {
            write!(f, " {matched:?}")?;
        }
        if let Some([start, end]) = self.at {
            write!(f, " at {start}..{end}")?;
        }
        if let Some(lang) = &self.lang {
            write!(f, " [{lang}]")?;
        }
        if self.weight != 0.0 {
            write!(f, " {:+.2}", self.weight)?;
        }
        if !self.detail.is_empty() {
            write!(f, "  {}", self.detail)?;
        }
        Ok(())
    }
}
