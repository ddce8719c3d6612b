//! `GET /api/channels/NAME/health`: the live stream as its owner's
//! dashboard shows it (what the encoder sends, and who watches).
//!
//! The counters are cumulative since the publish started; the dashboard
//! takes the difference between two polls for the current bitrate and frame
//! rate, and the averages here cover a first poll.

use super::auth::SignedIn;
use super::channels::{channel_or_404, is_owner};
use super::openapi::SignedInErrors;
use super::{ApiError, AppState};
use crate::hub::Source;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::time::SystemTime;
use utoipa::ToSchema;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/channels/{name}/health", get(health))
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(super) enum StreamHealth {
    Live(LiveHealth),
    Offline(OfflineHealth),
}

#[derive(Serialize, ToSchema)]
pub(super) struct OfflineHealth {
    /// Always `false` here.
    live: bool,
    viewers: Viewers,
}

/// Counters are cumulative since the publish started: the difference
/// between two polls gives the current bitrate and frame rate.
#[derive(Serialize, ToSchema)]
pub(super) struct LiveHealth {
    /// Always `true` here.
    live: bool,
    source: Source,
    uptime_secs: f64,
    video_codec: Option<String>,
    audio_codec: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    /// B-frames seen: WebRTC viewers may stutter.
    bframes: bool,
    bytes: u64,
    video_frames: u64,
    audio_frames: u64,
    keyframes: u64,
    /// None in the first tenth of a second.
    avg_bitrate_bps: Option<f64>,
    avg_fps: Option<f64>,
    /// None before the second keyframe.
    avg_keyframe_interval_secs: Option<f64>,
    /// Why some egress is off for this stream, if it is.
    warnings: Vec<String>,
    viewers: Viewers,
}

/// Viewers by how they watch.
#[derive(Serialize, ToSchema)]
pub(super) struct Viewers {
    webrtc: usize,
    hls: usize,
    icecast: usize,
    flv: usize,
}

/// The live stream's health, for its dashboard (owner or admins)
///
/// What the encoder sends (codecs, size, B-frames, counters and averages)
/// and who watches.
#[utoipa::path(get, path = "/api/channels/{name}/health", operation_id = "stream_health", tag = "channels",
    params(("name" = String, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, body = StreamHealth),
        SignedInErrors,
    ))]
pub(super) async fn health(
    State(s): State<AppState>,
    me: SignedIn,
    Path(name): Path<String>,
) -> Result<Json<StreamHealth>, ApiError> {
    let info = channel_or_404(&s, &name).await?;
    if !is_owner(&me.user, &info, true) {
        return Err(ApiError::Forbidden(
            "only the owner can see the stream's health".into(),
        ));
    }
    let viewers = Viewers {
        webrtc: s.sfu.viewers(&name),
        hls: s.hls.viewers.count(&name),
        icecast: s.icecast.listeners(&name),
        flv: s.flv.viewers(&name),
    };
    let Some(stream) = s.hub.stream(&name) else {
        return Ok(Json(StreamHealth::Offline(OfflineHealth {
            live: false,
            viewers,
        })));
    };
    let h = stream.health();
    let uptime = SystemTime::now()
        .duration_since(stream.started_at())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    // Averages need some time to mean anything; below a tenth of a second
    // they would be noise (or a division by zero).
    let per_sec = |n: u64| (uptime > 0.1).then(|| n as f64 / uptime);
    Ok(Json(StreamHealth::Live(LiveHealth {
        live: true,
        source: stream.source(),
        uptime_secs: uptime,
        video_codec: h.video_codec,
        audio_codec: h.audio_codec,
        width: h.width,
        height: h.height,
        bframes: h.bframes,
        bytes: h.bytes,
        video_frames: h.video_units,
        audio_frames: h.audio_units,
        keyframes: h.keyframes,
        avg_bitrate_bps: per_sec(h.bytes * 8),
        avg_fps: per_sec(h.video_units),
        avg_keyframe_interval_secs: (h.keyframes > 1).then(|| uptime / h.keyframes as f64),
        warnings: h.warnings,
        viewers,
    })))
}
