//! One relay's connection: the stored phase and the control messages.

use super::*;
use crate::source::nostr::tests::{NOW, frame, note};

/// Notes are stored from the `REQ` until the `EOSE` of this
/// subscription, on every connection, and at most
/// [`MAX_STORED_PHASE_US`] after the `REQ`: a relay that never sends
/// `EOSE` cannot have its live notes placed at their authors' claims.
#[test]
fn stored_until_this_subscriptions_eose() {
    const S: Micros = MICROS_PER_SEC;
    let mut p = NostrProtocol::default();
    let soon = crate::wall::now_us() + S;
    assert_eq!(p.stored_since(soon), None);
    p.hello(Some(1_000 * MICROS_PER_SEC));
    assert_eq!(p.stored_since(soon), Some(995 * MICROS_PER_SEC));
    p.control(r#"["EOSE","another"]"#);
    assert_eq!(p.stored_since(soon), Some(995 * MICROS_PER_SEC));
    p.control(r#"["EOSE","outagewatch"]"#);
    assert_eq!(p.stored_since(soon), None);
    p.hello(Some(2_000 * MICROS_PER_SEC));
    assert_eq!(p.stored_since(soon), Some(1_995 * MICROS_PER_SEC));

    // No `EOSE`: ten thousand notes keep it stored only until the
    // limit, and it stays live after.
    let mut p = NostrProtocol::default();
    p.hello(Some(NOW - 60 * S));
    let start = crate::wall::now_us();
    let stored = frame(&note(1, 1_783_175_000));
    for _ in 0..10_000 {
        p.control(&stored);
    }
    assert_eq!(p.stored_since(start + S), Some(NOW - 65 * S));
    let late = start + MAX_STORED_PHASE_US + 2 * S;
    assert_eq!(p.stored_since(late), None);
    assert_eq!(p.stored_since(start + S), None, "over for this connection");
}

#[test]
fn subscription_and_control() {
    let mut p = NostrProtocol::default();
    assert_eq!(
        p.hello(Some(1_000 * MICROS_PER_SEC)),
        vec![r#"["REQ","outagewatch",{"kinds":[1],"since":995}]"#.to_owned()]
    );
    // (message, control)
    let cases = [
        (
            r#"["CLOSED","outagewatch","auth-required: x"]"#,
            Control::Refused("auth-required: x".into()),
        ),
        (
            r#"["CLOSED","outagewatch","restricted: paid relay"]"#,
            Control::Refused("restricted: paid relay".into()),
        ),
        (
            r#"["CLOSED","outagewatch","blocked: you"]"#,
            Control::Refused("blocked: you".into()),
        ),
        (
            r#"["CLOSED","outagewatch","rate-limited: slow down"]"#,
            Control::Reconnect("rate-limited: slow down".into()),
        ),
        (
            r#"["CLOSED","outagewatch","error: auth-required: later"]"#,
            Control::Reconnect("error: auth-required: later".into()),
        ),
        (r#"["CLOSED","other","blocked: x"]"#, Control::Foreign),
        (r#"["CLOSED","other","rate-limited"]"#, Control::Foreign),
        (r#"["EOSE","other"]"#, Control::Foreign),
        (r#"["EVENT","other",{}]"#, Control::Foreign),
        (r#"["EVENT",7,{}]"#, Control::Foreign),
        (r#"["EVENT","outagewatch",{}]"#, Control::Data),
    ];
    for (message, control) in cases {
        assert_eq!(p.control(message), control, "{message}");
    }
    assert!(matches!(
        p.control(r#"["EOSE","outagewatch"]"#),
        Control::Info(_)
    ));
    assert_eq!(p.control(&frame(&note(1, 1))), Control::Data);
}
