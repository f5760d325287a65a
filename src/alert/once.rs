//! `outagewatch alerts test`: one alert sent to one sink directly, not
//! through the outbox, and the receiver's answer shown.

use super::Alert;
use super::http::{self, Failure};
use super::sink::{AlertSink, JsonLines};
use super::spec::{SinkSpec, Target};
use crate::wall::Clock;

/// Sends one alert to a sink directly (not through the outbox) and says
/// how it went, with the receiver's answer: `outagewatch alerts test`.
/// `clock` is the wall clock of the request's signature and rate limits.
pub async fn send_test(
    spec: &SinkSpec,
    alert: &Alert,
    clock: &dyn Clock,
) -> Result<String, String> {
    match &spec.target {
        Target::Lines(path) => {
            let mut lines = match path {
                Some(path) => JsonLines::file(path).map_err(|e| e.to_string())?,
                None => JsonLines::stdout(),
            };
            lines.send(alert).map_err(|e| e.to_string())?;
            Ok("written".into())
        }
        Target::Webhook(hook) => {
            let client = http::client(hook.connect_timeout).map_err(|e| e.to_string())?;
            let outgoing = super::webhook::request(hook, alert, None, clock)
                .map_err(|f| f.reason().to_owned())?;
            match http::send(&client, &outgoing, clock).await {
                Ok(answer) => Ok(format!(
                    "delivered (HTTP {}){}",
                    answer.status,
                    if answer.text.is_empty() {
                        String::new()
                    } else {
                        format!("; the receiver answered: {}", answer.text)
                    }
                )),
                Err(Failure::Retry { reason, .. }) => Err(format!("{reason} (would be retried)")),
                Err(Failure::Permanent { reason }) => {
                    Err(format!("{reason} (would be a dead letter)"))
                }
            }
        }
    }
}
