//! What the matcher says about a post, and why.

use serde::{Serialize, Serializer};

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
    /// Which rule took the step; consumers match on it, never on its name.
    pub rule: Rule,
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

/// The rules the matcher applies, one per kind of step in a [`Reason`].
/// Each has one name ([`Rule::name`]), used both by `check --explain`
/// (through `Display`) and in JSON, so the two cannot drift apart; code
/// that needs to know what a reason means matches on the variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// A catalogued name of a service.
    Alias,
    /// A name shared with ordinary words (X, Steam, Teams), with or
    /// without the support that lets it count.
    Ambiguous,
    /// A host name, catalogued or discovered.
    Domain,
    /// An `@account`, catalogued or discovered.
    Handle,
    /// A hashtag that names a service, or says it is down.
    Hashtag,
    /// A capitalised name where a subject stands, discovered.
    Name,
    /// An error message only one service shows.
    Error,
    /// A failure phrase.
    Outage,
    /// A phrase that needs company to make a report.
    Weak,
    /// Words that make a report sound live.
    Boost,
    /// A thing that fails without a name ("the site").
    Target,
    /// A longer phrase that gives a word its ordinary sense.
    Cancel,
    /// Markets and prices.
    Market,
    /// The past: not failing now.
    Past,
    /// A denial.
    Negation,
    /// A condition, a wish, a habit: not a failure now.
    Hypothetical,
    /// The author's own device.
    Local,
    /// Announced work.
    Maintenance,
    /// The voice of the operator or of a support reply.
    Notice,
    /// Said of a person, not a service.
    Person,
    /// Works again.
    Recovery,
    /// The final decision.
    Decision,
}

impl Rule {
    pub const ALL: [Rule; 22] = [
        Rule::Alias,
        Rule::Ambiguous,
        Rule::Domain,
        Rule::Handle,
        Rule::Hashtag,
        Rule::Name,
        Rule::Error,
        Rule::Outage,
        Rule::Weak,
        Rule::Boost,
        Rule::Target,
        Rule::Cancel,
        Rule::Market,
        Rule::Past,
        Rule::Negation,
        Rule::Hypothetical,
        Rule::Local,
        Rule::Maintenance,
        Rule::Notice,
        Rule::Person,
        Rule::Recovery,
        Rule::Decision,
    ];

    /// The one name of the rule, as `check --explain` and JSON show it.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Alias => "alias",
            Rule::Ambiguous => "ambiguous",
            Rule::Domain => "domain",
            Rule::Handle => "handle",
            Rule::Hashtag => "hashtag",
            Rule::Name => "name",
            Rule::Error => "error",
            Rule::Outage => "outage",
            Rule::Weak => "weak",
            Rule::Boost => "boost",
            Rule::Target => "target",
            Rule::Cancel => "cancel",
            Rule::Market => "market",
            Rule::Past => "past",
            Rule::Negation => "negation",
            Rule::Hypothetical => "hypothetical",
            Rule::Local => "local",
            Rule::Maintenance => "maintenance",
            Rule::Notice => "notice",
            Rule::Person => "person",
            Rule::Recovery => "recovery",
            Rule::Decision => "decision",
        }
    }

    /// Whether a reason of this rule that adds to the score matched the
    /// words someone wrote to say a service fails: the phrases an alert
    /// quotes. Boosts add to the score but say nothing fails; names,
    /// context and the decision add nothing. Exhaustive on purpose: a new
    /// rule must be placed on one side.
    pub fn is_failure_evidence(self) -> bool {
        match self {
            Rule::Outage | Rule::Weak | Rule::Hashtag | Rule::Error => true,
            Rule::Alias
            | Rule::Ambiguous
            | Rule::Domain
            | Rule::Handle
            | Rule::Name
            | Rule::Boost
            | Rule::Target
            | Rule::Cancel
            | Rule::Market
            | Rule::Past
            | Rule::Negation
            | Rule::Hypothetical
            | Rule::Local
            | Rule::Maintenance
            | Rule::Notice
            | Rule::Person
            | Rule::Recovery
            | Rule::Decision => false,
        }
    }
}

impl std::fmt::Display for Rule {
    /// The name, padded as the caller asks (`{:<11}` lines up `--explain`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
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

#[cfg(test)]
mod tests {
    use super::Rule;

    /// One name per rule, the same in `--explain` text and in JSON, and no
    /// two rules share one.
    #[test]
    fn each_rule_has_one_distinct_name() {
        let mut seen = std::collections::HashSet::new();
        for rule in Rule::ALL {
            assert!(seen.insert(rule.name()), "{rule:?} repeats a name");
            assert_eq!(format!("{rule}"), rule.name());
            assert_eq!(format!("{rule:<11}").trim_end(), rule.name());
            assert_eq!(format!("{rule:<11}").len(), rule.name().len().max(11));
            let json = serde_json::to_string(&rule).expect("a rule serializes");
            assert_eq!(json, format!("{:?}", rule.name()));
        }
    }

    /// The phrases an alert quotes come from exactly these rules.
    #[test]
    fn failure_evidence_rules() {
        let evidence: Vec<Rule> = Rule::ALL
            .into_iter()
            .filter(|r| r.is_failure_evidence())
            .collect();
        assert_eq!(
            evidence,
            [Rule::Hashtag, Rule::Error, Rule::Outage, Rule::Weak]
        );
    }
}
