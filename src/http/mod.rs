//! axum only, no media logic: routes, errors, and the glue to the core.

pub mod auth;
mod channels;
mod chat_ws;
mod community;
mod email;
mod error;
mod health;
mod hls;
pub mod ice;
mod me;
mod openapi;
mod web;
mod whep;
mod whip;

pub use auth::{authenticate, Limits, MaybeSignedIn, SignedIn};
pub use chat_ws::HubLive;
pub use error::ApiError;
pub use openapi::document as openapi_document;

use crate::db::Db;
use crate::hub::Hub;
use crate::sfu::Sfu;
use axum::http::{header, HeaderName, Method};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use tower_http::cors::{AllowHeaders, Any, CorsLayer};

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
        .expose_headers([header::LOCATION, HeaderName::from_static("link")]);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(whep::routes())
        .merge(whip::routes())
        .merge(ice::routes())
        .merge(community::routes())
        .merge(hls::routes())
        .merge(health::routes())
        .merge(web::routes())
        .fallback(|| async { ApiError::NotFound("no such resource".into()) })
        .layer(cors)
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(
    axum::extract::State(s): axum::extract::State<AppState>,
) -> impl axum::response::IntoResponse {
    let mut gauges = Vec::new();
    for (channel, n) in s.sfu.all_viewers() {
        gauges.push((
            "onair_viewers".to_string(),
            format!("channel=\"{channel}\",protocol=\"webrtc\""),
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
}
