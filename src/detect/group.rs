//! Incidents that span services: when a cloud provider, a CDN, a DNS or a
//! login provider goes down, many services fire within minutes. Each of
//! their alerts lists the others (`related`), and one `upstream:PROVIDER`
//! incident is raised once for the whole group, naming the provider most
//! of the services depend on (`patterns/providers.toml`), or
//! `upstream:unknown`. It resolves when none of its services is still
//! open. Pure: firings in, transitions out.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::incident::{Incident, Measure, Severity, Transition, TransitionKind};
use super::{Basis, Evidence};
use crate::{MICROS_PER_SEC, Micros};

/// The name of a group's incident is this and its likely cause.
pub const UPSTREAM: &str = "upstream:";

/// Whether `service` names a group's incident (`upstream:PROVIDER`).
pub fn is_upstream(service: &str) -> bool {
    service.starts_with(UPSTREAM)
}

/// The built-in provider map.
const PROVIDERS_TOML: &str = include_str!("../../patterns/providers.toml");

/// Provider → the services known to run on it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Providers {
    #[serde(default)]
    pub depends_on: BTreeMap<String, Vec<String>>,
}

impl Providers {
    pub fn parse(text: &str) -> Result<Providers, toml::de::Error> {
        toml::from_str(text)
    }

    /// The map shipped in `patterns/providers.toml`.
    pub fn embedded() -> Providers {
        // Checked by a unit test; an unreadable map only loses the names.
        Providers::parse(PROVIDERS_TOML).unwrap_or_default()
    }

    /// The provider that the most of `services` depend on (at least two
    /// of them; ties go to the first name).
    pub fn likely_cause<'a>(
        &self,
        services: impl Iterator<Item = &'a str> + Clone,
    ) -> Option<&str> {
        let mut best: Option<(&str, usize)> = None;
        for (provider, deps) in &self.depends_on {
            let n = services
                .clone()
                .filter(|s| deps.iter().any(|d| d == s))
                .count();
            if n >= 2 && best.is_none_or(|(_, m)| n > m) {
                best = Some((provider.as_str(), n));
            }
        }
        best.map(|(p, _)| p)
    }
}

/// What the grouping remembers (saved with the detector's snapshot).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Groups {
    /// Recent firings: (event time, service), oldest first.
    recent: VecDeque<(Micros, String)>,
    /// The open upstream incident and its services.
    open: Option<(Incident, BTreeSet<String>)>,
}

impl Groups {
    /// Accounts for this bucket's transitions: fills in `related` on the
    /// firings, and returns the upstream transitions when a group forms or
    /// ends. `open` says whether a service still has an open incident.
    ///
    /// The open group takes in a service that fires within the group
    /// window of one of its members' firings, and no other: a group whose
    /// last member fired long ago (one service still open, the others
    /// calm) had taken in every later firing, so a second provider's
    /// outage an hour later joined the first one's incident and raised
    /// none of its own. Such a stale group ends when a new group forms.
    pub fn on_transitions(
        &mut self,
        transitions: &mut [Transition],
        now: Micros,
        window_secs: i64,
        min_services: usize,
        providers: &Providers,
        open: impl Fn(&str) -> bool,
    ) -> Vec<Transition> {
        let fired = transitions.iter().any(|t| t.kind == TransitionKind::Firing);
        let members = self.note_firings(transitions, now, window_secs * MICROS_PER_SEC);
        // A group forms with a firing: the firings still remembered after
        // an upstream resolved must not raise it again at the next bucket.
        let forms = fired && members.len() >= min_services.max(2);
        let mut out = Vec::new();
        match &self.open {
            Some((_, services)) if members.iter().any(|m| services.contains(m)) => {
                out.extend(self.resolve_when_all_closed(&members, now, open));
            }
            Some(_) if forms => {
                out.extend(self.resolve_group(now));
                out.push(self.open_upstream(members, transitions, now, providers));
            }
            Some(_) => out.extend(self.resolve_when_all_closed(&BTreeSet::new(), now, open)),
            None if forms => out.push(self.open_upstream(members, transitions, now, providers)),
            None => {}
        }
        out
    }

