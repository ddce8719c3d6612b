//! WHIP (RFC 9725): `POST /whip` with `Authorization: Bearer STREAM_KEY` and
//! an offer; `PATCH` and `DELETE` on the session it creates.

use super::whep::{body_text, require_type, OfferAnswered, OfferRefused, TrickleAnswers};
use super::{ApiError, AppState, ErrorBody};
use crate::hub::Channels;
use crate::sfu::sdp::MAX_OFFER_BYTES;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{patch, post};
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/whip", post(offer))
        .route("/whip/{session}", patch(trickle).delete(end))
        .layer(DefaultBodyLimit::max(MAX_OFFER_BYTES))
}

/// WHIP: publish to the channel the stream key names (RFC 9725)
#[utoipa::path(post, path = "/whip", operation_id = "whip_offer", tag = "webrtc",
    request_body(content = String, content_type = "application/sdp", description = "The SDP offer"),
    security(("stream_key" = [])),
    responses(
        OfferAnswered,
        (status = 400, description = "Not an offer we can read", body = ErrorBody),
        (status = 401, description = "No stream key, or an unknown one", body = ErrorBody),
        (status = 403, description = "Refused by the admission webhook", body = ErrorBody),
        (status = 421, description = "This server is an edge (`--role edge`): publish to an origin", body = ErrorBody),
        OfferRefused,
    ))]
pub(super) async fn offer(
    State(s): State<AppState>,
    client: super::ClientAddr,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    super::whep::rate_limit(&s, client).await?;
    if s.role == crate::config::Role::Edge {
        return Err(ApiError::Misdirected(
            "this server is an edge and takes no ingest: publish to an origin of the site".into(),
        ));
    }
    let answer = publish(&s, client, &headers, body).await;
    crate::metrics::publish("whip", answer.is_ok());
    answer
}

async fn publish(
    s: &AppState,
    client: super::ClientAddr,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let text = body_text(body)?;
    let Some(key) = super::auth::bearer(headers) else {
        return Err(ApiError::Unauthorized(
            "WHIP needs Authorization: Bearer <stream key>".into(),
        ));
    };
    let Some(channel) = s.db.channel_for_key(key).await? else {
        return Err(ApiError::Unauthorized("unknown stream key".into()));
    };
    require_type(headers, "application/sdp")?;
    let who = crate::hooks::Admission {
        channel: &channel,
        protocol: "whip",
        remote: client.0,
    };
    s.hooks.admit(who).await.map_err(ApiError::Forbidden)?;
    let answer = s.sfu.whip(&channel, key, text).await?;
    let location = format!("/whip/{}", answer.session);
    Ok(super::whep::created(
        s,
        answer,
        location,
        "publisher",
        client,
    ))
}

/// Trickle ICE candidates to a WHIP session
#[utoipa::path(patch, path = "/whip/{session}", operation_id = "whip_trickle", tag = "webrtc",
    params(("session" = String, Path)),
    request_body(content = String, content_type = "application/trickle-ice-sdpfrag"),
    responses(TrickleAnswers))]
pub(super) async fn trickle(
    State(s): State<AppState>,
    Path(session): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    super::whep::add_candidates(&s, &session, &headers, body).await
}

/// End a WHIP session: the broadcast ends
#[utoipa::path(delete, path = "/whip/{session}", operation_id = "whip_end", tag = "webrtc",
    params(("session" = String, Path)),
    responses((status = 200), (status = 404, description = "No such session", body = ErrorBody)))]
pub(super) async fn end(
    State(s): State<AppState>,
    Path(session): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.sfu.delete(&session).await?;
    Ok(StatusCode::OK)
}
