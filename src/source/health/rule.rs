//! The health rule: the global `[health]` table, and a source's own
//! `[sources.health]` overriding any of its keys. A quiet source (a small
//! Mastodon instance, a Nostr relay) needs a longer silence than a busy
//! Jetstream, which needs the short one to catch a stall.

use serde::{Deserialize, Serialize};

use crate::Micros;
use crate::numbers as num;

/// The bounds of the health keys, one place for both tables (`[health]`
/// and `[sources.health]` take the same values): a day for the silence,
/// the grace and the calm, ten years for the lag (a huge lag turns the
/// check off).
const DAY_SECS: i64 = 86_400;
const LAG_MAX_SECS: i64 = 315_360_000;

/// When a source counts as unhealthy: the `[health]` table of the
/// configuration, read straight into this (bounds where declared).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthRule {
    /// No frame that decodes for this long (junk and binary do not
    /// count) raises `source:NAME` (1 s to 1 day).
    #[serde(deserialize_with = "num::int::<_, i64, 1, DAY_SECS>")]
    pub silence_secs: i64,
    /// Newest processed event older than this raises `source:NAME` (1 s
    /// to 10 years: a huge value turns the check off).
    #[serde(deserialize_with = "num::int::<_, i64, 1, LAG_MAX_SECS>")]
    pub lag_secs: i64,
    /// No verdict for this long after start, catching up from a cursor (0
    /// to 1 day).
    #[serde(deserialize_with = "num::int::<_, i64, 0, DAY_SECS>")]
    pub grace_secs: i64,
    /// An open `source:NAME` incident resolves only once the source has
    /// been healthy this long without a break (0 to 1 day; unset:
    /// `silence_secs`): a quiet source with a frame every 70 s against a
    /// 60 s silence rule fired and resolved every minute, each firing a
    /// high-severity page. Less than `silence_secs` lets such a source
    /// flap again.
    #[serde(deserialize_with = "num::int_opt::<_, i64, 0, DAY_SECS>")]
    pub calm_secs: Option<i64>,
}

impl HealthRule {
    /// How long a source must stay healthy to resolve its incident.
    pub fn calm_us(&self) -> Micros {
        self.calm_secs
            .unwrap_or(self.silence_secs)
            .saturating_mul(crate::MICROS_PER_SEC)
    }
}

impl Default for HealthRule {
    fn default() -> Self {
        HealthRule {
            silence_secs: 60,
            lag_secs: 120,
            grace_secs: 60,
            calm_secs: None,
        }
    }
}

/// A source's own health rule (`[sources.health]`, after its
/// `[[sources]]` entry): any subset of the `[health]` keys, with the same
/// bounds; a key left out is the global `[health]` value. The global rule
/// is one for every source, and a silence that a busy Jetstream needs (60
/// s, to catch a stall) paged for a healthy small instance or relay that
/// posts every few minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthOverride {
    #[serde(
        deserialize_with = "num::int_opt::<_, i64, 1, DAY_SECS>",
        skip_serializing_if = "Option::is_none"
    )]
    pub silence_secs: Option<i64>,
    #[serde(
        deserialize_with = "num::int_opt::<_, i64, 1, LAG_MAX_SECS>",
        skip_serializing_if = "Option::is_none"
    )]
    pub lag_secs: Option<i64>,
    #[serde(
        deserialize_with = "num::int_opt::<_, i64, 0, DAY_SECS>",
        skip_serializing_if = "Option::is_none"
    )]
    pub grace_secs: Option<i64>,
    #[serde(
        deserialize_with = "num::int_opt::<_, i64, 0, DAY_SECS>",
        skip_serializing_if = "Option::is_none"
    )]
    pub calm_secs: Option<i64>,
}

impl HealthOverride {
    /// True when the table sets nothing (it is then left out when the
    /// configuration is printed).
    pub fn is_empty(&self) -> bool {
        *self == HealthOverride::default()
    }

    /// The rule this source is judged by: each key set here, else the
    /// global one. `calm_secs` set nowhere stays unset, so it follows
    /// this source's own `silence_secs` (a source given a 600 s silence
    /// must not resolve after the global 60 s of calm and flap).
    pub fn over(&self, global: &HealthRule) -> HealthRule {
        HealthRule {
            silence_secs: self.silence_secs.unwrap_or(global.silence_secs),
            lag_secs: self.lag_secs.unwrap_or(global.lag_secs),
            grace_secs: self.grace_secs.unwrap_or(global.grace_secs),
            calm_secs: self.calm_secs.or(global.calm_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = crate::MICROS_PER_SEC;

    /// Each key set on the source wins; each left out is the global one.
    #[test]
    fn a_source_s_rule_merges_key_by_key_over_the_global_one() {
        let global = HealthRule {
            silence_secs: 60,
            lag_secs: 120,
            grace_secs: 30,
            calm_secs: Some(45),
        };
        let none = HealthOverride::default();
        let cases = [
            (none, global),
            (
                HealthOverride {
                    silence_secs: Some(600),
                    ..none
                },
                HealthRule {
                    silence_secs: 600,
                    ..global
                },
            ),
            (
                HealthOverride {
                    lag_secs: Some(3_600),
                    grace_secs: Some(0),
                    ..none
                },
                HealthRule {
                    lag_secs: 3_600,
                    grace_secs: 0,
                    ..global
                },
            ),
            (
                HealthOverride {
                    calm_secs: Some(0),
                    ..none
                },
                HealthRule {
                    calm_secs: Some(0),
                    ..global
                },
            ),
            (
                HealthOverride {
                    silence_secs: Some(1),
                    lag_secs: Some(2),
                    grace_secs: Some(3),
                    calm_secs: Some(4),
                },
                HealthRule {
                    silence_secs: 1,
                    lag_secs: 2,
                    grace_secs: 3,
                    calm_secs: Some(4),
                },
            ),
        ];
        for (source, want) in cases {
            assert_eq!(source.over(&global), want, "{source:?}");
        }
    }

    /// `calm_secs` set nowhere follows the source's own silence, not the
    /// global one: a 600 s silence with 60 s of calm would flap.
    #[test]
    fn an_unset_calm_follows_the_source_s_own_silence() {
        let global = HealthRule::default();
        let quiet = HealthOverride {
            silence_secs: Some(600),
            ..HealthOverride::default()
        };
        let rule = quiet.over(&global);
        assert_eq!(rule.calm_secs, None);
        assert_eq!(rule.calm_us(), 600 * S);
        assert_eq!(global.calm_us(), 60 * S);
        // An explicit global calm is kept, as written.
        let calm = HealthRule {
            calm_secs: Some(90),
            ..global
        };
        assert_eq!(quiet.over(&calm).calm_us(), 90 * S);
    }

    #[test]
    fn an_empty_override_is_empty() {
        assert!(HealthOverride::default().is_empty());
        let set = HealthOverride {
            grace_secs: Some(0),
            ..HealthOverride::default()
        };
        assert!(!set.is_empty());
    }
}
