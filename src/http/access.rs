//! The access log (`--access-log`): one line per request, at info level
//! with the target `onair::access`: method, path, status, bytes, time to
//! the response head, and the client (trusted proxies applied).
//!
//! Nothing that works as a credential is written: WHIP/WHEP session ids
//! (they allow PATCH and DELETE) become `…` in the path, and so does every
//! query value but the few known to be harmless (a chat socket's
//! `?token=` among the rest).

use super::{AppState, ClientAddr};
use axum::extract::{Request, State};
use axum::http::{header, Uri};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

/// Query parameters whose values are kept: LL-HLS delivery directives,
/// paging and filters.
const PLAIN_PARAMS: &[&str] = &[
    "_HLS_msn",
    "_HLS_part",
    "_HLS_skip",
    "section",
    "limit",
    "before",
    "category",
    "live",
    "q",
];

pub async fn log(
    State(s): State<AppState>,
    client: ClientAddr,
    req: Request,
    next: Next,
) -> Response {
    if !s.access_log {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let path = redact(req.uri());
    let start = Instant::now();
    let response = next.run(req).await;
    // Streamed bodies (HLS parts being written, FLV, downloads without a
    // length) have no size up front: -1.
    let bytes: i64 = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(-1);
    tracing::info!(
        target: "onair::access",
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        bytes,
        ms = start.elapsed().as_secs_f64() * 1000.0,
        client = %client.0,
    );
    response
}

fn redact(uri: &Uri) -> String {
    let segments: Vec<&str> = uri.path().split('/').collect();
    let mut path = match segments.as_slice() {
        ["", "whip", _] => "/whip/…".to_string(),
        ["", "whep", channel, _] => format!("/whep/{channel}/…"),
        _ => uri.path().to_string(),
    };
    if let Some(query) = uri.query() {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, v)) if PLAIN_PARAMS.contains(&k) => format!("{k}={v}"),
                Some((k, _)) => format!("{k}=…"),
                None => pair.to_string(),
            })
            .collect();
        path.push('?');
        path.push_str(&pairs.join("&"));
    }
    path
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn credentials_never_reach_the_log() {
        let r = |u: &str| redact(&u.parse().unwrap());
        assert_eq!(r("/whip/0123abcd"), "/whip/…");
        assert_eq!(r("/whep/demo/0123abcd"), "/whep/demo/…");
        assert_eq!(r("/whep/demo"), "/whep/demo");
        assert_eq!(r("/ws/demo?token=secret"), "/ws/demo?token=…");
        assert_eq!(
            r("/hls/demo/index.m3u8?_HLS_msn=12&_HLS_part=3"),
            "/hls/demo/index.m3u8?_HLS_msn=12&_HLS_part=3"
        );
        assert_eq!(r("/api/x?key=k&limit=5"), "/api/x?key=…&limit=5");
    }
}
