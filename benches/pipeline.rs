//! Throughput of the whole pipeline on a realistic mix: about two non-post
//! events (likes, follows, reposts, deletes, identity) per post, ordinary
//! chatter, decoys, isolated complaints and one surge. Run with
//! `cargo bench --bench pipeline`; figures are in the README.

#[path = "support/end_to_end.rs"]
mod end_to_end;

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use outagewatch::matcher::Matcher;
use outagewatch::normalize::normalize;
use outagewatch::source::Decoded;
use outagewatch::source::jetstream::decode;
use outagewatch_synth::{Generator, Surge, SynthConfig};

fn stream() -> Vec<String> {
    let config = SynthConfig {
        seed: 7,
        duration_secs: 1800,
        posts_per_sec: 20.0,
        others_per_post: 2.0,
        complaints_per_hour: 120.0,
        decoy_share: 0.05,
        surges: vec![Surge {
            names: vec!["discord".into(), "Discord".into()],
            start_secs: 900,
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

fn bench(c: &mut Criterion) {
    let frames = stream();
    let matcher = Arc::new(Matcher::embedded().expect("patterns"));
    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function("end_to_end_events", |b| {
        b.iter(|| {
            let alerts = end_to_end::alerts_of(&matcher, &frames);
            assert!(alerts >= 1, "the surge fires");
        })
    });
    group.bench_function("decode_only_events", |b| {
        b.iter(|| {
            frames
                .iter()
                .filter(|f| matches!(decode(f.as_bytes()), Ok(Decoded::Post(_))))
                .count()
        })
    });
    let posts: Vec<_> = frames
        .iter()
        .filter_map(|f| match decode(f.as_bytes()) {
            Ok(Decoded::Post(p)) => Some(normalize(*p)),
            _ => None,
        })
        .collect();
    group.throughput(Throughput::Elements(posts.len() as u64));
    group.bench_function("match_only_posts", |b| {
        b.iter(|| {
            posts
                .iter()
                .filter(|p| matcher.classify(p).is_report())
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
