//! The data the tests read: the shared reference folder (skipped with a
//! note when absent, a failure under CI) and the demo recording.

use std::path::{Path, PathBuf};

/// The shared reference folder: `$OUTAGEWATCH_SHARED`, else
/// `<manifest>/../shared`, else `/work/shared`. `None` (with a note) when
/// absent; a failure when `CI=true`.
pub fn shared_dir() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = std::env::var_os("OUTAGEWATCH_SHARED")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
            PathBuf::from("/work/shared"),
        ])
        .collect();
    let ci = std::env::var("CI").as_deref() == Ok("true");
    match locate_shared(&candidates, ci) {
        Ok(found) => found,
        Err(message) => panic!("{message}"),
    }
}

/// The first of `candidates` holding `fixtures/jetstream`. None found:
/// `Ok(None)` after a SKIPPED note, or an error under CI (`ci`), where a
/// test that checks nothing must not pass.
pub fn locate_shared(candidates: &[PathBuf], ci: bool) -> Result<Option<PathBuf>, String> {
    if let Some(dir) = candidates
        .iter()
        .find(|dir| dir.join("fixtures/jetstream").is_dir())
    {
        return Ok(Some(dir.clone()));
    }
    let tried: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
    let message = format!(
        "the shared reference folder is absent (tried {}; set OUTAGEWATCH_SHARED)",
        tried.join(", ")
    );
    if ci {
        return Err(format!("CI=true: {message}"));
    }
    eprintln!("SKIPPED: {message}");
    Ok(None)
}

/// The demo recording, decompressed, one frame per line.
pub fn demo_frames() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo.jsonl.gz");
    let file = std::fs::File::open(path).expect("demo");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::MultiGzDecoder::new(file), &mut text)
        .expect("gunzip");
    text.lines().map(str::to_owned).collect()
}

pub fn newest_time(frames: &[String]) -> i64 {
    frames
        .iter()
        .filter_map(|f| serde_json::from_str::<serde_json::Value>(f).ok()?["time_us"].as_i64())
        .max()
        .expect("frames have times")
}
