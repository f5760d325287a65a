//! What every outgoing HTTP request shares (webhooks, Jetstream's
//! dictionary): its answer is written by a stranger, and is read only as
//! far as a bound.

/// Reads at most `limit` bytes of a body, chunk by chunk, and stops: the
/// rest is never read (the connection is dropped with the response).
pub async fn read_bounded(response: &mut reqwest::Response, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - out.len();
                out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            _ => break,
        }
    }
    out
}
