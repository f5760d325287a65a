//! A live source's timing and size limits, which the configuration's
//! `[sources.connection]` table is read straight into.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::numbers as num;
#[cfg(doc)]
use crate::source::health::SourceHealth;

/// Timing and size limits of a live source: the `[sources.connection]`
/// table of the configuration, read straight into this (every key
/// optional, bounded where it is declared; the README's "Limits").
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WsSettings {
    /// Reconnect when no frame that decodes arrives for this long: junk,
    /// control and undecodable binary frames keep bytes flowing but do not
    /// count (the pipeline marks data in [`SourceHealth::count_data`]).
    /// `watchdog_secs`, 1 s to 1 h.
    #[serde(
        rename = "watchdog_secs",
        deserialize_with = "num::secs::<_, 1_000, 3_600_000>",
        serialize_with = "num::as_secs"
    )]
    pub watchdog: Duration,
    /// How often to ping the server: `ping_secs`, 1 s to 1 h.
    #[serde(
        rename = "ping_secs",
        deserialize_with = "num::secs::<_, 1_000, 3_600_000>",
        serialize_with = "num::as_secs"
    )]
    pub ping_every: Duration,
    /// Larger text frames (after decompression) are dropped and counted
    /// (1 KiB to 16 MiB).
    #[serde(deserialize_with = "num::int::<_, usize, 1024, 16_777_216>")]
    pub max_frame_bytes: usize,
    /// Larger compressed (binary) frames are dropped and counted before
    /// being decompressed (1 KiB to 16 MiB).
    #[serde(deserialize_with = "num::int::<_, usize, 1024, 16_777_216>")]
    pub max_compressed_frame_bytes: usize,
    /// Data frames beyond this many in one second of one connection are
    /// counted and dropped, not processed; 0 = no limit (at most 10
    /// million).
    #[serde(deserialize_with = "num::int::<_, u32, 0, 10_000_000>")]
    pub max_frames_per_sec: u32,
    /// First wait before reconnecting; doubles up to `backoff_max`.
    /// `backoff_min_ms`, 50 ms to 10 min: a dead host is never hammered.
    #[serde(
        rename = "backoff_min_ms",
        deserialize_with = "num::millis::<_, 50, 600_000>",
        serialize_with = "num::as_millis"
    )]
    pub backoff_min: Duration,
    /// `backoff_max_ms`, 50 ms to 1 h (and never below `backoff_min`:
    /// see [`crate::source::backoff::Backoff`]).
    #[serde(
        rename = "backoff_max_ms",
        deserialize_with = "num::millis::<_, 50, 3_600_000>",
        serialize_with = "num::as_millis"
    )]
    pub backoff_max: Duration,
    /// A session that lasted this long resets the backoff:
    /// `healthy_after_secs`, 1 s to 1 day.
    #[serde(
        rename = "healthy_after_secs",
        deserialize_with = "num::secs::<_, 1_000, 86_400_000>",
        serialize_with = "num::as_secs"
    )]
    pub healthy_after: Duration,
    /// `connect_timeout_secs`, 1 s to 5 min.
    #[serde(
        rename = "connect_timeout_secs",
        deserialize_with = "num::secs::<_, 1_000, 300_000>",
        serialize_with = "num::as_secs"
    )]
    pub connect_timeout: Duration,
}

impl Default for WsSettings {
    fn default() -> Self {
        WsSettings {
            watchdog: Duration::from_secs(30),
            ping_every: Duration::from_secs(20),
            max_frame_bytes: 1 << 20,
            max_compressed_frame_bytes: 512 << 10,
            max_frames_per_sec: 20_000,
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            healthy_after: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(15),
        }
    }
}
