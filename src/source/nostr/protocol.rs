//! One relay's connection: the `REQ` of kind-1 notes since the last
//! processed one, the stored phase until `EOSE` (or a time limit), and the
//! relay's control messages. Apart from the decoding, which it hands each
//! note to on the relay's own task.

use serde_json::value::RawValue;

use crate::source::kind::{Checked, Origin, SourceKind};
use crate::source::url::SourceUrl;
use crate::source::ws::{Control, Protocol};
use crate::{MICROS_PER_SEC, Micros};

/// The subscription id this client uses.
pub const SUBSCRIPTION: &str = "outagewatch";
/// How far before the last processed note a resumed subscription starts.
pub const RESUME_OVERLAP_SECS: i64 = 5;

/// NIP-01's machine-readable prefixes of a `CLOSED` reason that no retry
/// changes: the relay wants authentication (NIP-42, which this client
/// does not speak), or refuses this client or its request.
const REFUSED_FOR_GOOD: [&str; 3] = ["auth-required:", "restricted:", "blocked:"];

fn refused_for_good(reason: &str) -> bool {
    REFUSED_FOR_GOOD
        .iter()
        .any(|prefix| reason.trim_start().starts_with(prefix))
}

/// How long after its `REQ` a relay's notes may still be stored ones. A
/// relay sends its stored notes at once (minutes of them in a second), then
/// `EOSE`; one that never sends `EOSE` (it was optional before NIP-01 took
/// in NIP-15, and a hostile relay may leave it out) would have every live
/// note placed at the time its author claims, so notes written over
/// minutes could be made to land in one bucket.
pub const MAX_STORED_PHASE_US: Micros = 30 * MICROS_PER_SEC;

/// One relay: a `REQ` for kind-1 notes since the last processed one.
#[derive(Debug, Default)]
pub struct NostrProtocol {
    /// The relay's URL, for the log (by its [`crate::source::url::relay_name`]).
    relay: Option<SourceUrl>,
    /// The `since` of this connection's `REQ` (µs) until its `EOSE`, or
    /// until [`MAX_STORED_PHASE_US`] after the `REQ`: the notes before it
    /// are stored ones.
    stored_since: Option<Micros>,
    /// When the stored phase ends at the latest (arrival time, µs).
    stored_until: Micros,
}

impl Protocol for NostrProtocol {
    fn connect_url(&mut self, host: &SourceUrl, _processed: Option<Micros>) -> SourceUrl {
        self.relay = Some(host.clone());
        host.clone()
    }

    fn hello(&mut self, processed: Option<Micros>) -> Vec<String> {
        let now = crate::wall::now_us();
        let since = processed
            .map(|t| t / MICROS_PER_SEC - RESUME_OVERLAP_SECS)
            .unwrap_or(now / MICROS_PER_SEC);
        self.stored_since = Some(since.saturating_mul(MICROS_PER_SEC));
        self.stored_until = now.saturating_add(MAX_STORED_PHASE_US);
        vec![serde_json::json!(["REQ", SUBSCRIPTION, {"kinds": [1], "since": since}]).to_string()]
    }

    fn quiet(&self) -> bool {
        true
    }

    fn stored_since(&mut self, arrival_us: Micros) -> Option<Micros> {
        if self.stored_since.is_some() && arrival_us > self.stored_until {
            self.stored_since = None;
            tracing::warn!(
                relay = %self.relay.as_ref().map(|r| crate::source::url::relay_name(r.secret())).unwrap_or_default(),
                "the relay sent no EOSE within {} s of the subscription: its notes count as live from here (at their arrival)",
                MAX_STORED_PHASE_US / MICROS_PER_SEC
            );
        }
        self.stored_since
    }

    /// Every note is decoded here, on the relay's own task, its signature
    /// checked ([`verify`](super::verify)): the pipeline's thread, which counts every
    /// source, judges what this hands over and checks nothing.
    fn check(
        &self,
        frame: &str,
        arrival_us: Micros,
        stored_since: Option<Micros>,
    ) -> Option<Checked> {
        let origin = Origin {
            instance: "",
            arrival_us: Some(arrival_us),
            stored_since,
        };
        Some(SourceKind::Nostr.check(frame.as_bytes(), &origin))
    }

    fn control(&mut self, frame: &str) -> Control {
        // Only the first parts are read: a note is parsed by the decoder,
        // not here as well.
        let Ok(message) = serde_json::from_str::<Vec<&RawValue>>(frame) else {
            return Control::Data;
        };
        let text = |i: usize| {
            message
                .get(i)
                .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
                .unwrap_or_default()
        };
        let ours = text(1) == SUBSCRIPTION;
        match text(0).as_str() {
            "EVENT" | "EOSE" | "CLOSED" if !ours => Control::Foreign,
            "EVENT" => Control::Data,
            "EOSE" => {
                self.stored_since = None;
                Control::Info("end of stored events; live notes follow".into())
            }
            "NOTICE" => Control::Info(format!("notice: {}", text(1))),
            "CLOSED" if refused_for_good(&text(2)) => Control::Refused(text(2)),
            "CLOSED" => Control::Reconnect(text(2)),
            "OK" | "AUTH" | "COUNT" => Control::Info(frame.to_owned()),
            // Not a relay message: the pipeline counts it as malformed
            // (see [`RELAY_MESSAGES`]), which is no data for the watchdog.
            _ => Control::Data,
        }
    }
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
