//! Hosts that asked not to be called again for a while: a 429 or 503 to
//! the handshake with `Retry-After` (bounded to an hour, as a sink's
//! receiver is: [`crate::http_client::MAX_WAIT`]). Retried at the
//! ordinary backoff, a rate-limiting instance asking for an hour was
//! asked about 1,440 times a day. What a host asked holds for that host
//! only: the source's other hosts are still tried in turn.

use std::time::Duration;

use tokio::time::Instant;

/// When each host of a source's list may be connected to again, by its
/// place in the list.
#[derive(Debug)]
pub(super) struct Holds {
    until: Vec<Option<Instant>>,
}

impl Holds {
    /// No host of a list of `hosts` held.
    pub(super) fn new(hosts: usize) -> Self {
        Holds {
            until: vec![None; hosts],
        }
    }

    /// Host `index` asked not to be connected to for `wait`.
    pub(super) fn hold(&mut self, index: usize, wait: Duration) {
        if let Some(until) = self.until.get_mut(index) {
            *until = Some(Instant::now() + wait);
        }
    }

    /// The host to connect to after host `last`, no sooner than `at`, and
    /// when: the next in turn that is not held then; when every one is,
    /// the one free soonest, once it is.
    pub(super) fn next(&self, last: usize, at: Instant) -> (usize, Instant) {
        let hosts = self.until.len().max(1);
        let mut soonest = ((last + 1) % hosts, at);
        for step in 1..=hosts {
            let index = (last + step) % hosts;
            match self.until.get(index).copied().flatten() {
                Some(until) if until > at => {
                    if step == 1 || until < soonest.1 {
                        soonest = (index, until);
                    }
                }
                _ => return (index, at),
            }
        }
        soonest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (held hosts as (index, seconds), last host, seconds from now at
    /// the earliest) → (next host, seconds from now).
    #[tokio::test(start_paused = true)]
    async fn a_held_host_is_passed_over_until_every_host_is_held() {
        type Case<'a> = (usize, &'a [(usize, u64)], usize, u64, (usize, u64));
        let cases: [Case; 7] = [
            // (hosts, holds, last, earliest, want)
            (1, &[], 0, 1, (0, 1)),
            (1, &[(0, 3600)], 0, 1, (0, 3600)),
            (1, &[(0, 2)], 0, 5, (0, 5)),
            (3, &[], 0, 1, (1, 1)),
            (3, &[(1, 3600)], 0, 1, (2, 1)),
            (3, &[(1, 3600), (2, 60)], 0, 1, (0, 1)),
            (2, &[(0, 3600), (1, 60)], 1, 1, (1, 60)),
        ];
        let now = Instant::now();
        let secs = Duration::from_secs;
        for (hosts, held, last, earliest, (index, at)) in cases {
            let mut holds = Holds::new(hosts);
            for (host, wait) in held {
                holds.hold(*host, secs(*wait));
            }
            assert_eq!(
                holds.next(last, now + secs(earliest)),
                (index, now + secs(at)),
                "{hosts} hosts, held {held:?}, after {last}"
            );
        }
    }
}
