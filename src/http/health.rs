//! `GET /api/channels/NAME/health`: the live stream as its owner's
//! dashboard shows it (what the encoder sends, and who watches).
//!
//! The counters are cumulative since the publish started; the dashboard
//! takes the difference between two polls for the current bitrate and frame
//! rate, and the averages here cover a first poll.

use super::auth::SignedIn;
use super::channels::{channel_or_404, is_owner};
use super::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::time::SystemTime;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/channels/{name}/health", get(health))
}

async fn health(
    State(s): State<AppState>,
    me: SignedIn,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let info = channel_or_404(&s, &name).await?;
    if !is_owner(&me.user, &info, true) {
        return Err(ApiError::Forbidden(
            "only the owner can see the stream's health".into(),
        ));
    }
    let viewers = json!({
        "webrtc": s.sfu.viewers(&name),
        "hls": s.hls.viewers.count(&name),
        "icecast": s.icecast.listeners(&name),
        "flv": s.flv.viewers(&name),
    });
    let Some(stream) = s.hub.stream(&name) else {
        return Ok(Json(json!({ "live": false, "viewers": viewers })));
    };
    let h = stream.health();
    let uptime = SystemTime::now()
        .duration_since(stream.started_at())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    // Averages need some time to mean anything; below a tenth of a second
    // they would be noise (or a division by zero).
    let per_sec = |n: u64| (uptime > 0.1).then(|| n as f64 / uptime);
    Ok(Json(json!({
        "live": true,
        "source": stream.source(),
        "uptime_secs": uptime,
        "video_codec": h.video_codec,
        "audio_codec": h.audio_codec,
        "width": h.width,
        "height": h.height,
        "bframes": h.bframes,
        "bytes": h.bytes,
        "video_frames": h.video_units,
        "audio_frames": h.audio_units,
        "keyframes": h.keyframes,
        "avg_bitrate_bps": per_sec(h.bytes * 8),
        "avg_fps": per_sec(h.video_units),
        "avg_keyframe_interval_secs": (h.keyframes > 1).then(|| uptime / h.keyframes as f64),
        "warnings": h.warnings,
        "viewers": viewers,
    })))
}
