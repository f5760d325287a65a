//! The end-to-end measurement both benchmarks make: every frame through a
//! fresh pipeline on a temporary store, as the live daemon saves (every
//! closed bucket). Shared via `#[path]` by `benches/pipeline.rs` and
//! `benches/realistic.rs`.

use std::sync::Arc;

use outagewatch::matcher::Matcher;
use outagewatch::pipeline::{Pipeline, PipelineConfig, Received};
use outagewatch::state::SledStore;

/// Alerts raised by `frames` from a fresh pipeline (the benches assert the
/// surge fires, so a broken pipeline is not measured as a fast one).
pub fn alerts_of(matcher: &Arc<Matcher>, frames: &[String]) -> usize {
    let store = SledStore::temporary().expect("store");
    let mut pipeline =
        Pipeline::open(Arc::clone(matcher), PipelineConfig::new(), store).expect("pipeline");
    let mut alerts = 0;
    for (n, frame) in frames.iter().enumerate() {
        alerts += pipeline
            .process_frame("bench", n as u64, frame.as_bytes(), &Received::jetstream())
            .expect("process")
            .len();
    }
    alerts + pipeline.finish().expect("finish").len()
}
