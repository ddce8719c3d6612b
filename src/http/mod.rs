//! axum only, no media logic: routes, errors, and the glue to the core.

mod access;
mod admin;
mod admission;
pub mod auth;
mod avatar;
mod categories;
mod channels;
mod chat_ws;
pub mod client;
mod community;
mod download;
mod email;
mod error;
mod flv;
mod health;
mod hls;
pub mod ice;
mod invites;
mod limits;
pub mod listen;
mod me;
mod oembed;
pub mod oidc;
mod openapi;
pub mod redirect;
mod schedule;
mod sessions;
mod web;
mod whep;
mod whip;

pub use auth::{authenticate, Limits, MaybeSignedIn, SignedIn};
pub use channels::{DESCRIPTION_MAX, NOT_YET_STREAMING, TITLE_MAX};
pub use chat_ws::HubLive;
pub use client::ClientAddr;
pub use download::Downloads;
pub use error::{ApiError, ErrorBody};
pub use openapi::document as openapi_document;

use crate::db::Db;
use crate::hub::Hub;
use crate::sfu::Sfu;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use tower_http::cors::{AllowHeaders, Any, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub hub: Arc<Hub>,
    pub sfu: Sfu,
    pub rooms: crate::chat::Rooms,
    pub limits: Arc<Limits>,
    /// `None` without `--smtp-url`: email flows are off.
    pub mailer: Option<Arc<crate::auth::Mailer>>,
    pub hls: Arc<crate::hls::Hls>,
    pub ice: std::sync::Arc<ice::IceConfig>,
    /// The port RTMP ingest listens on, for the dashboard's OBS settings.
    pub rtmp_port: u16,
    /// The port RTMPS ingest listens on, with `--rtmps`.
    pub rtmps_port: Option<u16>,
    /// Reverse proxies whose forwarding headers name the client.
    pub proxies: Arc<crate::net::TrustedProxies>,
    /// The long-lived tasks: `/healthz` is 503 while one is down.
    pub engines: Arc<crate::isolate::Engines>,
    /// Icecast sources and plain listeners (counted as viewers).
    pub icecast: Arc<crate::icecast::Icecast>,
    /// HTTP-FLV readers (counted as viewers).
    pub flv: Arc<crate::flv::Flv>,
    /// Limits on recording downloads.
    pub downloads: Arc<download::Downloads>,
    /// Webhooks: the `publish` admission question for WHIP.
    pub hooks: Arc<crate::hooks::Hooks>,
    /// The session cookie is `Secure`: TLS is on, or the public URL is
    /// https (a TLS-terminating proxy in front).
    pub secure_cookies: bool,
    /// One log line per request (`--access-log`).
    pub access_log: bool,
    /// `/metrics` on the public listeners too (off with `--metrics-listen`).
    pub metrics_public: bool,
    /// The bearer token `/metrics` asks for (`--metrics-token`).
    pub metrics_token: Option<Arc<str>>,
    /// `--public-url`, without a trailing `/`: absolute links in pages.
    pub public_url: Option<Arc<str>>,
    /// `--node-url`: WHEP sessions are named absolutely under it.
    pub node_url: Option<Arc<str>>,
    /// Live state and viewers, the site's where there are several servers.
    pub live: Arc<dyn crate::chat::LiveState>,
    /// See `--role`.
    pub role: crate::config::Role,
    /// The site's servers and their room, as last read (`--redis-url`).
    pub census: Arc<crate::hub::census::Census>,
    /// An edge's pulls (`--role edge`).
    pub edge: Option<Arc<crate::edge::Edge>>,
    /// Who may register, and whether new accounts stream.
    pub signup: Signup,
    /// "Sign in with ..." providers and the sign-ins in flight.
    pub oidc: Arc<oidc::Oidc>,
    /// Profile pictures: uploads, and the store they are kept in.
    pub avatars: Arc<crate::avatar::Avatars>,
}

/// `--registration` and `--open-streaming`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Signup {
    pub registration: crate::auth::Registration,
    pub open_streaming: bool,
}

pub fn router(state: AppState) -> Router {
    // Players and publishers on other origins must work (contract: CORS).
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(AllowHeaders::mirror_request())
        // The allowed origin is `*` whatever the request's Origin, so no
        // answer varies by it; naming it in Vary would make a CDN keep one
        // copy of every playlist and part per page (same-origin player,
        // each embedding site) and ask the origin again for each.
        .vary([
            header::ACCESS_CONTROL_REQUEST_METHOD,
            header::ACCESS_CONTROL_REQUEST_HEADERS,
        ])
        // ETag: a WHIP/WHEP client sends it back in If-Match.
        .expose_headers([
            header::LOCATION,
            header::ETAG,
            HeaderName::from_static("link"),
            HeaderName::from_static("accept-post"),
            HeaderName::from_static("accept-patch"),
        ]);
    Router::new()
        .route("/healthz", get(healthz))
        .merge(public_metrics(&state))
        .merge(whep::routes())
        .merge(whip::routes())
        .merge(ice::routes())
        .merge(community::routes())
        .merge(hls::routes())
        .merge(flv::routes())
        .merge(download::routes())
        .merge(health::routes())
        .merge(web::routes())
        .fallback(|| async { ApiError::NotFound("no such resource".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this resource does not take that method".into())
        })
        .layer(axum::middleware::from_fn(contain_panics))
        .layer(listen::body_timeout())
        // No page of ours may be framed by another site (clickjacking):
        // the old header for old browsers, the CSP one for the rest.
        // Routes meant for iframes (the embed, web.rs) set their own CSP;
        // X-Frame-Options has no value that allows every site, so a
        // response that chose its framing policy gets none (this layer
        // runs before the CSP one below adds its default).
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            |r: &axum::response::Response| {
                (!r.headers().contains_key(header::CONTENT_SECURITY_POLICY))
                    .then_some(HeaderValue::from_static("DENY"))
            },
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        ))
        .layer(cors)
        .layer(axum::middleware::from_fn(whep::accept_headers))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::log,
        ))
        .with_state(state)
}

