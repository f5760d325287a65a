//! A websocket server that sends fixed frames per connection (Mastodon,
//! Nostr).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

use super::*;

/// What a scripted server saw of one connection.
#[derive(Debug, Default, Clone)]
pub struct ConnSeen {
    pub path_and_query: String,
    pub authorization: Option<String>,
    /// Text messages the client sent.
    pub received: Vec<String>,
}

/// A websocket server that sends fixed frames per connection: for Mastodon
/// (frames at once) and Nostr (frames after the client's first message, the
/// `REQ`). Connections past the script get no frames and are held open.
/// A frame `<binary>` is sent as a binary frame; `<sleep:MS>` pauses.
pub struct ScriptServer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<ConnSeen>>>,
    _runtime: tokio::runtime::Runtime,
}

impl ScriptServer {
    pub fn start(script: Vec<Vec<String>>, wait_for_hello: bool) -> ScriptServer {
        let (runtime, listener) = loopback("127.0.0.1:0".parse().expect("addr"));
        let addr = listener.local_addr().expect("addr");
        let seen: Arc<Mutex<Vec<ConnSeen>>> = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let seen_task = Arc::clone(&seen);
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (script, seen) = (Arc::clone(&script), Arc::clone(&seen_task));
                tokio::spawn(async move {
                    let info = Arc::new(Mutex::new(ConnSeen::default()));
                    let info_cb = Arc::clone(&info);
                    let callback = move |request: &Request,
                                         response: Response|
                          -> Result<Response, ErrorResponse> {
                        let mut i = info_cb.lock().expect("lock");
                        i.path_and_query = request.uri().to_string();
                        i.authorization = request
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        Ok(response)
                    };
                    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                        return;
                    };
                    let index = {
                        let mut s = seen.lock().expect("lock");
                        s.push(info.lock().expect("lock").clone());
                        s.len() - 1
                    };
                    let (mut write, mut read) = ws.split();
                    if wait_for_hello {
                        while let Some(Ok(message)) = read.next().await {
                            if let Message::Text(text) = message {
                                seen.lock().expect("lock")[index]
                                    .received
                                    .push(text.as_str().to_owned());
                                break;
                            }
                        }
                    }
                    for frame in script.get(index).cloned().unwrap_or_default() {
                        if let Some(ms) = frame
                            .strip_prefix("<sleep:")
                            .and_then(|r| r.strip_suffix('>'))
                        {
                            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0)))
                                .await;
                            continue;
                        }
                        if frame == "<deaf>" {
                            // Open, but neither sending nor reading: no
                            // pong ever goes back.
                            std::future::pending::<()>().await;
                        }
                        let message = if frame == "<binary>" {
                            Message::binary(vec![1, 2, 3])
                        } else {
                            Message::text(frame)
                        };
                        if write.send(message).await.is_err() {
                            return;
                        }
                    }
                    while let Some(Ok(message)) = read.next().await {
                        if let Message::Text(text) = message {
                            seen.lock().expect("lock")[index]
                                .received
                                .push(text.as_str().to_owned());
                        }
                    }
                });
            }
        });
        ScriptServer {
            addr,
            seen,
            _runtime: runtime,
        }
    }
}
