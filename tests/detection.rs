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

/// Seven days of overdispersed report counts, straight into the detector
/// (10 s buckets, the daemon's settings): three services with a daily
/// cycle, slow bursty swings (a gamma-distributed multiplier redrawn every
/// ten minutes, and a news-cycle hour at double rate now and then), a viral
/// non-outage post about one of them (hundreds of accounts sharing the same
/// long text, with a genuine rise of 1.5× in people talking about it), and
/// four injected outages. Every outage fires; nothing else does.
#[test]
fn a_week_of_bursty_daily_traffic_fires_on_every_outage_and_nothing_else() {
    use outagewatch::detect::{Detector, DetectorConfig};
    use outagewatch::window::{AuthorId, Bucket, ServiceCounts};
    use rand::{RngExt, SeedableRng};

    const BUCKET: i64 = 10;
    const DAY: i64 = 86_400;
    let start_us: i64 = 1_782_864_000 * MICROS_PER_SEC; // 2026-07-01T00:00:00Z
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let poisson = |lambda: f64, rng: &mut rand_chacha::ChaCha8Rng| -> u64 {
        // Knuth's method: fine for the small rates of one bucket.
        let limit = (-lambda).exp();
        let (mut k, mut p) = (0u64, 1.0f64);
        loop {
            p *= rng.random::<f64>();
            if p <= limit {
                return k;
            }
            k += 1;
        }
    };
    // (name, mean authors a minute, hour of the daily peak)
    let services = [
        ("bigchat", 3.0, 15.0),
        ("midmail", 0.6, 20.0),
        ("tinygame", 0.05, 2.0),
    ];
    // (service, start, minutes, extra authors a minute)
    let outages: [(&str, i64, i64, f64); 4] = [
        ("midmail", 2 * DAY + 14 * 3600, 20, 10.0),
        ("bigchat", 3 * DAY + 15 * 3600 + 1800, 30, 25.0),
        ("tinygame", 5 * DAY + 4 * 3600, 15, 8.0),
        ("bigchat", 6 * DAY + 3 * 3600, 15, 12.0),
    ];
    // The viral post: day 4, 18:00, about midmail, one hour.
    let viral = (4 * DAY + 18 * 3600, 3600);
    let mut multiplier = [1.0f64; 3];
    let mut news = [false; 3];
    let mut detector = Detector::new(DetectorConfig::default());
    let mut alerts = Vec::new();
    let mut next_author = 0u64;
    for b in 0..(7 * DAY / BUCKET) {
        let t = b * BUCKET;
        if t % 600 == 0 {
            for (i, m) in multiplier.iter_mut().enumerate() {
                // Gamma(6, 1/6): mean 1, sd 0.41 (sum of exponentials).
                *m = (0..6)
                    .map(|_| -(1.0 - rng.random::<f64>()).ln())
                    .sum::<f64>()
                    / 6.0;
                if t % 3600 == 0 {
                    news[i] = rng.random_bool(0.05);
                }
            }
        }
        let mut bucket = Bucket {
            start: start_us + t * MICROS_PER_SEC,
            total_posts: 500,
            ..Bucket::default()
        };
        for (i, (name, per_min, peak_hour)) in services.iter().enumerate() {
            let hour = (t % DAY) as f64 / 3600.0;
            let cycle = 1.0 + 0.7 * (std::f64::consts::TAU * (hour - peak_hour) / 24.0).cos();
            let mut rate = per_min * cycle * multiplier[i] * if news[i] { 2.0 } else { 1.0 };
            let viral_now = *name == "midmail" && (viral.0..viral.0 + viral.1).contains(&t);
            if viral_now {
                rate *= 1.5;
            }
            for (svc, at, minutes, extra) in outages {
                if svc == *name && (at..at + minutes * 60).contains(&t) {
                    rate += extra;
                }
            }
            let n = poisson(rate * BUCKET as f64 / 60.0, &mut rng);
            let mut authors: Vec<AuthorId> = (0..n)
                .map(|_| {
                    next_author += 1;
                    AuthorId::of(&format!("did:{next_author}"))
                })
                .collect();
            let mut copies = Vec::new();
            if viral_now {
                // 40 accounts a minute share the same long post.
                for _ in 0..poisson(40.0 * BUCKET as f64 / 60.0, &mut rng) {
                    next_author += 1;
                    let author = AuthorId::of(&format!("did:{next_author}"));
                    copies.push((0xfeed, author));
                    authors.push(author);
                }
            }
            if authors.is_empty() {
                continue;
            }
            authors.sort();
            copies.sort();
            bucket.services.insert(
                (*name).to_owned(),
                ServiceCounts {
                    reports: authors.len() as u64,
                    authors,
                    copies,
                    ..ServiceCounts::default()
                },
            );
        }
        for transition in detector.on_bucket(&bucket) {
            if transition.kind == TransitionKind::Firing {
                let at = (transition.at - start_us) / MICROS_PER_SEC;
                let i = &transition.incident;
                println!(
                    "fired {} at {at} s: {} authors, expected {:.2}, dispersion {:.3}, p {:.1e}, scale {} s, basis {:?}",
                    i.service,
                    i.peak_authors,
                    i.expected,
                    i.dispersion,
                    i.p_value,
                    i.scale_secs,
                    i.basis
                );
                alerts.push((transition.incident.service.clone(), at));
            }
        }
    }
    let mut latencies = Vec::new();
    for (svc, at, minutes, _) in outages {
        let hit = alerts
            .iter()
            .find(|(s, t)| s == svc && (at..at + minutes * 60).contains(t));
        assert!(
            hit.is_some(),
            "outage of {svc} at {at} s missed: {alerts:?}"
        );
        latencies.push(hit.map_or(0, |(_, t)| t - at));
    }
    let false_alerts: Vec<&(String, i64)> = alerts
        .iter()
        .filter(|(s, t)| {
            !outages
                .iter()
                .any(|(svc, at, minutes, _)| s == svc && (*at..at + minutes * 60).contains(t))
        })
        .collect();
    println!(
        "7 bursty days: {} outages found (latency s {latencies:?}), {} false alerts",
        outages.len(),
        false_alerts.len()
    );
    assert!(false_alerts.is_empty(), "false alerts: {false_alerts:?}");
}

