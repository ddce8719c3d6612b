//! The signed-in user's sessions (each device or script signed in): listed,
//! ended one by one, or all at once ("sign out everywhere"). Ending a
//! session turns its chat sockets and data channels read-only at once.

use super::auth::{session_cookie, SignedIn};
use super::openapi::SignedInErrors;
use super::{ApiError, AppState, ErrorBody};
use crate::chat::rfc3339;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

/// Hex digits of the token's hash that name a session: enough to tell a
/// user's sessions apart (they hold at most a few), while the hash itself,
/// which authenticates nothing, stays on the server anyway.
const ID_HEX: usize = 16;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/me/sessions", get(list))
        .route("/api/me/sessions/{id}", delete(end_one))
        .route("/api/auth/logout-all", post(end_all))
}

#[derive(Serialize, ToSchema)]
pub(super) struct SessionView {
    /// Names the session for `DELETE /api/me/sessions/{id}`.
    id: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    expires_at: String,
    /// The session this request came with.
    current: bool,
}

#[derive(Serialize, ToSchema)]
pub(super) struct SessionList {
    items: Vec<SessionView>,
}

fn session_id(token_hash: &str) -> &str {
    token_hash.get(..ID_HEX).unwrap_or(token_hash)
}

/// The account's sessions, newest first
#[utoipa::path(get, path = "/api/me/sessions", operation_id = "list_sessions", tag = "accounts",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = SessionList), (status = 401, body = ErrorBody)))]
pub(super) async fn list(
    State(s): State<AppState>,
    me: SignedIn,
) -> Result<Json<SessionList>, ApiError> {
    let items =
        s.db.sessions(me.user.id)
            .await?
            .into_iter()
            .map(|(hash, created, expires)| SessionView {
                id: session_id(&hash).to_string(),
                created_at: rfc3339(created),
                expires_at: rfc3339(expires),
                current: hash == me.token_hash,
            })
            .collect();
    Ok(Json(SessionList { items }))
}

/// End one of the account's sessions (another device, or this one)
#[utoipa::path(delete, path = "/api/me/sessions/{id}", operation_id = "end_session", tag = "accounts",
    params(("id" = String, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 204), SignedInErrors))]
pub(super) async fn end_one(
    State(s): State<AppState>,
    me: SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let sessions = s.db.sessions(me.user.id).await?;
    let Some((hash, ..)) = sessions
        .iter()
        .find(|(hash, ..)| id.len() == ID_HEX && session_id(hash) == id)
    else {
        return Err(ApiError::NotFound("no such session".into()));
    };
    s.db.delete_session(hash).await?;
    s.rooms.standings().end_session(me.user.id, hash);
    Ok(StatusCode::NO_CONTENT)
}

/// Sign out everywhere: every session of the account ends, this one too
#[utoipa::path(post, path = "/api/auth/logout-all", tag = "accounts",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn end_all(State(s): State<AppState>, me: SignedIn) -> Result<Response, ApiError> {
    s.db.delete_sessions(me.user.id).await?;
    s.rooms.standings().end_sessions(me.user.id, None);
    tracing::info!(user = %me.user.username, "signed out everywhere");
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, session_cookie("", 0, s.secure_cookies))],
    )
        .into_response())
}
