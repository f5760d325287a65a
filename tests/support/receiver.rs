//! A loopback webhook receiver: records every request and answers with the
//! statuses it is told to, in order, then 200.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
    /// The status this request was answered with.
    pub status: u16,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

#[derive(Default)]
struct Shared {
    /// (status, Retry-After) to answer with, in order; then 200.
    script: VecDeque<(u16, Option<u64>)>,
    /// Answer this to everything while set.
    always: Option<u16>,
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    _runtime: Arc<tokio::runtime::Runtime>,
}

async fn hook(
    State(shared): State<Arc<Mutex<Shared>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = shared.lock().expect("lock");
    let (status, retry_after) = match s.always {
        Some(status) => (status, None),
        None => s.script.pop_front().unwrap_or((200, None)),
    };
    s.received.push(Received {
        headers,
        body,
        at: Instant::now(),
        status,
    });
    let code = StatusCode::from_u16(status).expect("status");
    match retry_after {
        Some(secs) => (code, [("retry-after", secs.to_string())], "busy").into_response(),
        None => (code, "ok").into_response(),
    }
}

impl Receiver {
    /// Listens on `addr` (port 0: any free port).
    pub fn start_on(addr: SocketAddr) -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(Arc::clone(&shared));
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            shared,
            _runtime: Arc::new(runtime),
        }
    }

    pub fn start() -> Receiver {
        Receiver::start_on("127.0.0.1:0".parse().expect("addr"))
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers these statuses (with an optional `Retry-After`) first.
    pub fn script(&self, answers: &[(u16, Option<u64>)]) {
        self.shared.lock().expect("lock").script = answers.iter().copied().collect();
    }

    pub fn always(&self, status: Option<u16>) {
        self.shared.lock().expect("lock").always = status;
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().expect("lock").received.clone()
    }

    /// The requests answered with 2xx.
    pub fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }
}

/// A loopback port nothing listens on (yet).
pub fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}
