use super::*;

/// An author's held-back posts, the last at `at`.
fn held(author: &str, reports: u64, recoveries: u64, at: Micros) -> HeldBack {
    HeldBack {
        author: author.into(),
        reports,
        recoveries,
        server: AddedIn(None),
        at: AddedIn(Some(at)),
        copy: AddedIn(None),
    }
}

fn bounds(capacity: usize) -> Bounds {
    Bounds {
        capacity,
        max_candidates: 4,
        min_authors: 3,
        admit_us: 100,
        ttl_us: 100,
        admissions_per_author: 3,
        per_server: 2,
    }
}

/// Authors of one server count as at most 2 toward a name, and those
/// past that are turned away, not held (one server's made-up accounts
/// would grow the candidate without end); an author of another
/// server, or of none, completes it. The name's score counts the same
/// way.
#[test]
fn one_servers_authors_admit_a_name_only_with_others() {
    let (s, t) = (Some(ServerId::of("s")), Some(ServerId::of("t")));
    let mut names = DiscoveredNames::new(bounds(10));
    for (i, author) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
        let at = i as i64;
        let got = names.admit_post("x", author, s, Class::Report, true, at);
        let want = if i < 2 {
            Admission::Pending
        } else {
            Admission::Rejected
        };
        assert_eq!(got, want, "{author}");
    }
    assert_eq!((names.pending(), names.rejected()), (2, 3));
    let held = names.candidates.peek("x").map(|c| c.authors.len());
    assert_eq!(held, Some(2), "only the two that count are held");
    match names.admit_post("x", "f", t, Class::Report, true, 5) {
        Admission::Admitted(before) => {
            let authors: Vec<&str> = before.iter().map(|h| h.author.as_str()).collect();
            assert_eq!(authors, ["a", "b"]);
            assert!(before.iter().all(|h| *h.server == s));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(names.tracked.get("x").map(|t| t.score), Some(3.0));
    let mut names = DiscoveredNames::new(bounds(10));
    for (i, author) in ["a", "b", "c"].into_iter().enumerate() {
        names.admit_post("y", author, s, Class::Report, true, i as i64);
    }
    assert!(matches!(
        names.admit_post("y", "g", None, Class::Report, true, 3),
        Admission::Admitted(_)
    ));
}

#[test]
fn a_name_needs_several_authors_within_the_window() {
    let mut names = DiscoveredNames::new(bounds(10));
    assert_eq!(
        names.admit_post("x", "a", None, Class::Report, true, 0),
        Admission::Pending
    );
    assert_eq!(
        names.admit_post("x", "a", None, Class::Report, true, 1),
        Admission::Pending,
        "same author"
    );
    assert_eq!(
        names.admit_post("x", "b", None, Class::Report, true, 2),
        Admission::Pending
    );
    assert_eq!(
        names.admit_post("x", "c", None, Class::Report, true, 3),
        Admission::Admitted(vec![held("a", 2, 0, 1), held("b", 1, 0, 2)])
    );
    assert_eq!(
        names.admit_post("x", "d", None, Class::Report, true, 4),
        Admission::Counted
    );
    // Authors spread wider than the window never make it.
    for (i, author) in ["a", "b", "c", "d"].iter().enumerate() {
        let at = 1000 + 150 * i as i64;
        assert_eq!(
            names.admit_post("y", author, None, Class::Report, true, at),
            Admission::Pending
        );
    }
    assert_eq!(names.pending(), 7);
}

#[test]
fn candidates_are_bounded() {
    let mut names = DiscoveredNames::new(bounds(10));
    for i in 0..1000 {
        names.admit_post(
            &format!("junk{i}"),
            &format!("u{i}"),
            None,
            Class::Report,
            true,
            i,
        );
    }
    assert_eq!(names.sizes(), (0, 4));
}

#[test]
fn a_full_table_evicts_the_lowest_score_or_turns_away() {
    let mut names = DiscoveredNames::new(bounds(2));
    let admit = |names: &mut DiscoveredNames, name: &str, authors: usize, at: Micros| {
        let mut last = Admission::Pending;
        for a in 0..authors {
            last = names.admit_post(name, &format!("{name}-{a}"), None, Class::Report, true, at);
        }
        last
    };
    assert!(matches!(
        admit(&mut names, "busy", 10, 0),
        Admission::Admitted(_) | Admission::Counted
    ));
    assert!(matches!(
        admit(&mut names, "quiet", 3, 0),
        Admission::Admitted(_)
    ));
    // A third name at the same moment scores 3, as "quiet" does: turned away.
    assert_eq!(admit(&mut names, "third", 3, 0), Admission::Rejected);
    assert_eq!(names.rejected(), 1);
    // Half a ttl later, "quiet" still scores over half a fresh name's 3.
    assert_eq!(admit(&mut names, "early", 3, 50), Admission::Rejected);
    // A ttl later, "quiet" has decayed to half a fresh name's 3: evicted.
    assert!(matches!(
        admit(&mut names, "fourth", 3, 100),
        Admission::Admitted(_)
    ));
    assert_eq!(names.evicted(), 1);
    assert_eq!(
        names.admit_post("quiet", "q", None, Class::Report, true, 101),
        Admission::Pending
    );
    assert_eq!(
        names.admit_post("busy", "b", None, Class::Report, true, 101),
        Admission::Counted
    );
    assert_eq!(names.sizes().0, 2);
}

/// A name admitted a microsecond before a newcomer, with as many
/// authors, keeps its place: otherwise the cap bounds the table but
/// not what streams through it (every newcomer displaced the last).
#[test]
fn a_name_admitted_a_moment_earlier_keeps_its_place() {
    let mut names = DiscoveredNames::new(bounds(1));
    for author in ["a", "b", "c"] {
        names.admit_post("first", author, None, Class::Report, true, 0);
    }
    for author in ["d", "e", "f"] {
        names.admit_post("second", author, None, Class::Report, true, 1);
    }
    assert_eq!(names.evicted(), 0);
    assert_eq!(names.rejected(), 1);
    assert_eq!(
        names.admit_post("first", "a", None, Class::Report, true, 2),
        Admission::Counted
    );
}

/// Three accounts taking turns on a new name every three posts admit
/// their budget of names, not one name per three posts; the names
/// they did admit stay tracked, and others still admit a new name.
#[test]
fn a_few_authors_admit_a_few_names() {
    let mut names = DiscoveredNames::new(Bounds {
        max_candidates: 100,
        ..bounds(1000)
    });
    let mut admitted = 0;
    for i in 0..3000 {
        let tag = format!("t{}", i / 3);
        let author = format!("u{}", i % 3);
        if let Admission::Admitted(_) =
            names.admit_post(&tag, &author, None, Class::Report, true, i)
        {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3, "each author's budget is 3");
    assert_eq!(names.sizes().0, 3);
    assert!(names.rejected() > 2900, "{}", names.rejected());
    // Five accounts in every combination of three admit five names.
    let mut names = DiscoveredNames::new(bounds(1000));
    let mut admitted = 0;
    for i in 0..3000i64 {
        let tag = format!("t{}", i / 3);
        let author = format!("u{}", (i % 3 + i / 3) % 5);
        if let Admission::Admitted(_) =
            names.admit_post(&tag, &author, None, Class::Report, true, i)
        {
            admitted += 1;
        }
    }
    assert!(admitted <= 5, "{admitted}");
    // Fresh authors admit a new name beside them.
    for author in ["p", "q", "r"] {
        names.admit_post("real", author, None, Class::Report, true, 3000);
    }
    assert_eq!(
        names.admit_post("real", "u0", None, Class::Report, true, 3001),
        Admission::Counted,
        "a spent author's report of a tracked name still counts"
    );
}

/// An author who spent their budget while a candidate waited for its
/// last author no longer counts toward it: the name needs others.
#[test]
fn a_spent_author_in_a_candidate_does_not_count() {
    let mut names = DiscoveredNames::new(bounds(1000));
    names.admit_post("wait", "a", None, Class::Report, true, 0);
    names.admit_post("wait", "b", None, Class::Report, true, 0);
    for n in 0..3 {
        for author in ["a", "x", "y"] {
            names.admit_post(&format!("n{n}"), author, None, Class::Report, true, 1);
        }
    }
    assert_eq!(names.sizes().0, 3, "a spent its budget");
    assert_eq!(
        names.admit_post("wait", "c", None, Class::Report, true, 2),
        Admission::Pending
    );
    assert_eq!(
        names.admit_post("wait", "d", None, Class::Report, true, 3),
        Admission::Admitted(vec![held("b", 1, 0, 0), held("c", 1, 0, 2)]),
        "a was dropped when c joined"
    );
}

/// Saved and restored mid-stream, the tables go on as if never
/// interrupted: the same admissions, the same candidate evicted next.
#[test]
fn restored_tables_admit_and_evict_as_the_originals() {
    let steps: Vec<(String, String, Micros)> = (0..60)
        .map(|i| {
            // Four names taking turns, and a one-off name now and then
            // that pushes the least recently used candidate out.
            let name = match i % 5 {
                0 => format!("once{i}"),
                _ => format!("n{}", i % 4),
            };
            (name, format!("u{}", i % 3), i * 3)
        })
        .collect();
    // Three authors, each with a budget of 3 admissions: it binds,
    // and is saved with the tables.
    let mut whole = DiscoveredNames::new(bounds(2));
    let mut first = DiscoveredNames::new(bounds(2));
    let mut out_whole = Vec::new();
    let mut out_resumed = Vec::new();
    for (name, author, at) in &steps[..30] {
        out_whole.push(whole.admit_post(name, author, None, Class::Report, true, *at));
        out_resumed.push(first.admit_post(name, author, None, Class::Report, true, *at));
    }
    let bytes = postcard::to_allocvec(&first).expect("encode");
    let saved: SavedNames = postcard::from_bytes(&bytes).expect("decode");
    let mut resumed = DiscoveredNames::restored(bounds(2), saved);
    assert_eq!(resumed.sizes(), first.sizes());
    for (name, author, at) in &steps[30..] {
        out_whole.push(whole.admit_post(name, author, None, Class::Report, true, *at));
        out_resumed.push(resumed.admit_post(name, author, None, Class::Report, true, *at));
    }
    assert!(
        out_whole
            .iter()
            .any(|a| matches!(a, Admission::Admitted(_)))
    );
    assert!(
        out_whole.contains(&Admission::Rejected),
        "the cap is reached"
    );
    assert_eq!(out_resumed, out_whole);
    assert_eq!(resumed.sizes(), whole.sizes());
}

/// The restored candidates keep their order of use: the least recently
/// used one is still the one a newcomer pushes out.
#[test]
fn restored_candidates_keep_their_order_of_use() {
    let mut names = DiscoveredNames::new(bounds(10));
    for name in ["a", "b", "c", "d"] {
        names.admit_post(name, "u1", None, Class::Report, true, 0);
    }
    names.admit_post("a", "u2", None, Class::Report, true, 1);
    let bytes = postcard::to_allocvec(&names).expect("encode");
    let mut names =
        DiscoveredNames::restored(bounds(10), postcard::from_bytes(&bytes).expect("decode"));
    names.admit_post("e", "u1", None, Class::Report, true, 2);
    assert!(
        matches!(
            names.admit_post("a", "u3", None, Class::Report, true, 3),
            Admission::Admitted(_)
        ),
        "a, used last, kept its two authors"
    );
    names.admit_post("b", "u2", None, Class::Report, true, 3);
    assert_eq!(
        names.admit_post("b", "u3", None, Class::Report, true, 3),
        Admission::Pending,
        "b was pushed out"
    );
}

/// Names admitted together score the same; which one gives way to a
/// newcomer must not depend on the hash map's order (random per map).
#[test]
fn a_tie_for_the_lowest_score_evicts_by_name() {
    for _ in 0..20 {
        let mut names = DiscoveredNames::new(bounds(2));
        for name in ["b", "a"] {
            for author in ["x", "y", "z"] {
                names.admit_post(name, author, None, Class::Report, true, 0);
            }
        }
        for author in ["p", "q", "r"] {
            names.admit_post("c", author, None, Class::Report, true, 100);
        }
        assert_eq!(names.evicted(), 1);
        assert_eq!(
            names.admit_post("a", "x", None, Class::Report, true, 101),
            Admission::Pending,
            "a gave way"
        );
        assert_eq!(
            names.admit_post("b", "x", None, Class::Report, true, 101),
            Admission::Counted
        );
    }
}

/// A candidate no countable post can join is forgotten; one that a
/// post can still join is kept.
#[test]
fn expired_candidates_are_forgotten() {
    let mut names = DiscoveredNames::new(bounds(10));
    names.admit_post("old", "a", None, Class::Report, true, 0);
    names.admit_post("new", "a", None, Class::Report, true, 60);
    names.forget_expired(100);
    assert_eq!(names.sizes(), (0, 2), "both can still gather authors");
    names.forget_expired(101);
    assert_eq!(names.sizes(), (0, 1));
    // "new" kept its author: two more admit it.
    names.admit_post("new", "b", None, Class::Report, true, 120);
    assert!(matches!(
        names.admit_post("new", "c", None, Class::Report, true, 121),
        Admission::Admitted(_)
    ));
}

/// A candidate holds the authors of the last `admit_us`, not those of a
/// span from its first use: one post long before kept three authors
/// within a minute from admitting the name (and the author at 550 s was
/// dropped when 610 s reset the candidate).
#[test]
fn a_candidate_holds_the_authors_of_the_last_window() {
    let mut names = DiscoveredNames::new(bounds(10));
    for (author, at) in [("a", 0), ("b", 90), ("c", 110)] {
        assert_eq!(
            names.admit_post("x", author, None, Class::Report, true, at),
            Admission::Pending,
            "{author}"
        );
    }
    assert_eq!(
        names.admit_post("x", "d", None, Class::Report, true, 120),
        Admission::Admitted(vec![held("b", 1, 0, 90), held("c", 1, 0, 110)]),
        "a left at 110; b, c and d are within 100"
    );
    // Forgotten once its last author is more than `admit_us` behind what
    // can still be counted, not its first.
    names.admit_post("y", "a", None, Class::Report, true, 0);
    names.admit_post("y", "b", None, Class::Report, true, 90);
    names.forget_expired(150);
    assert_eq!(names.sizes().1, 1, "b keeps y");
    names.forget_expired(191);
    assert_eq!(names.sizes().1, 0);
}
