//! Writes the demo recording `data/demo.jsonl.gz`:
//!
//!     cargo run --release --example make_demo [OUT]
//!
//! Thirty minutes of a synthetic Bluesky Jetstream firehose (see
//! `data/README.md`), deterministic for its seed, so the file can be
//! regenerated bit for bit and checked against the committed one.

use std::fs::File;
use std::io::{BufWriter, Write};

use outagewatch_synth::{Generator, demo_config};

fn main() -> std::io::Result<()> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "data/demo.jsonl.gz".to_owned());
    let file = BufWriter::new(File::create(&out)?);
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::best());
    let mut result = Ok(());
    let mut frames = 0u64;
    Generator::new(demo_config()).run(|frame| {
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
