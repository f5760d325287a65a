//! A loopback webhook receiver: records every request (any path) and
//! answers with the statuses it is told to, in order, then 200. It can also
//! check each request against a receiver's required fields (answering 400
//! with the problem, as the real service would), redirect, answer with a
//! body of its choosing, or stream a huge body lazily (never allocated).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
    /// The status this request was answered with.
    pub status: u16,
    /// Path and query the request was sent to.
    pub path: String,
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

/// Checks a request as a receiver would: `Err` is answered with 400.
pub type Check = fn(&str, &HeaderMap, &serde_json::Value) -> Result<(), String>;

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: AnswerBody,
}

#[derive(Clone, Debug)]
pub enum AnswerBody {
    Text(String),
    /// This many bytes of `x`, produced lazily as the client reads.
    Huge(u64),
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: AnswerBody::Text("ok".into()),
        }
    }
    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn body(mut self, body: &str) -> Answer {
        self.body = AnswerBody::Text(body.into());
        self
    }
}

#[derive(Default)]
struct Shared {
    /// Answers, in order; then 200.
    script: VecDeque<Answer>,
    /// Answer this to everything while set.
    always: Option<Answer>,
    check: Option<Check>,
    received: Vec<Received>,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    /// Bytes of huge bodies produced so far.
    pub streamed: Arc<AtomicU64>,
    _runtime: Arc<tokio::runtime::Runtime>,
}

async fn hook(
    State((shared, streamed)): State<(Arc<Mutex<Shared>>, Arc<AtomicU64>)>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let mut s = shared.lock().expect("lock");
    let mut answer = match &s.always {
        Some(answer) => answer.clone(),
        None => s.script.pop_front().unwrap_or(Answer::status(200)),
    };
    if let Some(check) = s.check {
        let parsed = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        if let Err(problem) = check(&path, &headers, &parsed) {
            answer = Answer::status(400).body(&problem);
        }
    }
    s.received.push(Received {
        headers,
        body,
        at: Instant::now(),
        status: answer.status,
        path,
    });
    drop(s);
    let mut response = match answer.body {
        AnswerBody::Text(text) => text.into_response(),
        AnswerBody::Huge(total) => {
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let stream = futures_util::stream::unfold(0u64, move |sent| {
                let chunk = chunk.clone();
                let streamed = Arc::clone(&streamed);
                async move {
                    if sent >= total {
                        return None;
                    }
                    streamed.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    Some((
                        Ok::<_, std::io::Error>(chunk.clone()),
                        sent + chunk.len() as u64,
                    ))
                }
            });
            let mut r = Body::from_stream(stream).into_response();
            r.headers_mut()
                .insert("content-length", total.to_string().parse().expect("length"));
            r
        }
    };
    *response.status_mut() = StatusCode::from_u16(answer.status).expect("status");
    for (name, value) in answer.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            value.parse().expect("value"),
        );
    }
    response
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
        let streamed = Arc::new(AtomicU64::new(0));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new()
            .fallback(hook)
            .with_state((Arc::clone(&shared), Arc::clone(&streamed)));
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            shared,
            streamed,
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
        self.script_answers(
            answers
                .iter()
                .map(|(status, after)| match after {
                    Some(secs) => Answer::status(*status)
                        .header("retry-after", &secs.to_string())
                        .body("busy"),
                    None => Answer::status(*status),
                })
                .collect(),
        );
    }

    pub fn script_answers(&self, answers: Vec<Answer>) {
        self.shared.lock().expect("lock").script = answers.into();
    }

    pub fn always(&self, status: Option<u16>) {
        self.always_answer(status.map(Answer::status));
    }

    pub fn always_answer(&self, answer: Option<Answer>) {
        self.shared.lock().expect("lock").always = answer;
    }

    /// Checks every request's required fields from now on.
    pub fn check(&self, check: Check) {
        self.shared.lock().expect("lock").check = Some(check);
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
