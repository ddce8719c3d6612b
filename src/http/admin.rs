//! The admin console's API: finding users, mailing one a password-reset
//! link, site-wide chat bans, and the audit log that every moderator and
//! admin action writes to (through [`record`]).

use super::auth::ApiJson;
use super::auth::SignedIn;
use super::chat_ws::{ban_entry, ban_for, BanBody};
use super::me::require_admin;
use super::openapi::SignedInErrors;
use super::{ApiError, AppState, ErrorBody};
use crate::chat::rfc3339;
use crate::db::{AuditEntry, Ban, EmailPurpose, Role, User, SITE};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// One page of users or of the audit log.
pub const ADMIN_PAGE_DEFAULT: i64 = 50;
pub const ADMIN_PAGE_MAX: i64 = 200;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/users", get(users))
        .route("/api/users/{username}/password-reset", post(send_reset))
        .route("/api/audit", get(audit))
        .route("/api/bans", get(site_bans).post(site_ban))
        .route("/api/bans/{username}", delete(site_unban))
}

/// Writes one moderator or admin action to the audit log. The action has
/// happened by then: a failed write is logged, not turned into an error.
pub(super) async fn record(s: &AppState, actor: &User, action: &str, target: &str, detail: &str) {
    if let Err(e) = s.db.audit(&actor.username, action, target, detail).await {
        tracing::error!(actor = %actor.username, action, target, "audit log not written: {e}");
    }
}

fn page_limit(limit: Option<i64>) -> i64 {
    limit.unwrap_or(ADMIN_PAGE_DEFAULT).clamp(1, ADMIN_PAGE_MAX)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct UserQuery {
    /// Names starting with this.
    #[serde(default)]
    q: String,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1 to 200; 50 by default.
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct AdminUser {
    username: String,
    role: Role,
    email: Option<String>,
    email_verified: bool,
    #[schema(format = DateTime)]
    created_at: String,
    deleted: bool,
    suspended: bool,
}

#[derive(Serialize, ToSchema)]
pub(super) struct UserPage {
    items: Vec<AdminUser>,
    next_cursor: Option<String>,
}

/// Find users by the start of their name (admins)
#[utoipa::path(get, path = "/api/users", operation_id = "list_users", tag = "accounts",
    params(UserQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = UserPage), SignedInErrors))]
pub(super) async fn users(
    State(s): State<AppState>,
    me: SignedIn,
    q: Result<Query<UserQuery>, QueryRejection>,
) -> Result<Json<UserPage>, ApiError> {
    require_admin(&me)?;
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let prefix = q.q.trim().to_ascii_lowercase();
    if prefix.len() > 32
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ApiError::BadRequest(
            "q is the start of a name: a-z, 0-9, '_' and '-'".into(),
        ));
    }
    let limit = page_limit(q.limit);
    let found =
        s.db.users_page(&prefix, q.cursor.as_deref(), limit + 1)
            .await?;
    let more = found.len() as i64 > limit;
    let items: Vec<AdminUser> = found
        .into_iter()
        .take(limit as usize)
        .map(|u| AdminUser {
            username: u.username,
            role: u.role,
            email: u.email,
            email_verified: u.email_verified,
            created_at: rfc3339(u.created_at),
            deleted: u.deleted_at.is_some(),
            suspended: u.suspended,
        })
        .collect();
    let next_cursor = more
        .then(|| items.last().map(|u| u.username.clone()))
        .flatten();
    Ok(Json(UserPage { items, next_cursor }))
}

/// Mail a user a password-reset link (admins)
///
/// 202: on its way to the account's address. 409 when it has none; 503
/// when the server sends no mail.
#[utoipa::path(post, path = "/api/users/{username}/password-reset", tags = ["accounts", "mail"],
    params(("username" = String, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 202),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The account has no email address", body = ErrorBody),
        (status = 503, description = "This server sends no mail", body = ErrorBody),
    ))]
