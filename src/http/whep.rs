//! WHEP (draft-ietf-wish-whep): `POST /whep/CHANNEL` with an offer, then
//! `PATCH` and `DELETE` on the session it creates.

use super::{ApiError, AppState};
use crate::hub::Channels;
use crate::sfu::sdp::{self, MAX_OFFER_BYTES};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/whep/{channel}", post(offer))
        .route("/whep/{channel}/{session}", patch(trickle).delete(end))
        .layer(DefaultBodyLimit::max(MAX_OFFER_BYTES))
}

pub(super) fn body_text(body: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!("body is larger than {MAX_OFFER_BYTES} bytes"))
        } else {
            ApiError::BadRequest(format!("cannot read body: {r}"))
        }
    })?;
    String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::BadRequest("body is not UTF-8 text".into()))
}

pub(super) fn require_type(headers: &HeaderMap, want: &str) -> Result<(), ApiError> {
    let got = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let base = got.split(';').next().unwrap_or("").trim();
    if base.eq_ignore_ascii_case(want) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type must be {want}, not {got:?}"
        )))
    }
}

async fn offer(
    State(s): State<AppState>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let text = body_text(body)?;
    if !s.db.exists(&channel).await? {
        return Err(ApiError::NotFound(format!("no channel named {channel:?}")));
    }
    require_type(&headers, "application/sdp")?;
    let answer = s.sfu.whep(&channel, text).await?;
    let location = format!("/whep/{channel}/{}", answer.session);
    Ok((
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_string()),
            (header::LOCATION, location),
            (header::ETAG, format!("\"{}\"", answer.session)),
        ],
        answer.sdp,
    )
        .into_response())
}

async fn trickle(
    State(s): State<AppState>,
    Path((_channel, session)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let text = body_text(body)?;
    require_type(&headers, "application/trickle-ice-sdpfrag")?;
    s.sfu.patch(&session, sdp::frag_candidates(&text)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn end(
    State(s): State<AppState>,
    Path((_channel, session)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.sfu.delete(&session).await?;
    Ok(StatusCode::OK)
}
