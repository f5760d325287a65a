//! What every outgoing HTTP request shares (webhooks, Jetstream's
//! dictionary): its answer is written by a stranger, and is read only as
//! far as a bound.

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
