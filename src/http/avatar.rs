//! Profile pictures: `PUT`/`DELETE /api/me/avatar`, and
//! `GET /avatars/NAME/SIZE` for chat, the directory and channel pages.

use super::auth::SignedIn;
use super::openapi::Binary;
use super::{ApiError, AppState, ErrorBody};
use crate::avatar::{AvatarError, MAX_UPLOAD_BYTES, SIZES};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

/// How long a browser or CDN may keep an avatar without asking again: a
/// new picture shows everywhere within this.
const MAX_AGE_SECS: u32 = 300;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/me/avatar",
            put(upload)
                .delete(remove)
                // Past the community router's JSON limit; the handler
                // reports the excess itself.
                .layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES)),
        )
        .route("/avatars/{username}/{size}", get(picture))
}

/// The address of a user's picture at `size`. With `version` it changes
/// at each upload, so a page showing it (the uploader's dashboard) skips
/// the copy its browser cached under the plain address.
pub fn url(username: &str, size: u32, version: i64) -> String {
    if version == 0 {
        format!("/avatars/{username}/{size}")
    } else {
        format!("/avatars/{username}/{size}?v={version}")
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct Uploaded {
    /// The new picture at 256 px, for the page to show at once.
    avatar: String,
}

/// Upload a profile picture
///
/// The body is the picture itself: PNG, JPEG or WebP, whatever the
/// Content-Type says. It is decoded, cropped square and stored at 64 and
/// 256 px; the upload's own bytes are not kept.
#[utoipa::path(put, path = "/api/me/avatar", tag = "avatars",
    security(("bearer" = []), ("cookie" = [])),
    request_body(description = "A PNG, JPEG or WebP picture of at most 2 MiB and 4096x4096 pixels",
        content((inline(Binary) = "image/png"), (inline(Binary) = "image/jpeg"), (inline(Binary) = "image/webp"))),
    responses(
        (status = 200, body = Uploaded),
        (status = 401, body = ErrorBody),
        (status = 403, description = "A cross-site request", body = ErrorBody),
        (status = 413, description = "Over 2 MiB", body = ErrorBody),
        (status = 415, description = "Not a PNG, JPEG or WebP picture", body = ErrorBody),
        (status = 422, description = "Undecodable, or over 4096 pixels a side", body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, description = "Every decoder busy, or the object store unreachable", body = ErrorBody)))]
pub(super) async fn upload(
    State(s): State<AppState>,
    me: SignedIn,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Uploaded>, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!(
                "a picture may be at most {} MiB",
                MAX_UPLOAD_BYTES >> 20
            ))
        } else {
            ApiError::BadRequest(format!("cannot read body: {r}"))
        }
    })?;
    let version = s.avatars.set(me.user.id, bytes).await.map_err(to_api)?;
    tracing::info!(user = %me.user.username, "avatar changed");
    Ok(Json(Uploaded {
        avatar: url(&me.user.username, 256, version),
    }))
}

/// Remove the profile picture
///
/// The generated picture (an initial on a colour) shows again.
#[utoipa::path(delete, path = "/api/me/avatar", tag = "avatars",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 204), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(super) async fn remove(
    State(s): State<AppState>,
    me: SignedIn,
) -> Result<StatusCode, ApiError> {
    s.avatars.remove(me.user.id).await.map_err(to_api)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's picture
///
/// A PNG of the uploaded picture, or a generated SVG for a user without
/// one. `?v=` (from the account's `avatar`) only keys caches.
#[utoipa::path(get, path = "/avatars/{username}/{size}", tag = "avatars",
    params(("username" = String, Path), ("size" = u32, Path, description = "64 or 256")),
    responses(
        (status = 200, description = "The uploaded picture (PNG), or the generated one (SVG)",
            content((inline(Binary) = "image/png"), (String = "image/svg+xml"))),
        (status = 304, description = "The picture named by If-None-Match"),
        (status = 404, description = "No such size, or not a username", body = ErrorBody),
        (status = 503, description = "The object store unreachable", body = ErrorBody)))]
pub(super) async fn picture(
    State(s): State<AppState>,
    Path((username, size)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let size = size
        .parse::<u32>()
        .ok()
        .filter(|n| SIZES.contains(n))
        .ok_or_else(|| ApiError::NotFound(format!("sizes are {SIZES:?}")))?;
    if !crate::db::valid_channel_name(&username) {
        return Err(ApiError::NotFound("no such user".into()));
    }
    // Unknown and deleted names get the generated picture too: the
    // answer does not tell which names exist.
    let (user_id, version) = s.db.avatar_of(&username).await?.unwrap_or((0, 0));
    let etag = format!("\"{version:x}-{size}\"");
    let cache = format!("public, max-age={MAX_AGE_SECS}");
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache)],
        )
            .into_response());
    }
    let stored = match version {
        0 => None,
        v => s
            .avatars
            .get(user_id, v, size)
            .await
            .map_err(store_unavailable)?,
    };
    let (kind, body) = match stored {
        Some(png) => ("image/png", png),
        None => (
            "image/svg+xml",
            Bytes::from(crate::avatar::placeholder(&username)),
        ),
    };
    let mut res = (
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache),
        ],
        body,
    )
        .into_response();
    // Opened on its own, an SVG is a document: nothing in it may run or
    // load.
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    res.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(res)
}

/// The object store failed or is unreachable: a 503 for the client (it is
/// not their request's fault), the reason in the log.
fn store_unavailable(e: crate::store::StoreError) -> ApiError {
    tracing::warn!(error = %e, "avatar store");
    ApiError::Busy(
        "picture storage is unavailable; try again shortly".into(),
        10,
    )
}

fn to_api(e: AvatarError) -> ApiError {
    match e {
        AvatarError::Format => ApiError::UnsupportedMediaType(e.to_string()),
        AvatarError::TooLarge | AvatarError::Corrupt(_) => ApiError::Unprocessable(e.to_string()),
        AvatarError::Busy => ApiError::Busy(e.to_string(), 5),
        AvatarError::RateLimited(wait) => ApiError::TooManyRequests(e.to_string(), wait),
        AvatarError::Db(e) => ApiError::Db(e),
        AvatarError::Store(e) => store_unavailable(e),
    }
}
