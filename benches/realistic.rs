//! Benchmarks that match real traffic (issue 15, item 6).
//!
//! `benches/pipeline.rs` runs about 600 events per 10 s bucket, which hides
//! the per-bucket costs (closing, saving, detecting). Real Jetstream
//! recordings hold about 200–250 events per 10 s bucket with about 2.5
//! non-posts (likes, follows, reposts, deletes, identity) per post, so here:
//!
//! - `realistic/end_to_end_events`: the whole pipeline, decode → alert, on
//!   one hour of synthetic traffic at 225 events per bucket.
//! - `catalogue/build_{1,10}x`: building the matcher from the catalogue and
//!   from one with 10× the services (`benches/support/scaled_catalogue.rs`).
//! - `catalogue/match_posts_{1,10}x`: classifying that hour's posts with each.
//!
//! Run with `cargo bench --bench realistic`; the whole-process figures
//! (RSS, state size, next to `rg` and `zstd`) come from
//! `scripts/bench-replay.sh`. Figures are in the README, "Speed".

#[path = "support/scaled_catalogue.rs"]
mod scaled_catalogue;

use std::path::Path;
#[path = "support/end_to_end.rs"]
mod end_to_end;

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use outagewatch::matcher::Matcher;
use outagewatch::normalize::{Post, normalize};
use outagewatch::source::Decoded;
use outagewatch::source::jetstream::decode;
use outagewatch_synth::{Generator, Surge, SynthConfig};

/// Posts per second and non-posts per post of a real recording: 6.43 ×
/// (1 + 2.5) × 10 s ≈ 225 events per bucket.
const POSTS_PER_SEC: f64 = 6.43;
const OTHERS_PER_POST: f64 = 2.5;
const DURATION_SECS: i64 = 3600;

fn stream() -> Vec<String> {
    let config = SynthConfig {
        seed: 15,
        duration_secs: DURATION_SECS,
        posts_per_sec: POSTS_PER_SEC,
        others_per_post: OTHERS_PER_POST,
        complaints_per_hour: 120.0,
        decoy_share: 0.05,
        surges: vec![Surge {
            names: vec!["discord".into(), "Discord".into()],
            start_secs: DURATION_SECS / 2,
            duration_secs: 300,
            peak_per_min: 60.0,
            recovery_per_min: 5.0,
            ramp: 0.2,
        }],
        ..SynthConfig::default()
    };
    let mut frames = Vec::new();
    Generator::new(config).run(|f| frames.push(f));
    frames
}

fn posts(frames: &[String]) -> Vec<Post> {
    frames
        .iter()
        .filter_map(|f| match decode(f.as_bytes()) {
            Ok(Decoded::Post(p)) => Some(normalize(*p)),
            _ => None,
        })
        .collect()
}

fn realistic(c: &mut Criterion) {
    let frames = stream();
    let buckets = DURATION_SECS / 10;
    let per_bucket = frames.len() as f64 / buckets as f64;
    assert!(
        (200.0..=250.0).contains(&per_bucket),
        "the stream must have realistic density, has {per_bucket:.0} events per bucket"
    );
    let post_count = posts(&frames).len();
    eprintln!(
        "realistic stream: {} events, {post_count} posts, {per_bucket:.0} events per 10 s bucket, \
         {:.2} non-posts per post",
        frames.len(),
        (frames.len() - post_count) as f64 / post_count as f64
    );
    let matcher = Arc::new(Matcher::embedded().expect("patterns"));
    let mut group = c.benchmark_group("realistic");
    group.sample_size(10);
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function("end_to_end_events", |b| {
        b.iter(|| {
            let alerts = end_to_end::alerts_of(&matcher, &frames);
            assert!(alerts >= 1, "the surge fires");
        })
    });
    group.finish();
}

/// Builds the 1× and 10× matchers from patterns folders on disk, the way
/// `--patterns DIR` does, so both pay the same parsing costs.
fn catalogue(c: &mut Criterion) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("patterns");
    let tmp = tempfile::tempdir().expect("temporary directory");
    let frames = stream();
    let posts = posts(&frames);
    let mut group = c.benchmark_group("catalogue");
    group.sample_size(10);
    for factor in [1usize, 10] {
        let dir = tmp.path().join(format!("{factor}x"));
        scaled_catalogue::write_scaled_patterns(&src, &dir, factor).expect("scaled catalogue");
        let matcher =
            outagewatch::config::patterns::load_matcher(&dir).expect("scaled catalogue compiles");
        assert_eq!(
            matcher.service_count(),
            Matcher::embedded().expect("patterns").service_count() * factor
        );
        let reports = posts
            .iter()
            .filter(|p| matcher.classify(p).is_report())
            .count();
        eprintln!(
            "catalogue {factor}x: {} services, {reports} of {} posts are reports",
            matcher.service_count(),
            posts.len()
        );
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("build_{factor}x"), |b| {
            b.iter(|| {
                outagewatch::config::patterns::load_matcher(&dir)
                    .expect("compiles")
                    .service_count()
            })
        });
        group.throughput(Throughput::Elements(posts.len() as u64));
        group.bench_function(format!("match_posts_{factor}x"), |b| {
            b.iter(|| {
                posts
                    .iter()
                    .filter(|p| matcher.classify(p).is_report())
                    .count()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, realistic, catalogue);
criterion_main!(benches);
