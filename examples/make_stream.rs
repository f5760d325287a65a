//! Writes a larger synthetic stream for profiling and throughput checks:
//!
//!     cargo run --release --example make_stream -- OUT [MINUTES] [POSTS_PER_SEC]
//!
//! Same generator as the demo and the benchmark (two non-post events per
//! post, chatter, decoys, complaints, one surge), plain JSON Lines.

use std::fs::File;
use std::io::{BufWriter, Write};

use outagewatch::synth::{Generator, Surge, SynthConfig};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = args.next().unwrap_or_else(|| "stream.jsonl".to_owned());
    let minutes: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(60);
    let posts_per_sec: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(50.0);
    let config = SynthConfig {
        seed: 7,
        duration_secs: minutes * 60,
        posts_per_sec,
        complaints_per_hour: 120.0,
        decoy_share: 0.05,
        surges: vec![Surge {
            names: vec!["discord".into(), "Discord".into()],
            start_secs: minutes * 30,
            duration_secs: 300,
            peak_per_min: 60.0,
            recovery_per_min: 5.0,
            ramp: 0.2,
        }],
        ..SynthConfig::default()
    };
    let mut file = BufWriter::new(File::create(&out)?);
    let mut result = Ok(());
    let mut frames = 0u64;
    Generator::new(config).run(|frame| {
        if result.is_ok() {
            frames += 1;
            result = writeln!(file, "{frame}");
        }
    });
    result?;
    file.flush()?;
    eprintln!("wrote {frames} frames to {out}");
    Ok(())
}
