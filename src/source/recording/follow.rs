//! What `record` keeps per connection besides the file: the clock line its
//! frames go after, and its source's clock, which its reconnects resume
//! from as the daemon's do.

use std::sync::Arc;

use super::ClockLine;
use crate::Micros;
use crate::source::clock::{Arrival, ClockRule, SourceClock};
use crate::source::health::SourceHealth;
use crate::source::ws::Inbound;
use crate::source::{Checked, Connection, Origin, SourceKind};

/// One connection as `record` follows it: what its clock lines name, and
/// its source's clock.
pub struct Followed {
    /// The connection's name (a Nostr relay's is `SOURCE:RELAY`): replay
    /// keys cursors and counts by it, as the daemon does.
    pub name: String,
    pub kind: SourceKind,
    /// What the daemon gives the decoder as [`Origin::instance`].
    instance: String,
    /// `None` until an event of it is judged, as the pipeline makes a
    /// source's clock only then: time passing starts the watermark of a
    /// clock that exists ([`SourceClock::time_passed`]), and frames that
    /// never decode must not start it here while the daemon's has none.
    clock: Option<SourceClock>,
    /// Shared with the connection's task: the watermark set here is where
    /// a reconnect resumes (Jetstream v1's cursor, Nostr's `since`).
    pub health: Arc<SourceHealth>,
}

impl Followed {
    pub fn new(connection: &Connection) -> Self {
        Followed {
            name: connection.name.clone(),
            kind: connection.kind,
            instance: connection.instance(),
            clock: None,
            health: Arc::new(SourceHealth::new(&connection.name, None)),
        }
    }

    /// The instance a clock line carries: only for the kinds whose
    /// decoder reads it, so a Jetstream clock line stays as it was.
    fn clock_instance(&self) -> &str {
        if self.kind.source().reads_instance() {
            &self.instance
        } else {
            ""
        }
    }

    /// Whether every clock line of this connection reads back as one.
    pub fn fits(&self) -> bool {
        ClockLine::fits(&self.name, self.kind, self.clock_instance())
    }

    /// Moves the connection's watermark with a frame that decodes, judged
    /// as the pipeline judges it (its kind's decoder, the same tick, the
    /// configured rule), so a reconnect resumes from it as the daemon's
    /// does: one frame dated in 2100 never becomes the reconnect's cursor,
    /// and for Mastodon and Nostr the watermark is the newest arrival.
    pub fn follow(&mut self, frame: &[u8], sender: Sender, rule: &ClockRule) {
        if self.clock_frame(frame, sender, rule) {
            self.health.count_data();
        }
    }

    /// [`Followed::follow`] for a frame its connection decoded already
    /// ([`Inbound::checked`]: a Nostr note, its signature checked on the
    /// relay's task), which is not decoded or checked again.
    pub fn follow_checked(&mut self, checked: &Checked, sender: Sender, rule: &ClockRule) {
        if self.clock_checked(checked, sender, rule) {
            self.health.count_data();
        }
    }

    /// [`Followed::follow`] for a frame of an earlier run, read back from
    /// the recording this run appends to ([`super::resume`]): the clock
    /// moves exactly as it did live, but the frame is not counted as data
    /// received now (which keeps the watchdog quiet).
    pub fn follow_recorded(&mut self, frame: &[u8], sender: Sender, rule: &ClockRule) {
        self.clock_frame(frame, sender, rule);
    }

    /// Time passed at the connection as `sender` says (a tick, a frame's
    /// arrival, a clock line read back): the clock moves as the
    /// pipeline's does ([`Pipeline::time_passed`](crate::pipeline::Pipeline::time_passed)).
    pub fn time_passed(&mut self, sender: Sender) {
        if !self.kind.arrival_passes_time(sender.stored_since) {
            return;
        }
        let Some(clock) = self.clock.as_mut() else {
            return;
        };
        clock.time_passed(sender.arrival_us);
        if let Some(watermark) = clock.watermark() {
            self.health.set_processed(watermark);
        }
    }

    /// Puts a frame to the clock; whether it decoded.
    fn clock_frame(&mut self, frame: &[u8], sender: Sender, rule: &ClockRule) -> bool {
        let origin = Origin {
            instance: &self.instance,
            arrival_us: Some(sender.arrival_us),
            stored_since: sender.stored_since,
        };
        let checked = self.kind.check(frame, &origin);
        self.clock_checked(&checked, sender, rule)
    }

