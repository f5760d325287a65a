//! Writes a patterns folder with N times the services of `patterns/`, for
//! measuring start-up and memory as the catalogue grows:
//!
//!     cargo run --release --example make_catalogue -- OUT_DIR FACTOR
//!     outagewatch replay --patterns OUT_DIR FILE
//!
//! See `benches/support/scaled_catalogue.rs` for how copies are named.

#[path = "../benches/support/scaled_catalogue.rs"]
mod scaled_catalogue;

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, factor] = args.as_slice() else {
        eprintln!("usage: make_catalogue OUT_DIR FACTOR");
        return ExitCode::from(2);
    };
    let Ok(factor) = factor.parse::<usize>() else {
        eprintln!("FACTOR: not a positive number: {factor:?}");
        return ExitCode::from(2);
    };
    if factor == 0 {
        eprintln!("FACTOR must be at least 1");
        return ExitCode::from(2);
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("patterns");
    match scaled_catalogue::write_scaled_patterns(&src, Path::new(out), factor) {
        Ok(()) => {
            eprintln!("wrote a {factor}x catalogue to {out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("make_catalogue: {e}");
            ExitCode::FAILURE
        }
    }
}
