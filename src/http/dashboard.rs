//! The dashboard: one page, its script and its style sheet, embedded in the
//! binary (no CDN, no build step). The live page polls
//! `/api/v1/dashboard`; the replay report is the same page with the
//! snapshot written into it, so both show the same views.
//!
//! The script builds every element with DOM calls and puts text from posts
//! in with `textContent` only: nothing a post says is ever parsed as HTML.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use crate::telemetry::Telemetry;

const PAGE: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// The page and its assets: no data, so no token needed.
pub fn page_routes() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/assets/app.js", get(script))
        .route("/assets/style.css", get(style))
}

/// The data the page shows (behind the token, if any).
pub fn data_routes() -> Router<AppState> {
    Router::new().route("/api/v1/dashboard", get(data))
}

fn with_type(body: String, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

async fn page() -> Response {
    with_type(live_page(), "text/html; charset=utf-8")
}

async fn script() -> Response {
    with_type(SCRIPT.to_owned(), "text/javascript; charset=utf-8")
}

async fn style() -> Response {
    with_type(STYLE.to_owned(), "text/css; charset=utf-8")
}

async fn data(State(state): State<AppState>) -> Response {
    let telemetry = state.telemetry.clone();
    match tokio::task::spawn_blocking(move || super::snapshot::snapshot(&telemetry, false)).await {
        Ok(value) => axum::Json(value).into_response(),
        Err(_) => super::api::error(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "cannot build the dashboard",
        ),
    }
}

/// The served page: style and script by reference (the server's content
/// security policy allows no inline script).
pub fn live_page() -> String {
    PAGE.replace(
        "<!--STYLE-->",
        r#"<link rel="stylesheet" href="/assets/style.css">"#,
    )
    .replace("<!--SCRIPT-->", r#"<script src="/assets/app.js"></script>"#)
}

/// JSON made safe inside a `<script>` element: no `<`, `>` or `&` left
/// (they only occur inside JSON strings, where `\u003c` means the same).
fn script_safe_json(value: &serde_json::Value) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// The static report: the same page with its style, script and data inline.
pub fn report_page(telemetry: &Telemetry) -> String {
    let snapshot = super::snapshot::snapshot(telemetry, true);
    // `</` cannot occur in the script or style (checked by a test), so
    // they cannot end their elements early.
    PAGE.replace("<!--STYLE-->", &format!("<style>\n{STYLE}\n</style>"))
        .replace(
            "<!--SCRIPT-->",
            &format!(
                "<script type=\"application/json\" id=\"snapshot\">{}</script>\n<script>\n{SCRIPT}\n</script>",
                script_safe_json(&snapshot)
            ),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_assets_cannot_close_their_elements() {
        assert!(!SCRIPT.contains("</"), "app.js must not contain `</`");
        assert!(!STYLE.contains("</"), "style.css must not contain `</`");
        assert!(PAGE.contains("<!--STYLE-->") && PAGE.contains("<!--SCRIPT-->"));
    }

    #[test]
    fn the_script_never_parses_data_as_html() {
        for forbidden in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!SCRIPT.contains(forbidden), "app.js uses {forbidden}");
        }
    }

    #[test]
    fn hostile_text_stays_inside_the_json() {
        let value = serde_json::json!({ "text": "</script><script>alert(1)</script> & \u{2028}" });
        let safe = script_safe_json(&value);
        assert!(!safe.contains('<') && !safe.contains('>') && !safe.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&safe).expect("still JSON");
        assert_eq!(back, value);
    }
}