    /// Puts a decoded frame to the clock; whether it decoded.
    fn clock_checked(&mut self, checked: &Checked, sender: Sender, rule: &ClockRule) -> bool {
        self.time_passed(sender);
        let (Some(Ok(frame)), own_clock) = checked.parts() else {
            return false;
        };
        let Some(time_us) = frame.time_us else {
            return true;
        };
        let arrival = Arrival {
            at_us: Some(sender.arrival_us),
            own_clock,
            stored: sender.stored_since.is_some(),
        };
        let tick = arrival.tick(time_us, frame.decoded.author_key());
        let clock = self.clock.get_or_insert_with(SourceClock::default);
        clock.judge(tick, None, rule);
        if let Some(watermark) = clock.watermark() {
            self.health.set_processed(watermark);
        }
        true
    }
}

/// Where a run of frames came from: a clock line says it once for all of
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sender {
    pub arrival_us: Micros,
    /// The connection's number ([`Inbound::source`]).
    pub connection: usize,
    pub stored_since: Option<Micros>,
}

impl Sender {
    /// The sender a recording's clock line names, if it is one of
    /// `connections` (the same source name and kind).
    pub fn named_by(clock: &ClockLine, connections: &[Followed]) -> Option<Self> {
        let connection = connections
            .iter()
            .position(|f| f.name == clock.source && f.kind == clock.protocol)?;
        Some(Sender {
            arrival_us: clock.time_us,
            connection,
            stored_since: clock.stored_since,
        })
    }

    pub fn of(inbound: &Inbound) -> Self {
        Sender {
            arrival_us: inbound.arrival_us,
            connection: inbound.source,
            stored_since: inbound.stored_since,
        }
    }
}

/// The clock lines of a recording of several connections: one before
/// every frame whose sender differs from the previous frame's. Frames of
/// two connections arriving in the same millisecond are not one run: each
/// is decoded as its own source's, and a relay's stored notes (before
/// `EOSE`) are placed apart from its live ones.
#[derive(Debug, Default)]
pub struct ClockLines {
    last: Option<Sender>,
}

