//! Detection on generated streams, in event time: how fast a surge fires,
//! and how many false alarms hours of ordinary chatter raise. The figures
//! printed here are the ones in the README ("How detection works").

use std::sync::Arc;

use outagewatch::MICROS_PER_SEC;
use outagewatch::alert::Alert;
use outagewatch::detect::TransitionKind;
use outagewatch::matcher::Matcher;
use outagewatch::pipeline::{Pipeline, PipelineConfig, Received};
use outagewatch::state::SledStore;
use outagewatch_synth::{DecoyBurst, Generator, Surge, SynthConfig};

fn alerts_of(config: SynthConfig, matcher: &Arc<Matcher>) -> (Vec<Alert>, u64) {
    let store = SledStore::temporary().expect("store");
    let mut pipeline =
        Pipeline::open(Arc::clone(matcher), PipelineConfig::new(), store).expect("pipeline");
    let mut alerts = Vec::new();
    let mut n = 0u64;
    let mut failure = None;
    Generator::new(config).run(|frame| {
        n += 1;
        match pipeline.process_frame("synth", n, frame.as_bytes(), &Received::jetstream()) {
            Ok(emitted) => alerts.extend(emitted.into_iter().map(|e| e.alert)),
            Err(e) => failure = Some(e.to_string()),
        }
    });
    assert_eq!(failure, None);
    alerts.extend(
        pipeline
            .finish()
            .expect("finish")
            .into_iter()
            .map(|e| e.alert),
    );
    (alerts, pipeline.stats().posts)
}

fn ordinary(seed: u64, hours: i64) -> SynthConfig {
    SynthConfig {
        seed,
        duration_secs: hours * 3600,
        posts_per_sec: 3.0,
        // Posts only: non-posts are skipped before detection and would only
        // slow the test down.
        others_per_post: 0.0,
        // A few complaints an hour for each of fifteen services.
        complaints_per_hour: 45.0,
        decoy_share: 0.05,
        ..SynthConfig::default()
    }
}

#[test]
fn hours_of_ordinary_chatter_raise_no_alert() {
    let matcher = Arc::new(Matcher::embedded().expect("patterns"));
    let hours = 24;
    let mut config = ordinary(11, hours);
    // Decoy storms every few hours: markets, football, a past outage.
    let storm = |start_h: i64, texts: &[&str]| DecoyBurst {
        texts: texts.iter().map(|t| (*t).to_owned()).collect(),
        start_secs: start_h * 3600,
        duration_secs: 600,
        per_min: 30.0,
    };
    config.decoy_bursts = vec![
        storm(
            3,
            &[
                "the Dow is down 900 points",
                "Netflix stock down 8% after earnings",
                "$META down 5% premarket",
            ],
        ),
        storm(
            9,
            &[
                "TOUCHDOWN!!!",
                "3rd down and long, come on",
                "feeling down after that fumble",
            ],
        ),
        storm(
            15,
            &[
                "twitter was down last night lol",
                "remember when instagram was down in 2021",
            ],
        ),
        storm(
            21,
            &[
                "anyone down for discord tonight?",
                "downloading the new spotify update",
            ],
        ),
    ];
    let (alerts, posts) = alerts_of(config, &matcher);
    println!(
        "false alarms: {} alerts over {hours} generated hours ({posts} posts)",
        alerts.len()
    );
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn a_surge_of_ten_authors_a_minute_fires_within_a_minute() {
    let matcher = Arc::new(Matcher::embedded().expect("patterns"));
    let onset_secs = 3600;
    let mut latencies = Vec::new();
    for seed in 1..=8 {
        let mut config = ordinary(seed, 2);
        let start_us = config.start_us;
        config.surges = vec![Surge {
            names: vec!["discord".into(), "Discord".into()],
            start_secs: onset_secs,
            duration_secs: 600,
            peak_per_min: 10.0,
            recovery_per_min: 2.0,
            ramp: 0.0,
        }];
        let (alerts, _) = alerts_of(config, &matcher);
        let fired: Vec<&Alert> = alerts
            .iter()
            .filter(|a| a.state == TransitionKind::Firing)
            .collect();
        assert_eq!(fired.len(), 1, "seed {seed}: one incident: {alerts:#?}");
        assert_eq!(fired[0].service, "discord");
        let at = chrono::DateTime::parse_from_rfc3339(&fired[0].at)
            .expect("rfc3339")
            .timestamp_micros();
        let latency = (at - start_us - onset_secs * MICROS_PER_SEC) / MICROS_PER_SEC;
        latencies.push(latency);
    }
    latencies.sort_unstable();
    println!("latency to fire (s) for 8 surges of 10 authors/min: {latencies:?}");
    assert!(
        latencies.iter().all(|l| (0..=60).contains(l)),
        "{latencies:?}"
    );
}
