//! The status server: one axum server on the command's tokio runtime, with
//! the JSON API ([`api`]), Prometheus metrics, health and readiness, and the
//! dashboard ([`dashboard`]).
//!
//! Security: it listens on loopback by default. Binding any other address
//! needs a bearer token, else the command refuses to start; with a token,
//! every route but `/healthz` and the static page (which holds no data)
//! answers 401 without `Authorization: Bearer TOKEN`. The page's script
//! sends the token it was given in the URL fragment (`/#token=…`, which
//! browsers never send to the server). Without a token, only loopback
//! `Host` names are served, and nothing changes on a cross-site request
//! (`guard`).

pub mod api;
pub mod dashboard;
mod guard;
#[cfg(test)]
mod method_tests;
mod serve;
#[cfg(test)]
mod server_tests;
pub mod snapshot;
mod traffic;

pub use serve::ServerLimits;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};

use crate::supervise::Supervisor;
use crate::telemetry::Telemetry;

/// Where the server listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// The file in the state directory that holds the bound address (useful
/// with `--http 127.0.0.1:0`).
pub const ADDRESS_FILE: &str = "http.addr";

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0:?} is not a listen address like 127.0.0.1:9464")]
    BadAddress(String),
    #[error(
        "refusing to serve the status API on {0}, which is not a loopback address, without a token: set `[http] token`, --http-token or OUTAGEWATCH_HTTP_TOKEN (or listen on 127.0.0.1)"
    )]
    TokenRequired(SocketAddr),
    /// The token itself is never shown: it is a secret.
    #[error(
        "the status server's token {0}, so it could never match a request's `Authorization: Bearer` (use visible ASCII without spaces, e.g. `openssl rand -hex 32`)"
    )]
    BadToken(&'static str),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the bound address to {path}: {source}")]
    AddressFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What the server is told at start.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// Required for a non-loopback address; empty means none.
    pub token: Option<String>,
    /// Timeouts and the connection cap (the defaults but in tests).
    pub limits: ServerLimits,
}

/// The token to use: `--http-token` or `OUTAGEWATCH_HTTP_TOKEN` (`given`)
/// when set and not empty, else `[http] token`. An empty flag or variable
/// (systemd's `Environment=OUTAGEWATCH_HTTP_TOKEN=`) counts as unset:
/// taken as "no token", it hid the configured one and left the API open.
pub fn pick_token(given: Option<String>, configured: Option<String>) -> Option<String> {
    given.filter(|t| !t.is_empty()).or(configured)
}

/// Why a token could never match what `bearer` reads (the header's value
/// after `Bearer `, trimmed, and only if it is visible ASCII or spaces).
fn token_problem(token: &str) -> Option<&'static str> {
    if token.trim().is_empty() {
        Some("is only whitespace")
    } else if token.trim() != token {
        Some("has whitespace around it")
    } else if !token.bytes().all(|b| b.is_ascii_graphic()) {
        Some("has a space or a character that is not visible ASCII")
    } else {
        None
    }
}

impl HttpSettings {
    /// Checks an address and token: a non-loopback bind needs a token, and
    /// a token must be one a request can carry.
    pub fn new(listen: &str, token: Option<String>) -> Result<HttpSettings, HttpError> {
        let listen: SocketAddr = listen
            .parse()
            .map_err(|_| HttpError::BadAddress(listen.to_owned()))?;
        let token = token.filter(|t| !t.is_empty());
        if let Some(problem) = token.as_deref().and_then(token_problem) {
            return Err(HttpError::BadToken(problem));
        }
        if !listen.ip().is_loopback() && token.is_none() {
            return Err(HttpError::TokenRequired(listen));
        }
        Ok(HttpSettings {
            listen,
            token,
            limits: ServerLimits::default(),
        })
    }
}

/// Shared by the handlers.
#[derive(Clone)]
pub struct AppState {
    pub telemetry: Arc<Telemetry>,
    /// SHA-256 of the token: compared digest to digest, so the time taken
    /// says nothing about the token.
    token_digest: Option<[u8; 32]>,
    /// Wakes the sinks after dead letters are re-queued.
    pub wake: Option<Arc<Notify>>,
    limits: ServerLimits,
    /// The configured address, a `Host` served without a token.
    listen: SocketAddr,
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
    /// `state_dir/http.addr`, removed at stop so that `alerts dead|retry`
    /// do not try a server that is gone.
    address_file: Option<PathBuf>,
}

