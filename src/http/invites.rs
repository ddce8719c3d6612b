//! Who may register: the policy, readable by anyone (the sign-up page
//! shows it), and the invites admins make for `--registration invite`:
//! single-use links that expire, optionally granting the broadcaster role.

use super::auth::{ApiJson, SignedIn};
use super::me::require_admin;
use super::openapi::SignedInErrors;
use super::{ApiError, AppState, ErrorBody};
use crate::auth::{self, Registration};
use crate::chat::{rfc3339, unix_secs};
use crate::db::{Invite, Role};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An invite lasts a week unless its maker says otherwise, and at most 30
/// days: a link forgotten in a chat log must not open the site forever.
pub const INVITE_HOURS_DEFAULT: u32 = 7 * 24;
pub const INVITE_HOURS_MAX: u32 = 30 * 24;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/registration", get(policy))
        .route("/api/invites", get(list).post(create))
        .route("/api/invites/{id}", delete(withdraw))
}

#[derive(Serialize, ToSchema)]
pub(super) struct RegistrationPolicy {
    registration: Registration,
    /// New accounts stream at once (`--open-streaming`); otherwise they
    /// are viewers until an admin (or their invite) grants the
    /// broadcaster role.
    open_streaming: bool,
}

/// Who may register here
#[utoipa::path(get, path = "/api/auth/registration", tag = "accounts",
    responses((status = 200, body = RegistrationPolicy)))]
pub(super) async fn policy(State(s): State<AppState>) -> Json<RegistrationPolicy> {
    Json(RegistrationPolicy {
        registration: s.signup.registration,
        open_streaming: s.signup.open_streaming,
    })
}

#[derive(Serialize, ToSchema)]
pub(super) struct InviteView {
    id: String,
    /// The role the account it makes starts with.
    role: Role,
    created_by: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    expires_at: String,
    /// The account it made, once used.
    used_by: Option<String>,
    /// `open`, `used` or `expired`.
    state: &'static str,
}

impl From<&Invite> for InviteView {
    fn from(i: &Invite) -> InviteView {
        let state = if i.used_by.is_some() {
            "used"
        } else if i.expires_at <= unix_secs() {
            "expired"
        } else {
            "open"
        };
        InviteView {
            id: i.id.to_string(),
            role: i.role,
            created_by: i.created_by.clone(),
            created_at: rfc3339(i.created_at),
            expires_at: rfc3339(i.expires_at),
            used_by: i.used_by.clone(),
            state,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct InviteList {
    items: Vec<InviteView>,
}

/// Invites, newest first (admins)
#[utoipa::path(get, path = "/api/invites", operation_id = "list_invites", tag = "accounts",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = InviteList), SignedInErrors))]
pub(super) async fn list(
    State(s): State<AppState>,
    me: SignedIn,
) -> Result<Json<InviteList>, ApiError> {
    require_admin(&me)?;
    let items = s.db.invites().await?.iter().map(InviteView::from).collect();
    Ok(Json(InviteList { items }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewInvite {
    /// The account it makes may stream at once.
    #[serde(default)]
    broadcaster: bool,
    /// Hours until it expires: 1 to 720, a week by default.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 720)]
    hours: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct CreatedInvite {
    invite: InviteView,
    /// Shown once: only its hash is kept.
    token: String,
    /// The sign-up page with the token in the fragment (which no server or
    /// log sees): absolute on `--public-url`, else a path on this site.
    link: String,
}

/// Make a single-use invite (admins)
#[utoipa::path(post, path = "/api/invites", operation_id = "create_invite", tag = "accounts",
    request_body = NewInvite,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, body = CreatedInvite),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "Too many invites are open", body = ErrorBody),
    ))]
pub(super) async fn create(
    State(s): State<AppState>,
    me: SignedIn,
    ApiJson(req): ApiJson<NewInvite>,
) -> Result<Response, ApiError> {
    require_admin(&me)?;
    let hours = req.hours.unwrap_or(INVITE_HOURS_DEFAULT);
    if !(1..=INVITE_HOURS_MAX).contains(&hours) {
        return Err(ApiError::BadRequest(format!(
            "hours must be 1 to {INVITE_HOURS_MAX}"
        )));
    }
    let role = if req.broadcaster {
        Role::Broadcaster
    } else {
        Role::Viewer
    };
    let (token, hash) = auth::new_session_token();
    let expires = unix_secs() + i64::from(hours) * 3600;
    let invite =
        s.db.create_invite(&hash, me.user.id, role, expires)
            .await?
            .ok_or_else(|| {
                ApiError::Conflict(format!(
                    "{} invites are open: withdraw some first",
                    crate::db::INVITES_OPEN_MAX
                ))
            })?;
    tracing::info!(admin = %me.user.username, role = role.as_str(), hours, "invite made");
    let detail = format!("{}, {hours} h", role.as_str());
    super::admin::record(
        &s,
        &me.user,
        "invite.create",
        &invite.id.to_string(),
        &detail,
    )
    .await;
    let link = format!(
        "{}/register#invite={token}",
        s.public_url.as_deref().unwrap_or("")
    );
    let body = CreatedInvite {
        invite: InviteView::from(&invite),
        token,
        link,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Withdraw an unused invite (admins)
#[utoipa::path(delete, path = "/api/invites/{id}", operation_id = "delete_invite", tag = "accounts",
    params(("id" = String, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 204), SignedInErrors))]
pub(super) async fn withdraw(
    State(s): State<AppState>,
    me: SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&me)?;
    let gone = match id.parse::<i64>() {
        Ok(id) => s.db.delete_invite(id).await?,
        Err(_) => false,
    };
    if gone {
        super::admin::record(&s, &me.user, "invite.withdraw", &id, "").await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no unused invite {id:?}")))
    }
}