/// One provider takes down four services at once: each fires, the later
/// ones list the earlier ones as related, and one `upstream:aws` incident
/// (the provider `patterns/providers.toml` names for most of them) is
/// raised once and resolved once, relating every affected service.
#[test]
fn a_provider_outage_is_one_upstream_incident_relating_every_service() {
    let matcher = Arc::new(Matcher::embedded().expect("patterns"));
    let mut config = ordinary(5, 2);
    let affected = ["Roblox", "Venmo", "Coinbase", "Snapchat"];
    config.surges = affected
        .iter()
        .enumerate()
        .map(|(i, name)| Surge {
            names: vec![(*name).to_owned()],
            // Within two minutes of each other.
            start_secs: 3600 + 30 * i as i64,
            duration_secs: 900,
            peak_per_min: 12.0,
            recovery_per_min: 1.0,
            ramp: 0.0,
        })
        .collect();
    let (alerts, _) = alerts_of(config, &matcher);
    let firing: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.state == TransitionKind::Firing)
        .collect();
    let upstream: Vec<&&Alert> = firing
        .iter()
        .filter(|a| a.service.starts_with("upstream:"))
        .collect();
    println!(
        "provider outage: {:?}",
        firing
            .iter()
            .map(|a| (a.service.as_str(), a.at.as_str(), a.model.related.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(upstream.len(), 1, "one upstream incident: {firing:#?}");
    assert_eq!(upstream[0].service, "upstream:aws");
    assert!(
        upstream[0].model.related.len() >= 3,
        "raised with the services so far: {:?}",
        upstream[0].model.related
    );
    let services: Vec<&str> = firing
        .iter()
        .filter(|a| !a.service.starts_with("upstream:"))
        .map(|a| a.service.as_str())
        .collect();
    assert_eq!(services.len(), 4, "each service fires once: {services:?}");
    let last = firing
        .iter()
        .rfind(|a| !a.service.starts_with("upstream:"))
        .expect("a service alert");
    assert!(last.model.related.len() >= 2, "{last:#?}");
    let resolved: Vec<&Alert> = alerts
        .iter()
        .filter(|a| a.service.starts_with("upstream:") && a.state == TransitionKind::Resolved)
        .collect();
    assert_eq!(resolved.len(), 1, "the upstream incident resolves once");
    // By then every affected service, the late ones too, is related.
    let mut related = resolved[0].model.related.clone();
    related.sort();
    assert_eq!(related, vec!["coinbase", "roblox", "snapchat", "venmo"]);
}