pub(super) async fn send_reset(
    State(s): State<AppState>,
    me: SignedIn,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&me)?;
    if s.mailer.is_none() {
        return Err(ApiError::Unavailable(
            "email is off on this server (start it with --smtp-url)".into(),
        ));
    }
    let user = super::me::active_user(&s, &username).await?;
    if user.email.is_none() {
        return Err(ApiError::Conflict(format!(
            "{username} has no email address"
        )));
    }
    super::email::queue_mail(&s, &user, EmailPurpose::Reset);
    record(
        &s,
        &me.user,
        "user.password_reset",
        &username,
        "link mailed",
    )
    .await;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1 to 200; 50 by default.
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct AuditView {
    id: String,
    #[schema(format = DateTime)]
    at: String,
    /// Who did it.
    actor: String,
    /// What, as `area.verb`: `user.role`, `chat.ban`, `stream.end`...
    action: String,
    /// To what: a user, a channel, a category or an invite.
    target: String,
    detail: String,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> AuditView {
        AuditView {
            id: e.id.to_string(),
            at: rfc3339(e.at),
            actor: e.actor,
            action: e.action,
            target: e.target,
            detail: e.detail,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct AuditPage {
    items: Vec<AuditView>,
    next_cursor: Option<String>,
}

/// Moderator and admin actions, newest first (admins)
#[utoipa::path(get, path = "/api/audit", tag = "accounts",
    params(AuditQuery),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = AuditPage), SignedInErrors))]
pub(super) async fn audit(
    State(s): State<AppState>,
    me: SignedIn,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    require_admin(&me)?;
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let before = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::BadRequest("cursor is not one this server gave".into()))?,
        ),
    };
    let limit = page_limit(q.limit);
    let mut rows = s.db.audit_page(before, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = more
        .then(|| rows.last().map(|e| e.id.to_string()))
        .flatten();
    Ok(Json(AuditPage {
        items: rows.into_iter().map(AuditView::from).collect(),
        next_cursor,
    }))
}

#[derive(Serialize, ToSchema)]
pub(super) struct SiteBan {
    username: String,
    /// The end of a time-out; none for a ban until lifted.
    #[schema(format = DateTime)]
    until: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct SiteBanList {
    items: Vec<SiteBan>,
}

/// Site-wide chat bans and time-outs in force (admins)
#[utoipa::path(get, path = "/api/bans", operation_id = "list_site_bans", tag = "chat",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = SiteBanList), SignedInErrors))]
pub(super) async fn site_bans(
    State(s): State<AppState>,
    me: SignedIn,
) -> Result<Json<SiteBanList>, ApiError> {
    require_admin(&me)?;
    let items =
        s.db.site_bans()
            .await?
            .into_iter()
            .map(|(username, ban)| SiteBan {
                username,
                until: match ban {
                    Ban::Banned => None,
                    Ban::Until(t) => Some(rfc3339(t)),
                },
            })
            .collect();
    Ok(Json(SiteBanList { items }))
}

/// Ban a user from chat in every channel, or time them out (admins)
///
/// Their own channel included; moderators and admins are not held by it.
#[utoipa::path(post, path = "/api/bans", operation_id = "site_ban", tag = "chat",
    request_body = BanBody,
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 204), SignedInErrors))]
pub(super) async fn site_ban(
    State(s): State<AppState>,
    me: SignedIn,
    ApiJson(req): ApiJson<BanBody>,
) -> Result<StatusCode, ApiError> {
    require_admin(&me)?;
    let ban = ban_for(req.seconds)?;
    let user = super::me::active_user(&s, &req.username).await?;
    if user.role.moderates_everywhere() {
        return Err(ApiError::BadRequest(
            "moderators and admins moderate every chat: change their role first".into(),
        ));
    }
    s.db.set_ban(SITE, user.id, ban).await?;
    let (verb, detail) = ban_entry(&user.username, req.seconds);
    record(
        &s,
        &me.user,
        &format!("site.{verb}"),
        &user.username,
        &detail,
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Lift a site-wide ban or time-out (admins)
#[utoipa::path(delete, path = "/api/bans/{username}", operation_id = "site_unban", tag = "chat",
    params(("username" = String, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 204), SignedInErrors))]
pub(super) async fn site_unban(
    State(s): State<AppState>,
    me: SignedIn,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&me)?;
    let user = super::me::active_user(&s, &username).await?;
    s.db.lift_ban(SITE, user.id).await?;
    record(&s, &me.user, "site.unban", &user.username, "").await;
    Ok(StatusCode::NO_CONTENT)
}
