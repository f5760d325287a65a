//! Writes the demo recording `data/demo.jsonl.gz`:
//!
//!     cargo run --release --example make_demo [OUT]
//!
//! Thirty minutes of a synthetic Bluesky Jetstream firehose (see
//! `data/README.md`), deterministic for its seed, so the file can be
//! regenerated bit for bit and checked against the committed one.

use std::fs::File;
use std::io::{BufWriter, Write};

use outagewatch::synth::{DecoyBurst, Generator, Surge, SynthConfig};

fn demo() -> SynthConfig {
    SynthConfig {
        seed: 20_260_704,
        // 2026-07-04T14:00:00Z
        start_us: 1_783_173_600_000_000,
        duration_secs: 30 * 60,
        posts_per_sec: 3.0,
        others_per_post: 2.0,
        complaints_per_hour: 30.0,
        decoy_share: 0.04,
        surges: vec![Surge {
            names: vec!["discord".into(), "Discord".into(), "DISCORD".into()],
            start_secs: 17 * 60,
            duration_secs: 6 * 60,
            peak_per_min: 30.0,
            recovery_per_min: 4.0,
        }],
        decoy_bursts: vec![
            DecoyBurst {
                texts: vec![
                    "Netflix stock down 9% after earnings 📉".into(),
                    "netflix shares are down 9% premarket, subscriber miss".into(),
                    "$NFLX down 9% today, ouch".into(),
                    "the Dow is down 900 points and netflix is leading the drop".into(),
                ],
                start_secs: 6 * 60,
                duration_secs: 5 * 60,
                per_min: 25.0,
            },
            DecoyBurst {
                texts: vec![
                    "TOUCHDOWN!!!".into(),
                    "what a touchdown omg".into(),
                    "3rd down and they convert, unreal".into(),
                    "feeling down after that fumble".into(),
                ],
                start_secs: 25 * 60,
                duration_secs: 4 * 60,
                per_min: 30.0,
            },
        ],
    }
}

fn main() -> std::io::Result<()> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "data/demo.jsonl.gz".to_owned());
    let file = BufWriter::new(File::create(&out)?);
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::best());
    let mut result = Ok(());
    let mut frames = 0u64;
    Generator::new(demo()).run(|frame| {
        if result.is_ok() {
            frames += 1;
            result = writeln!(gz, "{frame}");
        }
    });
    result?;
    gz.finish()?.flush()?;
    eprintln!("wrote {frames} frames to {out}");
    Ok(())
}
