//! The web UI at `/`: the assets that `build.rs` embedded (see `web/`), or
//! a short page saying how to build them when this binary has none.

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>minutely</title>\
<body style=\"font-family:system-ui;max-width:40em;margin:10vh auto\">\
<h1>minutely</h1><p>The web UI is not built into this binary. Build it with \
<code>cargo build --release</code> (needs Node.js and npm), or run \
<code>npm ci &amp;&amp; npm run build</code> in <code>web/</code> and build again. \
The HTTP API works without it (see docs/api.md).</p>";

/// Keeps the UI to its own scripts and styles (uPlot sets inline styles).
const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; frame-ancestors 'none'";

/// Whether the web UI is embedded.
pub fn built() -> bool {
    ASSETS.iter().any(|(p, _, _)| *p == "/index.html")
}

pub async fn asset(uri: Uri) -> Response {
    let path = match uri.path() {
        "/" => "/index.html",
        p => p,
    };
    match ASSETS.iter().find(|(p, _, _)| *p == path) {
        Some((_, ctype, body)) => (
            [
                (header::CONTENT_TYPE, *ctype),
                (header::CACHE_CONTROL, "no-cache"),
                (header::CONTENT_SECURITY_POLICY, CSP),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            *body,
        )
            .into_response(),
        None if path == "/index.html" => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            NOT_BUILT,
        )
            .into_response(),
        None => crate::ApiError::new(StatusCode::NOT_FOUND, format!("no endpoint at {path}"))
            .into_response(),
    }
}
