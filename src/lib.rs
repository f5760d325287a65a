//! outagewatch: tells people, within a minute, that a service is going down,
//! by watching public social-post firehoses for outage chatter.
//!
//! The modules follow the pipeline a post travels through:
//!
//! | stage | module | what it owns |
//! |---|---|---|
//! | source | [`source`] | reading frames (recordings now, websockets later) and decoding the wire format into [`source::RawPost`]s |
//! | normalize | [`normalize`] | NFKC, case folding, whitespace, hashtags: the [`normalize::Post`] every later stage sees |
//! | match | [`matcher`] | deciding whether a post is an outage report, for which service, with reasons |
//! | window | [`window`] | per-service counts in fixed event-time buckets, persisted in sled |
//! | detect | [`detect`] | baselines and the rule that opens and resolves incidents |
//! | alert | [`alert`] | the public alert schema and the sinks that deliver it |
//!
//! [`pipeline`] wires the stages together so a recording and a live stream go
//! through exactly the same code; [`cli`] is the command line on top.
//! `normalize`, `matcher` and `detect` are pure: no I/O, no clock, event time
//! is passed in. I/O lives at the edges: sources, the store, the sinks.

pub mod alert;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod http;
pub mod matcher;
pub mod normalize;
pub mod numbers;
pub mod pipeline;
pub mod source;
pub mod synth;
pub mod telemetry;
pub mod tls;
pub mod window;

/// Event time in microseconds since the Unix epoch, as Jetstream's `time_us`.
pub type Micros = i64;

/// Microseconds in one second, for the conversions that keep recurring.
pub const MICROS_PER_SEC: Micros = 1_000_000;