    /// Remembers this bucket's firings, forgets those older than the
    /// group window, and lists the others in each firing's `related`.
    /// Returns the services that fired within the window.
    fn note_firings(
        &mut self,
        transitions: &mut [Transition],
        now: Micros,
        window_us: Micros,
    ) -> BTreeSet<String> {
        for t in transitions.iter() {
            if t.kind == TransitionKind::Firing {
                self.recent.push_back((t.at, t.incident.service.clone()));
            }
        }
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| at + window_us < now)
        {
            self.recent.pop_front();
        }
        let members: BTreeSet<String> = self.recent.iter().map(|(_, s)| s.clone()).collect();
        for t in transitions.iter_mut() {
            if t.kind == TransitionKind::Firing {
                t.related = members
                    .iter()
                    .filter(|s| **s != t.incident.service)
                    .cloned()
                    .collect();
            }
        }
        members
    }

    /// The open upstream incident takes in the new members, and resolves
    /// once none of its services is still open.
    fn resolve_when_all_closed(
        &mut self,
        members: &BTreeSet<String>,
        now: Micros,
        open: impl Fn(&str) -> bool,
    ) -> Option<Transition> {
        let (_, services) = self.open.as_mut()?;
        services.extend(members.iter().cloned());
        if services.iter().any(|s| open(s)) {
            return None;
        }
        self.resolve_group(now)
    }

    /// Resolves the open upstream incident, relating every service of its
    /// group.
    fn resolve_group(&mut self, now: Micros) -> Option<Transition> {
        let (mut incident, services) = self.open.take()?;
        // Its firings are accounted for: a group forms again only from new
        // ones.
        self.recent.retain(|(_, s)| !services.contains(s));
        let mut t =
            incident.transition(TransitionKind::Resolved, now, &calm(), Evidence::default());
        t.related = services.into_iter().collect();
        Some(t)
    }

    /// Opens the upstream incident of a group: named after the provider
    /// most members depend on, started at the oldest firing, as sure as
    /// its surest member.
    fn open_upstream(
        &mut self,
        members: BTreeSet<String>,
        transitions: &[Transition],
        now: Micros,
        providers: &Providers,
    ) -> Transition {
        let started = self.recent.front().map_or(now, |(at, _)| *at);
        let span_min = ((now - started) as f64 / (60 * MICROS_PER_SEC) as f64).ceil() as i64;
        let cause = providers
            .likely_cause(members.iter().map(String::as_str))
            .unwrap_or("unknown");
        // The members' firings of this bucket only: other services'
        // updates and resolutions in it are not the group's.
        let firings = transitions
            .iter()
            .filter(|t| t.kind == TransitionKind::Firing && members.contains(&t.incident.service));
        // The group's figures are its members' firings summed: what they
        // counted and expected together. A dispersion, a basis and a
        // scale are a single series' and the alert leaves them out
        // ([`is_upstream`]).
        let sum = |f: fn(&Transition) -> f64| firings.clone().map(f).sum::<f64>();
        let group = Measure {
            reports: firings.clone().map(|t| t.reports).sum(),
            authors: firings.clone().map(|t| t.authors).sum(),
            rate_per_min: sum(|t| t.rate_per_min),
            baseline_per_min: sum(|t| t.baseline_per_min),
            basis: Basis::Prior,
            expected: sum(|t| t.expected),
            dispersion: 0.0,
        };
        let mut incident = Incident::open(
            &format!("{UPSTREAM}{cause}"),
            started,
            Severity::High,
            firings.map(|t| t.incident.p_value).fold(1.0, f64::min),
            false,
            group.reports,
            group.authors,
            Basis::Prior,
        );
        let mut t = incident.transition(TransitionKind::Firing, now, &group, Evidence::default());
        t.related = members.iter().cloned().collect();
        t.evidence.top_phrases = vec![super::PhraseCount {
            phrase: format!(
                "{} services within {} minutes",
                members.len(),
                span_min.max(1)
            ),
            count: members.len() as u64,
        }];
        self.open = Some((incident, members));
        t
    }
}

/// A resolved group's figures: nothing counted any more.
fn calm() -> Measure {
    Measure {
        reports: 0,
        authors: 0,
        rate_per_min: 0.0,
        baseline_per_min: 0.0,
        basis: Basis::Prior,
        expected: 0.0,
        dispersion: 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_provider_map_reads_and_names_a_cause() {
        let p = Providers::embedded();
        assert!(p.depends_on.contains_key("aws"), "{p:?}");
        let services = ["roblox", "venmo", "coinbase", "gmail"];
        assert_eq!(p.likely_cause(services.iter().copied()), Some("aws"));
        assert_eq!(p.likely_cause(["gmail"].iter().copied()), None);
    }

    /// A name in the map that is no service can never be among the
    /// services that fired: it only misleads whoever reads the map.
    #[test]
    fn every_service_in_the_provider_map_is_in_the_catalogue() {
        let catalogue = crate::matcher::Catalogue::embedded().expect("catalogue");
        let known: std::collections::BTreeSet<&str> = catalogue
            .services
            .iter()
            .map(|s| s.id.get_ref().as_str())
            .collect();
        for (provider, deps) in &Providers::embedded().depends_on {
            for service in deps {
                assert!(
                    known.contains(service.as_str()),
                    "{provider} lists {service:?}, which patterns/services.toml does not define"
                );
            }
        }
    }
}
