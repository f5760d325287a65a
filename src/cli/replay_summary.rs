//! The summary a replay prints at its end, on stderr: what was read, what
//! was skipped and why, per source, the malformed frames, the alerts.

use std::time::Duration;

use crate::pipeline::Stats;

/// Prints the summary of a replay of `source` that took `elapsed`.
pub fn print_summary(stats: &Stats, source: &str, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    eprintln!(
        "replayed {} events from {} in {:.2} s ({:.0} events/s)",
        stats.frames,
        source,
        secs,
        stats.frames as f64 / secs
    );
    print_posts(stats);
    print_dropped(stats);
    for (source, counts) in &stats.by_source {
        eprintln!(
            "  source {source}: late {} | stale {} | future {}",
            counts.late, counts.stale, counts.future
        );
    }
    print_malformed(stats);
    eprintln!("  alerts: {}", stats.alerts);
}

/// The posts by class, and the frames that were not posts.
fn print_posts(stats: &Stats) {
    eprintln!(
        "  posts {} | reports {} | recoveries {} | maintenance {} | late {} | stale {}",
        stats.posts,
        stats.reports,
        stats.recoveries,
        stats.maintenance,
        stats.late_posts,
        stats.stale_posts
    );
    let skipped: Vec<String> = stats
        .skipped
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    if !skipped.is_empty() {
        eprintln!("  skipped (not posts): {}", skipped.join(", "));
    }
}

/// What was dropped or held back, each line only when it happened (the
/// discovered names' bounds always).
fn print_dropped(stats: &Stats) {
    if stats.duplicates > 0 {
        eprintln!("  duplicate posts dropped: {}", stats.duplicates);
    }
    if stats.duplicate_frames > 0 {
        eprintln!(
            "  frames the server sent again (at or below the last sequence number), dropped: {}",
            stats.duplicate_frames
        );
    }
    if stats.seq_restarts > 0 {
        eprintln!(
            "  frames numbered far below the last sequence number (the server numbering afresh), followed: {}",
            stats.seq_restarts
        );
    }
    if stats.discovered_rejected > 0 {
        eprintln!(
            "  reports of discovered services turned away (too many new names at once): {}",
            stats.discovered_rejected
        );
    }
    eprintln!(
        "  discovered names: peak {} tracked, {} candidates, {} detector services; {} reports held back (too few authors)",
        stats.peak_discovered,
        stats.peak_candidates,
        stats.peak_detector_services,
        stats.discovered_pending
    );
    if stats.blank_lines > 0 {
        eprintln!("  blank lines: {}", stats.blank_lines);
    }
    if stats.future > 0 {
        eprintln!(
            "  future (quarantined, too far ahead of the clock): {}",
            stats.future
        );
    }
}

/// The malformed frames: how many, which failed verification, the first
/// few with where and why.
fn print_malformed(stats: &Stats) {
    eprintln!("  malformed: {}", stats.malformed);
    let unverified: Vec<String> = stats
        .unverified
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    if !unverified.is_empty() {
        eprintln!(
            "    of which failed verification: {}",
            unverified.join(", ")
        );
    }
    for (at, why) in &stats.malformed_examples {
        eprintln!("    {at}: {why}");
    }
    if stats.malformed > stats.malformed_examples.len() as u64 {
        eprintln!(
            "    ... and {} more",
            stats.malformed - stats.malformed_examples.len() as u64
        );
    }
}
