//! The signed-in user (`/api/me`) and admin actions on users.

use super::auth::{ApiJson, SignedIn};
use super::openapi::SignedInErrors;
use super::{ApiError, AppState, ErrorBody};
use crate::db::{Role, User};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/me", get(me).delete(delete_me))
        .route("/api/users/{username}", patch(set_role).delete(delete_user))
}

#[derive(Serialize, ToSchema)]
pub(super) struct Me {
    user: User,
    /// The channel named after the user, with what an encoder needs.
    channel: Option<MyChannel>,
    /// The user's picture at 256 px; without an upload, the generated one.
    avatar: String,
}

#[derive(Serialize, ToSchema)]
pub(super) struct MyChannel {
    name: String,
    /// None until the account may stream (any role but viewer).
    stream_key: Option<String>,
    title: String,
    description: String,
    category: Option<String>,
    tags: Vec<String>,
    likes: i64,
    // Besides the key, OBS needs the ports; the host is the one the client
    // reached us by, which only it knows (or the public URL's).
    /// The port RTMP ingest listens on.
    rtmp_port: u16,
    /// The port RTMPS ingest listens on, when it is on.
    rtmps_port: Option<u16>,
    /// The port Icecast sources connect to.
    icecast_port: u16,
    /// `--public-url`: encoders connect to its host when there is one.
    public_url: Option<String>,
}

/// The signed-in user and their channel, with its stream key
#[utoipa::path(get, path = "/api/me", tag = "accounts",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub(super) async fn me(State(s): State<AppState>, me: SignedIn) -> Result<Json<Me>, ApiError> {
    let channel = s.db.channel(&me.user.username).await?;
    let info = s.db.channel_info(&me.user.username).await?;
    let channel = match (channel, info) {
        (Some(c), Some(i)) if i.owner_id == Some(me.user.id) => Some(MyChannel {
            name: c.name,
            stream_key: me.user.role.streams().then_some(c.stream_key),
            title: i.title,
            description: i.description,
            category: i.category,
            tags: i.tags,
            likes: i.likes,
            rtmp_port: s.rtmp_port,
            rtmps_port: s.rtmps_port,
            icecast_port: s.icecast.port,
            public_url: s.public_url.as_deref().map(str::to_string),
        }),
        _ => None,
    };
    let version = s.db.avatar_version(me.user.id).await?.unwrap_or(0);
    Ok(Json(Me {
        avatar: super::avatar::url(&me.user.username, 256, version),
        user: me.user,
        channel,
    }))
}

/// Delete the account
///
/// A soft delete: its content stays, every session ends and a live
/// publish stops.
#[utoipa::path(delete, path = "/api/me", tag = "accounts",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn delete_me(
    State(s): State<AppState>,
    me: SignedIn,
) -> Result<StatusCode, ApiError> {
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
    s.avatars.forget(user.id).await;
    tracing::info!(user = %user.username, "account deleted (soft)");
    Ok(())
}

/// The account of that name, unless it is deleted: else a 404.
pub(super) async fn active_user(s: &AppState, username: &str) -> Result<User, ApiError> {
    s.db.credentials(username)
        .await?
        .filter(|c| c.user.deleted_at.is_none())
        .map(|c| c.user)
        .ok_or_else(|| ApiError::NotFound(format!("no user named {username:?}")))
}

pub(super) fn require_admin(me: &SignedIn) -> Result<(), ApiError> {
    if me.user.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden("admins only".into()))
    }
}

/// What an admin changes about an account; a field left out stays.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UserPatch {
    #[schema(value_type = Option<Role>)]
    role: Option<String>,
    /// Suspended: no sign-in (every session ends), chat or streaming
    /// (a live publish ends) until lifted.
    suspended: Option<bool>,
}

/// Set a user's role, or suspend them or lift it (admins)
#[utoipa::path(patch, path = "/api/users/{username}", tag = "accounts",
    params(("username" = String, Path)),
    request_body = UserPatch,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, body = User),
        SignedInErrors,
    ))]
pub(super) async fn set_role(
    State(s): State<AppState>,
    me: SignedIn,
    Path(username): Path<String>,
    ApiJson(req): ApiJson<UserPatch>,
) -> Result<Json<User>, ApiError> {
    require_admin(&me)?;
    let role = match &req.role {
        None => None,
        Some(r) => Some(Role::parse(r).ok_or_else(|| {
            ApiError::BadRequest("role must be admin, moderator, broadcaster or viewer".into())
        })?),
    };
    if role.is_none() && req.suspended.is_none() {
        return Err(ApiError::BadRequest("give a role or suspended".into()));
    }
    let mut user = active_user(&s, &username).await?;
    if req.suspended == Some(true) && user.id == me.user.id {
        return Err(ApiError::BadRequest(
            "admins cannot suspend themselves".into(),
        ));
    }
    if let Some(role) = role {
        s.db.set_role(user.id, role).await?;
        let change = format!("{} -> {}", user.role.as_str(), role.as_str());
        super::admin::record(&s, &me.user, "user.role", &user.username, &change).await;
        // Open chat sockets see the new role with their next message: a
        // demoted moderator loses the moderator's exemptions at once.
        s.rooms.standings().set_role(user.id, role);
        if user.role.streams() != role.streams() {
            // A stream key is issued when streaming is granted and withdrawn
            // with it: whatever key the channel had while hidden never works,
            // and a live publish ends with the role.
            s.db.rotate_stream_key(&user.username).await?;
            s.hub.kick(&user.username);
            tracing::info!(user = %user.username, role = role.as_str(), "streaming {}",
                if role.streams() { "granted" } else { "withdrawn" });
        }
        user.role = role;
    }
    if let Some(on) = req.suspended.filter(|on| *on != user.suspended) {
        s.db.set_suspended(user.id, on).await?;
        if on {
            // Every way in ends now: sessions (chat sockets turn
            // read-only) and a live publish; the publish rules refuse
            // the next one.
            s.rooms.standings().end_sessions(user.id, None);
            s.hub.kick(&user.username);
        }
        let action = if on { "user.suspend" } else { "user.unsuspend" };
        super::admin::record(&s, &me.user, action, &user.username, "").await;
        tracing::info!(user = %user.username, by = %me.user.username, "{action}");
        user.suspended = on;
    }
    Ok(Json(user))
}

/// Delete a user (admins; soft, like deleting one's own account)
#[utoipa::path(delete, path = "/api/users/{username}", tag = "accounts",
    params(("username" = String, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204),
        SignedInErrors,
    ))]
pub(super) async fn delete_user(
    State(s): State<AppState>,
    me: SignedIn,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&me)?;
    let user = active_user(&s, &username).await?;
    soft_delete(&s, &user).await?;
    super::admin::record(&s, &me.user, "user.delete", &user.username, "").await;
    Ok(StatusCode::NO_CONTENT)
}
