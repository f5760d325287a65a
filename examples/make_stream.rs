//! Writes a larger synthetic stream for profiling and throughput checks:
//!
//!     cargo run --release --example make_stream -- OUT [MINUTES] [POSTS_PER_SEC] [OTHERS_PER_POST] [SEED]
//!
//! Same generator as the demo and the benchmark (by default two non-post
//! events per post, chatter, decoys, complaints, one surge half-way), plain
//! JSON Lines. The output is a pure function of the arguments.
//!
//! A realistic bucket density, as measured on real Jetstream recordings
//! (about 225 events per 10 s bucket, 2.5 non-posts per post), is
//! `POSTS_PER_SEC=6.43 OTHERS_PER_POST=2.5`; `scripts/bench-replay.sh` uses
//! that.

use std::fs::File;
use std::io::{BufWriter, Write};

use outagewatch::synth::{Generator, Surge, SynthConfig};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = args.next().unwrap_or_else(|| "stream.jsonl".to_owned());
    let minutes: i64 = number(args.next(), "MINUTES", 60)?;
    let posts_per_sec: f64 = number(args.next(), "POSTS_PER_SEC", 50.0)?;
    let others_per_post: f64 = number(args.next(), "OTHERS_PER_POST", 2.0)?;
    let seed: u64 = number(args.next(), "SEED", 7)?;
    let config = SynthConfig {
        seed,
        duration_secs: minutes * 60,
        posts_per_sec,
        others_per_post,
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

/// An optional positional number: absent means `default`, unparsable is an
/// error naming the argument (never silently the default).
fn number<T: std::str::FromStr>(arg: Option<String>, name: &str, default: T) -> std::io::Result<T> {
    match arg {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{name}: not a number: {text:?}"),
            )
        }),
    }
}
