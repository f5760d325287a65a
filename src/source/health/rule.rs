//! The health rule a source is judged by, each key taken from the first
//! that sets it: the source's own `[sources.health]`, the global
//! `[health]`, the source kind's default ([`HealthRule::firehose`] for
//! Jetstream, [`HealthRule::quiet_stream`] for Mastodon and Nostr). A quiet
//! source (a small Mastodon instance, a Nostr relay) needs a longer silence
//! than a busy Jetstream, which needs the short one to catch a stall.

use serde::{Deserialize, Serialize};

use crate::Micros;
use crate::numbers as num;

/// The bounds of the health keys, one place for both tables (`[health]`
/// and `[sources.health]` take the same values): a day for the silence,
/// the grace and the calm, ten years for the lag (a huge lag turns the
/// check off).
const DAY_SECS: i64 = 86_400;
const LAG_MAX_SECS: i64 = 315_360_000;

/// When a source counts as unhealthy, every key resolved (see
/// [`HealthOverride::over`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthRule {
    /// No frame that decodes for this long (junk and binary do not
    /// count) raises `source:NAME` (1 s to 1 day).
    pub silence_secs: i64,
    /// Newest processed event older than this raises `source:NAME` (1 s
    /// to 10 years: a huge value turns the check off).
    pub lag_secs: i64,
    /// No verdict for this long after start, catching up from a cursor (0
    /// to 1 day).
    pub grace_secs: i64,
    /// An open `source:NAME` incident resolves only once the source has
    /// been healthy this long without a break (0 to 1 day; unset:
    /// `silence_secs`): a quiet source with a frame every 70 s against a
    /// 60 s silence rule fired and resolved every minute, each firing a
    /// high-severity page. Less than `silence_secs` lets such a source
    /// flap again.
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

impl HealthRule {
    /// A firehose's defaults (Jetstream, the default source): its
    /// posts-only stream carries tens of posts a second (`protocols.md`
    /// §1), so a minute without a frame that decodes is a stall, not a
    /// lull.
    pub const fn firehose() -> Self {
        HealthRule {
            silence_secs: 60,
            lag_secs: 120,
            grace_secs: 60,
            calm_secs: None,
        }
    }

    /// A quiet stream's defaults (Mastodon, Nostr): a small instance,
    /// `public:local` or a relay with a few notes a minute goes minutes
    /// without a post while healthy, and was paged as silent at the
    /// firehose's 60 s. Its connection calls it stalled only after
    /// [`crate::source::ws::QUIET_DATA_WATCHDOG`] × `watchdog_secs`
    /// without data while the server answers pings (20 × 30 s = 10
    /// minutes by default), so its alert waits as long: 600 s, and as
    /// long again to resolve (`calm_secs` unset follows it). Lag and grace
    /// are the firehose's: a connected quiet stream's watermark moves
    /// with the arrival clock (its ticks) whatever it posts.
    pub const fn quiet_stream() -> Self {
        HealthRule {
            silence_secs: 600,
            ..Self::firehose()
        }
    }
}

impl Default for HealthRule {
    /// [`HealthRule::firehose`]: the rule of the default source kind.
    fn default() -> Self {
        Self::firehose()
    }
}

/// The health keys a table sets, any subset of them, each within the
/// same bounds: the global `[health]` and a source's own
/// `[sources.health]` (after its `[[sources]]` entry) are both read into
/// one. A key left out falls to the next table, then to the source kind's
/// default (see the module). `[health]` was one rule with every key filled
/// in, so a key it did not set could not be told from one set to the
/// firehose's value, and a quiet relay was judged by a Jetstream's 60 s.
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

    /// Each key set here, else the one `below` sets (a source's keys
    /// over `[health]`'s).
    pub fn or(&self, below: &HealthOverride) -> HealthOverride {
        HealthOverride {
            silence_secs: self.silence_secs.or(below.silence_secs),
            lag_secs: self.lag_secs.or(below.lag_secs),
            grace_secs: self.grace_secs.or(below.grace_secs),
            calm_secs: self.calm_secs.or(below.calm_secs),
        }
    }

    /// The rule: each key set here, else `rule`'s. `calm_secs` set nowhere
    /// stays unset, so it follows the resolved `silence_secs` (a source
    /// given a 600 s silence must not resolve after 60 s of calm and
    /// flap).
    pub fn over(&self, rule: &HealthRule) -> HealthRule {
        HealthRule {
            silence_secs: self.silence_secs.unwrap_or(rule.silence_secs),
            lag_secs: self.lag_secs.unwrap_or(rule.lag_secs),
            grace_secs: self.grace_secs.unwrap_or(rule.grace_secs),
            calm_secs: self.calm_secs.or(rule.calm_secs),
        }
    }
}

impl From<HealthRule> for HealthOverride {
    /// Every key of `rule` set (`calm_secs` as it is): a resolved rule,
    /// as `config check` prints it and as a source's health record holds
    /// it.
    fn from(rule: HealthRule) -> Self {
        HealthOverride {
            silence_secs: Some(rule.silence_secs),
            lag_secs: Some(rule.lag_secs),
            grace_secs: Some(rule.grace_secs),
            calm_secs: rule.calm_secs,
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

    /// A quiet stream's silence is as long as its connection waits for
    /// data before calling it stalled, by default; the firehose's is the
    /// minute that catches a Jetstream stall.
    #[test]
    fn a_quiet_stream_s_silence_is_its_connection_s_data_watchdog() {
        let settings = crate::source::ws::WsSettings::default();
        let watchdog = settings.watchdog * crate::source::ws::QUIET_DATA_WATCHDOG;
        let quiet = HealthRule::quiet_stream();
        assert_eq!(quiet.silence_secs, watchdog.as_secs() as i64);
        assert_eq!(
            quiet,
            HealthRule {
                silence_secs: 600,
                ..HealthRule::firehose()
            }
        );
        assert_eq!(quiet.calm_us(), 600 * S, "resolving follows the silence");
        assert_eq!(HealthRule::default(), HealthRule::firehose());
        assert_eq!(HealthRule::firehose().silence_secs, 60);
    }

    /// A source's keys over `[health]`'s, key by key.
    #[test]
    fn keys_fall_through_key_by_key() {
        let own = HealthOverride {
            silence_secs: Some(300),
            ..HealthOverride::default()
        };
        let global = HealthOverride {
            silence_secs: Some(90),
            lag_secs: Some(600),
            ..HealthOverride::default()
        };
        assert_eq!(
            own.or(&global),
            HealthOverride {
                silence_secs: Some(300),
                lag_secs: Some(600),
                ..HealthOverride::default()
            }
        );
        let rule = HealthRule::quiet_stream();
        assert_eq!(
            HealthOverride::from(rule).over(&HealthRule::firehose()),
            rule
        );
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
