//! What one failing alert holds up: a sink delivers in outbox order, so an
//! alert its receiver keeps refusing holds every later alert of that sink,
//! new incidents included, until it is delivered or dead (the retry
//! horizon, 24 h by default). Until failing alerts can be set aside, the
//! log says so once a minute, with how much waits behind it.

use std::time::Duration;

use super::Alert;

/// How often the log says what a failing alert holds up, and how long it
/// must have failed before it first does (one retry that then succeeds
/// is not worth a warning).
pub(crate) const EVERY: Duration = Duration::from_secs(60);
/// Alerts read behind the failing one, at most, per warning.
pub(crate) const SCAN_LIMIT: usize = 10_000;

/// Alerts of other incidents waiting behind a failing alert.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct HeldUp {
    pub(crate) alerts: usize,
    pub(crate) incidents: usize,
    /// More were behind than were read ([`SCAN_LIMIT`]): "at least".
    pub(crate) more: bool,
}

/// Counts `behind` (the alerts after the failing one, in order) that are
/// not of `failing_id`'s incident (those would wait anyway: order within
/// an incident matters), reading at most `limit`.
pub(crate) fn held_up(
    behind: impl IntoIterator<Item = Alert>,
    failing_id: &str,
    limit: usize,
) -> HeldUp {
    let mut held = HeldUp::default();
    let mut incidents = std::collections::HashSet::new();
    for (read, alert) in behind.into_iter().enumerate() {
        if read >= limit {
            held.more = true;
            break;
        }
        if alert.id != failing_id {
            held.alerts += 1;
            incidents.insert(alert.id);
        }
    }
    held.incidents = incidents.len();
    held
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::TransitionKind;

    fn alert(source: &str, state: TransitionKind) -> Alert {
        Alert::source_health(source, state, 0, 0, "silent".into())
    }

    #[test]
    fn counts_other_incidents_only_and_says_when_it_stopped_reading() {
        let failing = alert("a", TransitionKind::Firing);
        let behind = vec![
            alert("a", TransitionKind::Resolved),
            alert("b", TransitionKind::Firing),
            alert("c", TransitionKind::Firing),
            alert("b", TransitionKind::Resolved),
        ];
        let held = held_up(behind.clone(), &failing.id, SCAN_LIMIT);
        assert_eq!(
            held,
            HeldUp {
                alerts: 3,
                incidents: 2,
                more: false
            }
        );
        let first_two = held_up(behind, &failing.id, 2);
        assert_eq!(
            first_two,
            HeldUp {
                alerts: 1,
                incidents: 1,
                more: true
            }
        );
        assert_eq!(held_up(Vec::new(), &failing.id, 2), HeldUp::default());
    }
}
