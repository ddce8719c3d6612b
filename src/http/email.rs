//! Email verification and password reset. With `--smtp-url` the server
//! mails single-use tokens; without it these routes answer 503 and say
//! that mail is off.

use super::auth::{ApiJson, SignedIn};
use super::{ApiError, AppState};
use crate::auth::{self, Mailer};
use crate::chat::unix_secs;
use crate::db::{EmailPurpose, User};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use std::sync::Arc;

/// A verification link stays good for a day; a reset token for an hour.
const VERIFY_TTL_SECS: i64 = 24 * 3600;
const RESET_TTL_SECS: i64 = 3600;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/email/send", post(send_verification))
        .route("/api/auth/email/verify", post(verify))
        .route("/api/auth/password/reset", post(request_reset))
        .route("/api/auth/password/reset/confirm", post(confirm_reset))
}

fn mailer(s: &AppState) -> Result<Arc<Mailer>, ApiError> {
    s.mailer.clone().ok_or_else(|| {
        ApiError::Unavailable(
            "email is off on this server (start it with --smtp-url to turn on verification and password reset)"
                .into(),
        )
    })
}

/// Makes a token, stores its hash and mails it to `user`.
pub async fn mail_token(
    s: &AppState,
    mailer: &Mailer,
    user: &User,
    purpose: EmailPurpose,
) -> Result<(), ApiError> {
    let Some(to) = &user.email else {
        return Err(ApiError::BadRequest(
            "this account has no email address".into(),
        ));
    };
    let (token, hash) = auth::new_session_token();
    let (ttl, subject, what, route) = match purpose {
        EmailPurpose::Verify => (
            VERIFY_TTL_SECS,
            "Confirm your email for onair",
            "confirm this address",
            "POST /api/auth/email/verify {\"token\": TOKEN}",
        ),
        EmailPurpose::Reset => (
            RESET_TTL_SECS,
            "Reset your onair password",
            "choose a new password",
            "POST /api/auth/password/reset/confirm {\"token\": TOKEN, \"new_password\": ...}",
        ),
    };
    s.db.insert_email_token(&hash, user.id, purpose, unix_secs() + ttl)
        .await?;
    let body = format!(
        "Hello {},\n\nTo {what}, use this token within {} minutes:\n\n{token}\n\n({route})\n\nIf you did not ask for this, ignore this mail.\n",
        user.username,
        ttl / 60
    );
    mailer.send(to, subject, body).await.map_err(|e| {
        tracing::warn!(user = %user.username, "mail not sent: {e}");
        ApiError::Unavailable("cannot send mail now".into())
    })
}

async fn send_verification(
    State(s): State<AppState>,
    me: SignedIn,
) -> Result<StatusCode, ApiError> {
    let mailer = mailer(&s)?;
    if me.user.email_verified {
        return Err(ApiError::Conflict("email is already verified".into()));
    }
    mail_token(&s, &mailer, &me.user, EmailPurpose::Verify).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    token: String,
}

async fn verify(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<TokenBody>,
) -> Result<StatusCode, ApiError> {
    mailer(&s)?;
    let user =
        s.db.take_email_token(&auth::token_hash(&req.token), EmailPurpose::Verify)
            .await?
            .ok_or_else(|| ApiError::BadRequest("token is invalid, used or expired".into()))?;
    s.db.set_email_verified(user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    username: String,
}

/// Always 202 when mail is on, so the answer tells nobody which accounts
/// exist or have an address.
async fn request_reset(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    let mailer = mailer(&s)?;
    if let Some(c) = s.db.credentials(&req.username).await? {
        if c.user.deleted_at.is_none() && c.user.email.is_some() {
            if let Err(e) = mail_token(&s, &mailer, &c.user, EmailPurpose::Reset).await {
                tracing::warn!(user = %c.user.username, "password reset mail failed: {e}");
            }
        }
    }
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetConfirm {
    token: String,
    new_password: String,
}

async fn confirm_reset(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<ResetConfirm>,
) -> Result<StatusCode, ApiError> {
    mailer(&s)?;
    auth::check_password(&req.new_password)?;
    let user =
        s.db.take_email_token(&auth::token_hash(&req.token), EmailPurpose::Reset)
            .await?
            .ok_or_else(|| ApiError::BadRequest("token is invalid, used or expired".into()))?;
    let hash = auth::hash_password_blocking(req.new_password).await?;
    s.db.set_password_hash(user, &hash).await?;
    // Whoever held a session (perhaps the reason for the reset) is out.
    s.db.delete_sessions(user).await?;
    // The mailbox proved itself: the address is verified too.
    s.db.set_email_verified(user).await?;
    if let Some(u) = s.db.user_by_id(user).await? {
        s.limits.login.succeeded(&format!("user:{}", u.username));
    }
    Ok(StatusCode::NO_CONTENT)
}
