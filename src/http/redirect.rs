//! The plain HTTP listener while TLS is on: it answers the ACME CA's
//! HTTP-01 challenges, keeps `/healthz` and `/metrics` for probes and
//! scrapers that stay on the host, and sends everything else to HTTPS.

use super::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

/// Where redirects point.
#[derive(Clone)]
pub struct Redirect {
    pub challenges: Arc<crate::tls::acme::Challenges>,
    /// `--public-url` when it is https: the one origin to send clients to.
    pub public_origin: Option<String>,
    /// Otherwise the request's host on this HTTPS port.
    pub https_port: u16,
}

pub fn router(state: AppState, redirect: Redirect) -> Router {
    let plain = Router::new()
        .route("/.well-known/acme-challenge/{token}", get(challenge))
        .fallback(to_https)
        .with_state(Arc::new(redirect));
    Router::new()
        .route("/healthz", get(super::healthz))
        .merge(super::public_metrics(&state))
        .with_state(state)
        .merge(plain)
        .layer(super::listen::body_timeout())
}

async fn challenge(State(r): State<Arc<Redirect>>, Path(token): Path<String>) -> Response {
    match r.challenges.answer(&token) {
        Some(key_authorization) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            key_authorization,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn to_https(State(r): State<Arc<Redirect>>, headers: HeaderMap, uri: Uri) -> Response {
    let origin = match &r.public_origin {
        Some(o) => o.clone(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .and_then(host_name);
            let Some(host) = host else {
                return (StatusCode::BAD_REQUEST, "a Host header is required\n").into_response();
            };
            match r.https_port {
                443 => format!("https://{host}"),
                port => format!("https://{host}:{port}"),
            }
        }
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    // 308 keeps the method and body: a WHIP POST sent to http:// reaches
    // the HTTPS endpoint instead of turning into a GET.
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, format!("{origin}{path}"))],
    )
        .into_response()
}

/// The host of a `Host` header without its port, if it is a DNS name or an
/// IP literal (anything else could smuggle a path or userinfo into the
/// redirect).
fn host_name(host: &str) -> Option<&str> {
    let name = if let Some(rest) = host.strip_prefix('[') {
        let end = rest.find(']')?;
        &host[..end + 2]
    } else {
        host.split(':').next()?
    };
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    ok.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::host_name;

    #[test]
    fn hosts_lose_their_port_and_nothing_else_gets_through() {
        assert_eq!(host_name("live.example.com:8080"), Some("live.example.com"));
        assert_eq!(host_name("live.example.com"), Some("live.example.com"));
        assert_eq!(host_name("[::1]:8080"), Some("[::1]"));
        assert_eq!(host_name("127.0.0.1:80"), Some("127.0.0.1"));
        for bad in ["", "evil.com/x", "a@b", "[::1", "a b", "x\\y"] {
            assert_eq!(host_name(bad), None, "{bad}");
        }
    }
}
