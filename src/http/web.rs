//! The browser app, built from `web/` by Vite and embedded in the binary
//! (see build.rs for the placeholder used when it was not built).
//!
//! Only the app's own paths answer here, so the app can never shadow the
//! API, WHIP/WHEP, HLS, VOD, WebSocket or metrics routes: its pages get
//! `index.html` (the app routes on the client), `/assets/*` get the hashed
//! build output.

use super::{ApiError, AppState};
use axum::extract::Path;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "$ONAIR_WEB_DIST"]
struct Dist;

/// Vite puts a content hash in every file name under `assets/`: a new build
/// gets new names, so browsers may keep these for a year without asking.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The page itself names the current assets: always revalidated.
const NO_CACHE: &str = "no-cache";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/c/{channel}", get(page))
        .route("/login", get(page))
        .route("/register", get(page))
        .route("/dashboard", get(page))
        .route("/assets/{*file}", get(asset))
        .route(
            "/favicon.svg",
            get(|| async { file("favicon.svg", NO_CACHE) }),
        )
}

async fn page() -> Response {
    file("index.html", NO_CACHE)
}

async fn asset(Path(name): Path<String>) -> Response {
    file(&format!("assets/{name}"), IMMUTABLE)
}

fn file(path: &str, cache: &'static str) -> Response {
    let Some(f) = Dist::get(path) else {
        return ApiError::NotFound("no such file".into()).into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(path)),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        f.data,
    )
        .into_response()
}

pub fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json" | "map") => "application/json",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("assets/app-1a2b.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("assets/x.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("noext"), "application/octet-stream");
    }

    #[test]
    fn index_is_always_embedded() {
        // The real build or the placeholder: the pages never 404.
        assert!(Dist::get("index.html").is_some());
    }
}
