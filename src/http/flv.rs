//! `GET /flv/CHANNEL.flv`: HTTP-FLV playback (see [`crate::flv`]). A
//! chunked `video/x-flv` response that lasts as long as the broadcast.
//! CORS comes from the router's layer, as for HLS.

use super::openapi::Binary;
use super::{ApiError, AppState, ClientAddr, ErrorBody};
use crate::db::valid_channel_name;
use crate::flv::PlayError;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::convert::Infallible;

/// A player is asked to come back after this many seconds when the caps
/// are full: long enough for another player to have left.
const BUSY_RETRY_AFTER_SECS: u64 = 5;

pub fn routes() -> Router<AppState> {
    Router::new().route("/flv/{file}", get(play))
}

/// HTTP-FLV playback (`/flv/CHANNEL.flv`)
///
/// A chunked `video/x-flv` stream that lasts as long as the broadcast, for
/// players such as mpegts.js and VLC.
#[utoipa::path(get, path = "/flv/{file}", operation_id = "flv_play", tag = "playback",
    params(("file" = String, Path, example = "demo.flv")),
    responses(
        (status = 200, content_type = "video/x-flv", body = inline(Binary)),
        (status = 404, description = "Offline, or no such channel", body = ErrorBody),
        (status = 429, description = "Too many players from this address or on this server", body = ErrorBody),
    ))]
pub(super) async fn play(
    State(s): State<AppState>,
    Path(file): Path<String>,
    client: ClientAddr,
) -> Result<Response, ApiError> {
    let channel = file
        .strip_suffix(".flv")
        .filter(|c| valid_channel_name(c))
        .ok_or_else(|| ApiError::NotFound("no such stream; try /flv/CHANNEL.flv".into()))?;
    // A trusted proxy that named no client stands for many of them.
    let cap_host = !s.proxies.trusts(client.0);
    let play = match s.flv.play(&s.hub, channel, client.0, cap_host) {
        Ok(p) => p,
        Err(PlayError::Offline) => {
            return Err(ApiError::NotFound(format!("channel {channel} is not live")))
        }
        Err(PlayError::Busy(_)) => {
            return Err(ApiError::TooManyRequests(
                "too many FLV players from this address or on this server; retry later".into(),
                BUSY_RETRY_AFTER_SECS,
            ))
        }
    };
    let body = futures_util::stream::unfold(play, |mut p| async move {
        let chunk = p.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), p))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "video/x-flv"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(body),
    )
        .into_response())
}