/// A panic in one request's handler answers that request 500 and touches
/// nothing else. Logged with the route's pattern, never the path itself:
/// paths can carry session ids.
async fn contain_panics(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "(unmatched)".to_string(), |m| m.as_str().to_string());
    let who = format!("{} {route}", req.method());
    match crate::isolate::task("http", who, next.run(req)).await {
        Some(r) => r,
        None => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            ErrorBody::json("internal error"),
        )
            .into_response(),
    }
}

/// Liveness for supervisors and balancers
///
/// `ok` while every engine runs; 503 naming the ones that are down.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses(
        (status = 200, content_type = "text/plain", body = String),
        (status = 503, content_type = "text/plain", body = String),
    ))]
async fn healthz(
    axum::extract::State(s): axum::extract::State<AppState>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let down = s.engines.down();
    if down.is_empty() {
        "ok\n".into_response()
    } else {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("down: {}\n", down.join(", ")),
        )
            .into_response()
    }
}

/// `/metrics` on a public listener, unless `--metrics-listen` moved it.
fn public_metrics(state: &AppState) -> Router<AppState> {
    if state.metrics_public {
        Router::new().route("/metrics", get(metrics))
    } else {
        Router::new()
    }
}

/// Only `/metrics`, for `--metrics-listen`: a port that stays inside the
/// operator's network.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::NotFound("only /metrics here".into()) })
        .layer(listen::body_timeout())
        .with_state(state)
}

/// Prometheus metrics
///
/// On its own listener with `--metrics-listen`; behind a Bearer token with
/// `--metrics-token`.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    security((), ("metrics_token" = [])),
    responses(
        (status = 200, content_type = "text/plain; version=0.0.4", body = String),
        (status = 401, body = ErrorBody),
    ))]
async fn metrics(
    axum::extract::State(s): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Some(want) = &s.metrics_token {
        let given = auth::bearer(&headers).unwrap_or("");
        let ok: bool = subtle::ConstantTimeEq::ct_eq(given.as_bytes(), want.as_bytes()).into();
        if !ok {
            return (
                axum::http::StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                ErrorBody::json("/metrics needs its bearer token"),
            )
                .into_response();
        }
    }
    let mut gauges = Vec::new();
    for (channel, n) in s.sfu.all_viewers() {
        gauges.push((
            "onair_viewers".to_string(),
            format!("channel=\"{channel}\",protocol=\"webrtc\""),
            n as f64,
        ));
    }
    for (channel, n) in s.icecast.mounts.all_listeners() {
        gauges.push((
            "onair_viewers".to_string(),
            format!("channel=\"{channel}\",protocol=\"icecast\""),
            n as f64,
        ));
    }
    if let Some(edge) = &s.edge {
        gauges.push((
            "onair_edge_pulls".into(),
            String::new(),
            edge.pulling() as f64,
        ));
    }
    for (shard, n) in s.sfu.shard_sessions().into_iter().enumerate() {
        gauges.push((
            "onair_webrtc_shard_sessions".to_string(),
            format!("shard=\"{shard}\""),
            n as f64,
        ));
    }
    for (channel, n) in s.sfu.all_relays() {
        gauges.push((
            "onair_webrtc_relay_sessions".to_string(),
            format!("channel=\"{channel}\""),
            n as f64,
        ));
    }
    for (channel, n) in s.flv.all_viewers() {
        gauges.push((
            "onair_viewers".to_string(),
            format!("channel=\"{channel}\",protocol=\"flv\""),
            n as f64,
        ));
    }
    for stream in s.hub.live() {
        gauges.push((
            "onair_viewers".to_string(),
            format!("channel=\"{}\",protocol=\"hls\"", stream.channel()),
            s.hls.viewers.count(stream.channel()) as f64,
        ));
        let h = stream.health();
        let labels = format!("channel=\"{}\"", stream.channel());
        gauges.push((
            "onair_ingest_bytes_total".to_string(),
            labels.clone(),
            h.bytes as f64,
        ));
        gauges.push((
            "onair_ingest_video_frames_total".to_string(),
            labels.clone(),
            h.video_units as f64,
        ));
        gauges.push((
            "onair_stream_readers".to_string(),
            labels,
            stream.reader_count() as f64,
        ));
    }
    gauges.sort_by(|a, b| a.0.cmp(&b.0));
    gauges.push((
        "onair_live_streams".to_string(),
        String::new(),
        s.hub.live().len() as f64,
    ));
    gauges.extend(limits::gauges(&s));
    let pool = s.db.pool();
    gauges.push((
        "onair_db_pool_connections".into(),
        String::new(),
        pool.size() as f64,
    ));
    gauges.push((
        "onair_db_pool_idle".into(),
        String::new(),
        pool.num_idle() as f64,
    ));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&gauges),
    )
        .into_response()
}