impl Server {
    /// Binds, writes the bound address to `state_dir/http.addr` (when
    /// given) and serves until [`Server::stop`].
    pub async fn start(
        settings: &HttpSettings,
        telemetry: Arc<Telemetry>,
        wake: Option<Arc<Notify>>,
        state_dir: Option<&Path>,
        supervisor: &Supervisor,
    ) -> Result<Server, HttpError> {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|source| HttpError::Bind {
                addr: settings.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| HttpError::Bind {
            addr: settings.listen,
            source,
        })?;
        let address_file = match state_dir {
            Some(dir) => {
                let path = dir.join(ADDRESS_FILE);
                std::fs::write(&path, format!("{addr}\n")).map_err(|source| {
                    HttpError::AddressFile {
                        path: path.clone(),
                        source,
                    }
                })?;
                Some(path)
            }
            None => None,
        };
        let state = AppState {
            telemetry: telemetry.clone(),
            token_digest: settings.token.as_deref().map(|t| digest(t.as_bytes())),
            wake,
            limits: settings.limits,
            listen: settings.listen,
        };
        let app = router(state);
        let (stop, stopped) = watch::channel(false);
        let task = supervisor.spawn(
            "status server",
            serve::serve(listener, app, settings.limits, telemetry, stopped),
        );
        tracing::info!(
            addr = %addr,
            url = %format!("http://{addr}/"),
            auth = settings.token.is_some(),
            "status server listening"
        );
        Ok(Server {
            addr,
            task,
            stop,
            address_file,
        })
    }

    /// Stops accepting, lets requests in flight finish (at most 2 s).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Some(path) = &self.address_file {
            // Only our own address: another process may have written since.
            if std::fs::read_to_string(path).is_ok_and(|a| a.trim() == self.addr.to_string()) {
                let _ = std::fs::remove_file(path);
            }
        }
        let mut task = self.task;
        if tokio::time::timeout(std::time::Duration::from_secs(2), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

fn router(state: AppState) -> Router {
    let guarded =
        api::routes()
            .merge(dashboard::data_routes())
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                require_token,
            ));
    Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .merge(dashboard::page_routes())
        .merge(guarded)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            serve::request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::local_host_only,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

async fn not_found() -> Response {
    api::error(
        StatusCode::NOT_FOUND,
        "no such route; see the README's \"Watching it\"",
    )
}

/// A known route asked with the wrong method: JSON like every other error
/// (axum's own 405 had an empty body).
async fn method_not_allowed(request: Request) -> Response {
    api::error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!(
            "{} is not allowed on {}; see the README's \"Endpoints\"",
            request.method(),
            request.uri().path().chars().take(200).collect::<String>()
        ),
    )
}

/// 401 unless the request carries the bearer token (when one is set).
async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(want) = state.token_digest else {
        return next.run(request).await;
    };
    let given = bearer(request.headers()).map(|t| digest(t.as_bytes()));
    if given == Some(want) {
        return next.run(request).await;
    }
    let mut response = api::error(
        StatusCode::UNAUTHORIZED,
        "missing or wrong bearer token (Authorization: Bearer TOKEN)",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"outagewatch\""),
    );
    response
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Every answer: no sniffing, no framing, scripts only from here.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_address_needs_a_token() {
        assert!(HttpSettings::new("127.0.0.1:0", None).is_ok());
        assert!(HttpSettings::new("[::1]:9464", None).is_ok());
        let err = HttpSettings::new("0.0.0.0:9464", None).expect_err("no token");
        assert!(err.to_string().contains("OUTAGEWATCH_HTTP_TOKEN"), "{err}");
        assert!(HttpSettings::new("0.0.0.0:9464", Some(String::new())).is_err());
        assert!(HttpSettings::new("0.0.0.0:9464", Some("s3cret".into())).is_ok());
        assert!(
            HttpSettings::new("localhost:80", None).is_err(),
            "not an address"
        );
    }

    #[test]
    fn a_token_no_request_could_carry_is_refused_without_showing_it() {
        for token in [
            " ", "\t", " s3cret", "s3cret\n", "s3c ret", "s3crét", "s3\u{7f}",
        ] {
            let err = HttpSettings::new("127.0.0.1:0", Some(token.into()))
                .expect_err(&format!("{token:?} refused"));
            let text = err.to_string();
            assert!(matches!(err, HttpError::BadToken(_)), "{token:?}: {text}");
            assert!(
                !text.contains(token.trim()) || token.trim().is_empty(),
                "{text}"
            );
        }
        assert!(HttpSettings::new("127.0.0.1:0", Some("s3cr3t-~!".into())).is_ok());
    }

    #[test]
    fn an_empty_flag_or_variable_falls_back_to_the_configured_token() {
        let conf = Some("conf".to_owned());
        assert_eq!(pick_token(Some(String::new()), conf.clone()), conf);
        assert_eq!(pick_token(None, conf.clone()), conf);
        assert_eq!(
            pick_token(Some("flag".into()), conf).as_deref(),
            Some("flag")
        );
        assert_eq!(pick_token(Some(String::new()), None), None);
    }

    #[test]
    fn bearer_tokens_are_read_strictly() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
    }
}