impl ClockLines {
    /// The clock line to write before a frame from `sender` (of
    /// `connections[sender.connection]`), if one is due.
    pub fn before(&mut self, sender: Sender, connections: &[Followed]) -> Option<ClockLine> {
        if self.last == Some(sender) {
            return None;
        }
        let followed = connections.get(sender.connection)?;
        self.last = Some(sender);
        Some(ClockLine {
            stored_since: sender.stored_since,
            ..ClockLine::new(
                sender.arrival_us,
                &followed.name,
                followed.kind,
                followed.clock_instance(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ws::WsSettings;

    fn connection(name: &str, kind: SourceKind, url: &str) -> Followed {
        Followed::new(&Connection {
            name: name.to_owned(),
            kind,
            urls: vec![url.into()],
            settings: WsSettings::default(),
            stream: "public".to_owned(),
            token: None,
            jetstream: Default::default(),
        })
    }

    fn connections() -> Vec<Followed> {
        vec![
            connection(
                "bluesky",
                SourceKind::Jetstream,
                "wss://js.example/subscribe",
            ),
            connection("social", SourceKind::Mastodon, "wss://m.example:8443/api"),
            connection("nostr:r1", SourceKind::Nostr, "wss://r1.example"),
        ]
    }

    /// A new clock line when the arrival, the connection or the stored
    /// range changes, even within one millisecond; none within a run.
    #[test]
    fn a_clock_line_before_every_change_of_sender() {
        let followed = connections();
        let mut lines = ClockLines::default();
        let at = |arrival_us, connection, stored_since| Sender {
            arrival_us,
            connection,
            stored_since,
        };
        // (sender, the clock line written before its frame)
        let cases: [(Sender, Option<&str>); 9] = [
            (
                at(1_000, 0, None),
                Some(
                    r##"{"kind":"#clock","time_us":1000,"source":"bluesky","protocol":"jetstream"}"##,
                ),
            ),
            (at(1_000, 0, None), None),
            (
                at(1_000, 1, None),
                Some(
                    r##"{"kind":"#clock","time_us":1000,"source":"social","protocol":"mastodon","instance":"m.example:8443"}"##,
                ),
            ),
            (
                at(1_000, 2, Some(7)),
                Some(
                    r##"{"kind":"#clock","time_us":1000,"source":"nostr:r1","protocol":"nostr","stored_since":7}"##,
                ),
            ),
            (at(1_000, 2, Some(7)), None),
            (
                at(1_000, 2, None),
                Some(
                    r##"{"kind":"#clock","time_us":1000,"source":"nostr:r1","protocol":"nostr"}"##,
                ),
            ),
            (
                at(1_000, 0, None),
                Some(
                    r##"{"kind":"#clock","time_us":1000,"source":"bluesky","protocol":"jetstream"}"##,
                ),
            ),
            (
                at(2_000, 0, None),
                Some(
                    r##"{"kind":"#clock","time_us":2000,"source":"bluesky","protocol":"jetstream"}"##,
                ),
            ),
            (at(2_000, 0, None), None),
        ];
        for (i, (sender, want)) in cases.into_iter().enumerate() {
            let got = lines.before(sender, &followed).map(|c| c.to_line());
            assert_eq!(got.as_deref(), want, "case {i}: {sender:?}");
        }
        // A frame of a connection not followed gets no clock line.
        assert_eq!(lines.before(at(3_000, 9, None), &followed), None);
    }

    /// The watermark a reconnect resumes from: for Mastodon the newest
    /// arrival (a status dated 2100 does not move it there); nothing from
    /// a frame that does not decode before the first that does, and after
    /// it any frame's arrival (time passed there, as in the pipeline).
    #[test]
    fn the_watermark_follows_the_arrivals_of_an_own_clock_source() {
        let mut followed = connections().swap_remove(1);
        let rule = ClockRule::default();
        let status = |secs: i64| {
            let status = serde_json::json!({
                "id": "1", "created_at": chrono::DateTime::from_timestamp(secs, 0)
                    .map(|t| t.to_rfc3339()),
                "content": "<p>hi</p>", "account": {"id": "1", "acct": "ann", "username": "ann"},
                "uri": "https://m.example/users/ann/statuses/1", "visibility": "public",
            });
            serde_json::json!({"event": "update", "payload": status.to_string()}).to_string()
        };
        let now = 1_780_000_000_000_000;
        for (frame, arrival_us, want) in [
            ("{not json".to_owned(), now, None),
            (status(4_102_444_800), now + 1_000, Some(now + 1_000)),
            (status(1_780_000_000), now + 2_000, Some(now + 2_000)),
            ("{not json".to_owned(), now + 3_000, Some(now + 3_000)),
        ] {
            let sender = Sender {
                arrival_us,
                connection: 1,
                stored_since: None,
            };
            followed.follow(frame.as_bytes(), sender, &rule);
            assert_eq!(followed.health.processed(), want, "at {arrival_us}");
        }
        assert_eq!(followed.health.snapshot().data, 2);
    }

    /// `record` follows a relay heard only in its catch-up as the daemon
    /// does: its stored notes move no watermark, and time passing once it
    /// is live starts one at the arrival (a reconnect then asks from
    /// there). Time passing before any note of it was judged starts none,
    /// as the daemon has no clock for it then.
    #[test]
    fn a_relay_heard_only_in_its_catch_up_starts_its_watermark_once_live() {
        use crate::source::nostr::tests::{key, signed};
        let mut followed = connections().swap_remove(2);
        let rule = ClockRule::default();
        let now = 1_780_000_000_000_000;
        let sender = |arrival_us, stored_since| Sender {
            arrival_us,
            connection: 2,
            stored_since,
        };
        followed.time_passed(sender(now, None));
        assert_eq!(followed.health.processed(), None, "nothing heard yet");
        let note = signed(&key("ann"), now / 1_000_000 - 10, 1, Vec::new(), "hi");
        let frame =
            serde_json::json!(["EVENT", crate::source::nostr::protocol::SUBSCRIPTION, note]);
        let stored = sender(now + 1_000, Some(now - 60_000_000));
        followed.follow(frame.to_string().as_bytes(), stored, &rule);
        assert_eq!(followed.health.snapshot().data, 1, "the note decoded");
        assert_eq!(followed.health.processed(), None, "a stored note");
        followed.time_passed(sender(now + 2_000, None));
        assert_eq!(followed.health.processed(), Some(now + 2_000), "live");
    }
}
