//! The signed-in user (`/api/me`) and admin actions on users.

use super::auth::{ApiJson, SignedIn};
use super::{ApiError, AppState};
use crate::db::{Role, User};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::Deserialize;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/me", get(me).delete(delete_me))
        .route("/api/users/{username}", patch(set_role).delete(delete_user))
}

/// The user and their channel, with the stream key: only ever sent to its
/// owner.
async fn me(State(s): State<AppState>, me: SignedIn) -> Result<Json<serde_json::Value>, ApiError> {
    let channel = s.db.channel(&me.user.username).await?;
    let info = s.db.channel_info(&me.user.username).await?;
    let channel = match (channel, info) {
        (Some(c), Some(i)) if i.owner_id == Some(me.user.id) => serde_json::json!({
            "name": c.name,
            "stream_key": c.stream_key,
            "title": i.title,
            "description": i.description,
            "category": i.category,
            "tags": i.tags,
            "likes": i.likes,
            // What OBS needs besides the key; the host is the one the
            // client reached us by, which only it knows.
            "rtmp_port": s.rtmp_port,
            "rtmps_port": s.rtmps_port,
            "icecast_port": s.icecast.port,
            // Encoders connect to its host when there is one.
            "public_url": s.public_url.as_deref(),
        }),
        _ => serde_json::Value::Null,
    };
    Ok(Json(
        serde_json::json!({ "user": me.user, "channel": channel }),
    ))
}

/// Soft delete: content stays, login ends, live publishing stops.
async fn delete_me(State(s): State<AppState>, me: SignedIn) -> Result<StatusCode, ApiError> {
    soft_delete(&s, &me.user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Everything that ends when an account does, in order: the row and its
/// sessions (so no request signs in with it again), then whatever is still
/// open with the old sign-in. Each step after the first only ends what is
/// live in this process; add new ones here.
async fn soft_delete(s: &AppState, user: &User) -> Result<(), ApiError> {
    s.db.soft_delete_user(user.id).await?;
    // Open chat sockets and data channels turn read-only at once.
    s.rooms.standings().end_sessions(user.id, None);
    s.hub.kick(&user.username);
    tracing::info!(user = %user.username, "account deleted (soft)");
    Ok(())
}

fn require_admin(me: &SignedIn) -> Result<(), ApiError> {
    if me.user.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden("admins only".into()))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetRole {
    role: String,
}

async fn set_role(
    State(s): State<AppState>,
    me: SignedIn,
    Path(username): Path<String>,
    ApiJson(req): ApiJson<SetRole>,
) -> Result<Json<User>, ApiError> {
    require_admin(&me)?;
    let role = Role::parse(&req.role).ok_or_else(|| {
        ApiError::BadRequest("role must be admin, moderator, broadcaster or viewer".into())
    })?;
    let mut user =
        s.db.credentials(&username)
            .await?
            .filter(|c| c.user.deleted_at.is_none())
            .ok_or_else(|| ApiError::NotFound(format!("no user named {username:?}")))?
            .user;
    s.db.set_role(user.id, role).await?;
    // Open chat sockets see the new role with their next message: a
    // demoted moderator loses the moderator's exemptions at once.
    s.rooms.standings().set_role(user.id, role);
    user.role = role;
    Ok(Json(user))
}

async fn delete_user(
    State(s): State<AppState>,
    me: SignedIn,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&me)?;
    let user =
        s.db.credentials(&username)
            .await?
            .filter(|c| c.user.deleted_at.is_none())
            .ok_or_else(|| ApiError::NotFound(format!("no user named {username:?}")))?
            .user;
    soft_delete(&s, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}
