//! The window's scales built in one pass against each built on its own
//! from the definition (the code they replaced): the same views, every
//! field, on random windows with repeated authors, shared texts and
//! servers.

use proptest::prelude::*;

use crate::window::{AddedIn, AuthorId, ServerId};

use super::super::RecentBucket;
use super::*;

const B: Micros = 10_000_000;

/// Each scale from scratch, as the definition reads: distinct authors of
/// the buckets since its start; per text, the accounts past its cap in
/// digest order, those past the cap in every text they shared taken off;
/// then per server, among the accounts left, the same.
fn one_scale(state: &ServiceState, since: Micros, caps: Caps) -> (u64, u64, u64, u64, u64) {
    let buckets: Vec<&ServiceCounts> = state
        .recent
        .iter()
        .filter(|b| b.start >= since)
        .map(|b| &b.counts)
        .collect();
    let mut authors: Vec<AuthorId> = buckets
        .iter()
        .flat_map(|c| c.authors.iter().copied())
        .collect();
    authors.sort_unstable();
    authors.dedup();
    let total =
        |f: fn(&ServiceCounts) -> u64| buckets.iter().fold(0u64, |s, c| s.saturating_add(f(c)));
    let copies: Vec<(u64, AuthorId)> = buckets
        .iter()
        .flat_map(|c| c.copies.iter().copied())
        .collect();
    let servers: Vec<(ServerId, AuthorId)> = buckets
        .iter()
        .flat_map(|c| c.servers.iter().copied())
        .collect();
    let mut excess = past_every_cap(copies, caps.per_text as usize);
    // Then the servers' cap, among the accounts the copies' cap counts.
    let servers = servers
        .into_iter()
        .filter(|(_, a)| excess.binary_search(a).is_err())
        .collect();
    excess.extend(past_every_cap(servers, caps.per_server as usize));
    let uncapped = (authors.len() as u64).saturating_add(total(|c| c.extra_authors));
    (
        total(|c| c.reports),
        uncapped,
        total(distinct),
        uncapped.saturating_sub(excess.len() as u64),
        total(|c| c.recoveries),
    )
}

/// The accounts past `cap` (in digest order) in every group they are in.
fn past_every_cap<G: Ord + Copy>(mut pairs: Vec<(G, AuthorId)>, cap: usize) -> Vec<AuthorId> {
    pairs.sort_unstable();
    pairs.dedup();
    let (mut within, mut past) = (Vec::new(), Vec::new());
    for group in pairs.chunk_by(|a, b| a.0 == b.0) {
        for (i, (_, a)) in group.iter().enumerate() {
            if i < cap {
                within.push(*a)
            } else {
                past.push(*a)
            }
        }
    }
    within.sort_unstable();
    within.dedup();
    past.sort_unstable();
    past.dedup();
    past.retain(|a| within.binary_search(a).is_err());
    past
}

/// A bucket: authors, copies and servers drawn from small pools, so they
/// repeat across buckets, texts and servers (an account may even come
/// through two servers: the rule holds for any pairs).
fn counts() -> impl Strategy<Value = ServiceCounts> {
    (
        proptest::collection::btree_set(0u8..12, 0..6),
        proptest::collection::vec((0u64..4, 0u8..12), 0..8),
        proptest::collection::vec((0u8..3, 0u8..12), 0..8),
        0u64..3,
        0u64..20,
        0u64..4,
    )
        .prop_map(
            |(authors, copies, servers, extra, reports, recoveries)| ServiceCounts {
                reports,
                authors: authors
                    .iter()
                    .map(|a| AuthorId::of(&format!("did:{a:02}")))
                    .collect(),
                recoveries,
                copies: copies
                    .into_iter()
                    .map(|(text, a)| (text, AuthorId::of(&format!("did:{a:02}"))))
                    .collect(),
                servers: AddedIn(
                    servers
                        .into_iter()
                        .map(|(server, a)| {
                            (
                                ServerId::of(&format!("s{server}")),
                                AuthorId::of(&format!("did:{a:02}")),
                            )
                        })
                        .collect(),
                ),
                extra_authors: extra,
                ..ServiceCounts::default()
            },
        )
}

proptest! {
    #[test]
    fn every_scale_built_in_one_pass_is_the_scale_built_alone(
        buckets in proptest::collection::vec((any::<bool>(), counts()), 1..14),
        per_text in 1u64..4,
        per_server in 1u64..4,
        first in 1usize..4,
    ) {
        let mut state = ServiceState::default();
        // Some buckets missing (a stream without posts in them).
        for (i, (present, counts)) in buckets.iter().enumerate() {
            if *present {
                state.recent.push_back(RecentBucket { start: i as i64 * B, counts: counts.clone() });
            }
        }
        let now = (buckets.len() as i64 - 1) * B;
        let scales = buckets.len() + 2;
        let expectations: Vec<(f64, Basis)> = (0..scales).map(|j| (j as f64, Basis::Prior)).collect();
        let caps = Caps { per_text, per_server };
        let views = window_views(&state, now, B, first, &expectations, caps);
        prop_assert_eq!(views.len(), scales + 1 - first.min(scales + 1));
        for (k, v) in views.iter().enumerate() {
            let j = first + k;
            let since = now - (j as i64 - 1) * B;
            let want = one_scale(&state, since, caps);
            prop_assert_eq!((v.reports, v.uncapped, v.summed, v.authors, v.recoveries), want, "scale {}", j);
            prop_assert_eq!(v.expected, (j - 1) as f64);
            let alone = window_view(&state, since, v.expected, v.basis, caps);
            prop_assert_eq!((alone.reports, alone.uncapped, alone.summed, alone.authors, alone.recoveries), want);
        }
    }
}

/// Accounts the copies' cap leaves out take none of a server's places.
/// Five accounts share a long text (cap 3): the two past its cap also
/// come through server R, ahead of R's two real authors in digest order
/// (cap 2). Taken at once, the caps would leave out the two copies and
/// R's real authors alike (2 of 7 counted); one after the other, R's
/// real authors count (4: three within the text's cap, one of them past
/// its own server's, R2, whose cap is 2; and R's two).
#[test]
fn accounts_past_a_texts_cap_take_no_servers_place() {
    let mut ids: Vec<AuthorId> = (0..40).map(|i| AuthorId::of(&format!("did:{i}"))).collect();
    ids.sort_unstable();
    let (sharers, real) = (&ids[..5], [ids[30], ids[31]]);
    let (r, r2) = (ServerId::of("r.social"), ServerId::of("r2.social"));
    let mut servers: Vec<(ServerId, AuthorId)> = sharers[..3].iter().map(|&a| (r2, a)).collect();
    servers.extend(sharers[3..].iter().map(|&a| (r, a)));
    servers.extend(real.iter().map(|&a| (r, a)));
    let counts = ServiceCounts {
        reports: 7,
        authors: sharers.iter().copied().chain(real).collect(),
        copies: sharers.iter().map(|&a| (1, a)).collect(),
        servers: AddedIn(servers),
        ..ServiceCounts::default()
    };
    let mut state = ServiceState::default();
    state.recent.push_back(RecentBucket { start: 0, counts });
    let caps = Caps {
        per_text: 3,
        per_server: 2,
    };
    let view = window_view(&state, 0, 1.0, Basis::Prior, caps);
    assert_eq!((view.uncapped, view.authors), (7, 4));
    assert_eq!(one_scale(&state, 0, caps).3, 4, "the definition agrees");
}
