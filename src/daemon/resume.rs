//! Each connection's health record at start: its source's own health
//! keys, and the cursor it resumes from (said in the log, as is a saved
//! cursor no configured source uses).

use std::sync::Arc;

use crate::pipeline::Pipeline;
use crate::source::Connection;
use crate::source::health::{HealthOverride, SourceHealth};
use crate::source::jetstream::SeqCursor;
use crate::state::SledStore;
use crate::wall::SharedClock;

/// One health record per connection, judged by its source's own health
/// keys and resuming from its saved cursor, and its saved sequence cursor
/// (Jetstream v2).
pub(super) fn source_health(
    pipeline: &Pipeline<SledStore>,
    (connections, rules): (&[Connection], &[HealthOverride]),
    clock: &SharedClock,
) -> (Vec<Arc<SourceHealth>>, Vec<Option<SeqCursor>>) {
    let resume = connections
        .iter()
        .map(|c| pipeline.seq_cursor(&c.name))
        .collect();
    let mut health = Vec::with_capacity(connections.len());
    for (c, rule) in connections.iter().zip(rules) {
        let h = SourceHealth::with_clock(&c.name, pipeline.cursor(&c.name), Arc::clone(clock))
            .with_rule(*rule);
        if let Some(cursor) = h.processed() {
            let seq = pipeline
                .seq_cursor(&c.name)
                .map(|s| format!("seq {} on {}", s.seq, s.host));
            tracing::info!(source = %c.name, cursor = %crate::wall::rfc3339_micros(cursor), seq = seq.as_deref().unwrap_or("-"), "resuming from the saved cursor");
        }
        health.push(Arc::new(h));
    }
    warn_of_unused_cursors(pipeline, connections);
    (health, resume)
}

/// A source started live while the state holds cursors of sources that are
/// not configured: a renamed source (or one whose name changed with its
/// URL) starts afresh, and what happened while it was away is not read.
/// It used to start in silence.
fn warn_of_unused_cursors(pipeline: &Pipeline<SledStore>, connections: &[Connection]) {
    let configured = |name: &str| connections.iter().any(|c| c.name == name);
    let unused: Vec<&str> = pipeline
        .sources_with_cursors()
        .into_iter()
        .filter(|name| !configured(name))
        .collect();
    if unused.is_empty() {
        return;
    }
    for c in connections
        .iter()
        .filter(|c| pipeline.cursor(&c.name).is_none())
    {
        tracing::warn!(
            source = %c.name,
            unused = %unused.join(", "),
            "no saved cursor for this source: it starts at the live tail; the state holds cursors of sources that are not configured (renamed?)"
        );
    }
}
