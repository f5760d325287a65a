//! What every outgoing HTTP request shares (webhooks, Jetstream's
//! dictionary, a source's handshake): its answer is written by a
//! stranger, and is read only as far as a bound, a wait it asks for
//! (`Retry-After`) included.

use std::time::Duration;

/// Reads at most `limit` bytes of a body, chunk by chunk, and stops: the
/// rest is never read (the connection is dropped with the response).
pub async fn read_bounded(response: &mut reqwest::Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    read_into(response, limit, &mut out).await;
    out
}

/// [`read_bounded`] for at most `wait`: what arrived by then, and whether
/// the body ended (or reached `limit`) in time. A receiver that sends its
/// status and then drips its body no longer holds the caller for the
/// whole request timeout.
pub async fn read_bounded_for(
    response: &mut reqwest::Response,
    limit: usize,
    wait: std::time::Duration,
) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let done = tokio::time::timeout(wait, read_into(response, limit, &mut out))
        .await
        .is_ok();
    (out, done)
}

/// Appends chunks to `out` until the body ends, fails, or `out` holds
/// `limit` bytes; cancelled, it keeps what it read.
async fn read_into(response: &mut reqwest::Response, limit: usize, out: &mut Vec<u8>) {
    while out.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - out.len();
                out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            _ => break,
        }
    }
}

/// The longest wait a server can ask for (a sink's receiver, a source's
/// host): asked for a day, a sink or a source still tries again within
/// the hour.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// A number of seconds, capped at [`MAX_WAIT`]: one too large for a float
/// (`1e400`, read as infinity) is a long wait, not none at all.
pub fn seconds(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    capped(secs)
}

/// Seconds as a wait of at most [`MAX_WAIT`]; `None` if negative or NaN.
pub fn capped(secs: f64) -> Option<Duration> {
    (secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(MAX_WAIT.as_secs_f64())))
}

/// `Retry-After`: seconds, or an HTTP date (relative to `now`) in any of
/// the three forms RFC 9110 says a recipient must accept (IMF-fixdate,
/// RFC 850 and asctime, read by `httpdate`), or RFC 2822 with a zone.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Some(wait) = seconds(value) {
        return Some(wait);
    }
    let wait = match httpdate::parse_http_date(value) {
        Ok(when) => when
            .duration_since(std::time::SystemTime::from(now))
            .unwrap_or(Duration::ZERO),
        Err(_) => {
            let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            Duration::from_secs((when.timestamp() - now.timestamp()).max(0) as u64)
        }
    };
    Some(wait.min(MAX_WAIT))
}
