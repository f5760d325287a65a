//! outagewatch: tells people, within a minute, that a service is going down,
//! by watching public social-post firehoses for outage chatter.
//!
//! The modules follow the pipeline a post travels through:
//!
//! | stage | module | what it owns |
//! |---|---|---|
//! | source | [`source`] | one module per source kind behind [`source::Source`] (decode, connections, how one runs; registered in [`source::SourceKind::source`]), the websocket session, backoff and URL rules they share, recordings; frames become [`source::RawPost`]s |
//! | normalize | [`normalize`] | NFKC, case folding, whitespace, hashtags: the [`normalize::Post`] every later stage sees |
//! | match | [`matcher`] | deciding whether a post is an outage report, for which service, with reasons |
//! | window | [`window`] | per-service counts in fixed event-time buckets |
//! | detect | [`detect`] | baselines and the rule that opens and resolves incidents |
//! | state | [`state`] | everything in sled: the keyspace table, the one encoding, typed records, the outbox |
//! | alert | [`alert`] | the public alert schema and the sinks that deliver it from the outbox |
//!
//! Dependencies point one way. The layers, top to bottom: a module may
//! use the modules on the lines below its own, never one on its own line
//! or above (`tests/layers.rs` checks every `crate::` path of the library
//! code against this list, and that every module is in it; test modules
//! inside `src/` may reach up, as a detector test saving through the
//! store):
//!
//! ```text
//! cli
//! daemon
//! config
//! pipeline, http
//! telemetry
//! alert
//! state
//! detect
//! window
//! matcher
//! normalize
//! source
//! events
//! supervise
//! numbers, text, tls, http_client, wall, file_identity, masked_url, store_format
//! ```
//!
//! So `window` knows nothing of the store or of alerts; `detect` reads
//! `window`'s buckets; `state` stores the records of `window`, `detect`
//! and `source` and is generic over the alert type, so it imports none of
//! `alert`: the outbox is `state::outbox::Outbox<A>`, which `alert` names
//! `alert::outbox::Outbox`. Nothing below `state` touches sled. Counters
//! that several layers share live near the bottom, in [`events`] (the
//! pipeline's [`events::pipeline::Stats`], the connections' and sinks'
//! counters), so `telemetry` reads them without importing `pipeline`,
//! which feeds it.
//!
//! [`pipeline`] wires the stages together so a recording and a live stream go
//! through exactly the same code ([`pipeline::Pipeline::process_frame`], for
//! every source kind: the pure part in `pipeline::prepare`, a frame's way
//! in in `pipeline::intake`, closing and saving buckets in
//! `pipeline::close`); [`daemon`] runs them live (its health monitor in
//! `daemon::monitor`), reading the wall clock from [`wall`] so its tests run
//! on paused tokio time; [`events`] names the faults of the sources, the
//! sinks and the pipeline (malformed frame, quarantined event, stale
//! post), each logging and counting itself; [`telemetry`] gathers what the
//! program knows about itself and [`http`] serves it; [`cli`] is the
//! command line on top. The synthetic
//! stream generator of the tests and the demo is the dev-only crate
//! `synth/`, not part of this library.
//! `normalize`, `matcher` and `detect` are pure: no I/O, no clock, event time
//! is passed in. I/O lives at the edges: sources, the store ([`state`]), the
//! sinks.

pub mod alert;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod events;
pub mod file_identity;
pub mod http;
pub mod http_client;
pub mod masked_url;
pub mod matcher;
pub mod normalize;
pub mod numbers;
pub mod pipeline;
pub mod source;
pub mod state;
pub mod store_format;
pub mod supervise;
pub mod telemetry;
pub mod text;
pub mod tls;
pub mod wall;
pub mod window;

/// Event time in microseconds since the Unix epoch, as Jetstream's `time_us`.
pub type Micros = i64;

/// Microseconds in one second, for the conversions that keep recurring.
pub const MICROS_PER_SEC: Micros = 1_000_000;
