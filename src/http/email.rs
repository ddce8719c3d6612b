//! Email verification and password reset. With `--smtp-url` the server
//! mails single-use tokens; without it these routes answer 503 and say
//! that mail is off.
//!
//! Asking for mail never reveals whether an account exists: the answer is
//! the same, and so is the work done before it, because the token and the
//! SMTP delivery happen off the request path (see [`queue_mail`]). Mail is
//! rate-limited per client host and per account asked about.

use super::auth::{retry_secs, ApiJson, SignedIn};
use super::{ApiError, AppState, ClientAddr, ErrorBody};
use crate::auth::{self, Mailer};
use crate::chat::unix_secs;
use crate::db::{EmailPurpose, User};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Instant;
use utoipa::ToSchema;

/// A verification link stays good for a day; a reset token for an hour.
const VERIFY_TTL_SECS: i64 = 24 * 3600;
const RESET_TTL_SECS: i64 = 3600;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/email/send", post(send_verification))
        .route("/api/auth/email/verify", post(verify))
        .route("/api/auth/password/reset", post(request_reset))
        .route("/api/auth/password/reset/confirm", post(confirm_reset))
        .route("/api/me/email", post(change_email))
}

fn mailer(s: &AppState) -> Result<Arc<Mailer>, ApiError> {
    s.mailer.clone().ok_or_else(|| {
        ApiError::Unavailable(
            "email is off on this server (start it with --smtp-url to turn on verification and password reset)"
                .into(),
        )
    })
}

/// Makes a token, stores its hash and mails it to `user`, in the
/// background: the caller answers at once whatever happens to the mail
/// (logged). Dropped (and counted) if [`crate::auth::MAIL_JOBS`] are
/// already under way.
pub fn queue_mail(s: &AppState, user: &User, purpose: EmailPurpose) {
    if let Some(to) = user.email.clone() {
        queue(s, user, purpose, to, None);
    }
}

/// Mails a confirmation link to `new_email`, which becomes the account's
/// address when it is followed, and tells the old address (if any) that a
/// change was asked for.
fn queue_change_mail(s: &AppState, user: &User, new_email: String) {
    queue(
        s,
        user,
        EmailPurpose::Change,
        new_email.clone(),
        Some(new_email),
    );
}

fn queue(s: &AppState, user: &User, purpose: EmailPurpose, to: String, new_email: Option<String>) {
    let Some(mailer) = s.mailer.clone() else {
        return;
    };
    let Some(job) = mailer.job() else {
        tracing::warn!(user = %user.username, "mail dropped: too many under way");
        return;
    };
    let (s, user) = (s.clone(), user.clone());
    tokio::spawn(async move {
        let sent = mail_token(&s, &mailer, &user, purpose, &to, new_email.as_deref()).await;
        if let Err(e) = sent {
            tracing::warn!(user = %user.username, ?purpose, "mail not sent: {e}");
        }
        if let (Some(new), Some(old)) = (&new_email, &user.email) {
            let notice = change_notice(&user.username, new);
            let subject = "Your onair email address is being changed";
            if let Err(e) = mailer.send(old, subject, notice).await {
                tracing::warn!(user = %user.username, "change notice not sent: {e}");
            }
        }
        drop(job);
    });
}

async fn mail_token(
    s: &AppState,
    mailer: &Mailer,
    user: &User,
    purpose: EmailPurpose,
    to: &str,
    new_email: Option<&str>,
) -> Result<(), ApiError> {
    let (token, hash) = auth::new_session_token();
    let confirm_new;
    let (ttl, subject, what, page, title) = match purpose {
        EmailPurpose::Verify => (
            VERIFY_TTL_SECS,
            "Confirm your email for onair",
            "confirm this address",
            "verify-email",
            "Verify email",
        ),
        EmailPurpose::Reset => (
            RESET_TTL_SECS,
            "Reset your onair password",
            "choose a new password",
            "reset-password",
            "Reset password",
        ),
        EmailPurpose::Change => {
            confirm_new = format!("make {to} your account's address");
            (
                VERIFY_TTL_SECS,
                "Confirm your new email for onair",
                confirm_new.as_str(),
                "verify-email",
                "Verify email",
            )
        }
    };
    s.db.insert_email_token(&hash, user.id, purpose, new_email, unix_secs() + ttl)
        .await?;
    let mail = compose(
        &user.username,
        what,
        ttl / 60,
        s.public_url.as_deref(),
        page,
        title,
        &token,
    );
    mailer
        .send(to, subject, mail)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))
}

/// To the old address: no link, nothing to do unless the change is not
/// the owner's.
fn change_notice(user: &str, new_email: &str) -> crate::auth::MailBody {
    let text = format!(
        "Hello {user},\n\nSomeone signed in to your account asked to change its email address to {new_email}. \
         It changes only once that address confirms it.\n\n\
         If this was not you, sign in and change your password: that signs out every other device.\n"
    );
    let html = format!(
        "<p>Hello {},</p>\n<p>Someone signed in to your account asked to change its email address to <b>{}</b>. \
         It changes only once that address confirms it.</p>\n\
         <p>If this was not you, sign in and change your password: that signs out every other device.</p>\n",
        html_text(user),
        html_text(new_email)
    );
    crate::auth::MailBody { text, html }
}

/// The mail's text and HTML. With a public URL it carries a link to the
/// app's page, the token in the fragment (which no server, log or Referer
/// sees); without one, the page's path and the token to type in. Never a
/// link built from the request's Host: anyone can ask for a reset with a
/// forged Host, and the link would carry the victim's token elsewhere.
fn compose(
    user: &str,
    what: &str,
    minutes: i64,
    public_url: Option<&str>,
    page: &str,
    title: &str,
    token: &str,
) -> crate::auth::MailBody {
    let ignore = "If you did not ask for this, ignore this mail.";
    match public_url {
        Some(origin) => {
            let link = format!("{origin}/{page}#token={token}");
            crate::auth::MailBody {
                text: format!(
                    "Hello {user},\n\nTo {what}, open this link within {minutes} minutes:\n\n{link}\n\n{ignore}\n"
                ),
                html: format!(
                    "<p>Hello {},</p>\n<p>To {what}, <a href=\"{}\">open this link</a> within {minutes} minutes.</p>\n<p>{ignore}</p>\n",
                    html_text(user),
                    html_text(&link)
                ),
            }
        }
        None => crate::auth::MailBody {
            text: format!(
                "Hello {user},\n\nTo {what}, open \"{title}\" on the site (/{page}) within {minutes} minutes and enter this code:\n\n{token}\n\n{ignore}\n"
            ),
            html: format!(
                "<p>Hello {},</p>\n<p>To {what}, open <b>{title}</b> on the site (<code>/{page}</code>) within {minutes} minutes and enter this code:</p>\n<p><code>{token}</code></p>\n<p>{ignore}</p>\n",
                html_text(user)
            ),
        },
    }
}

/// Text safe in HTML, inside an element or a double-quoted attribute.
fn html_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn mail_rate(s: &AppState, client: ClientAddr, account: &str) -> Result<(), ApiError> {
    s.limits
        .mail(client.host(), account, Instant::now())
        .map_err(|wait| {
            ApiError::TooManyRequests(
                "too many mail requests: try again later".into(),
                retry_secs(wait),
            )
        })
}

/// Mail a verification link to the account's address
///
/// 202: the mail is on its way. 503 when the server sends no mail
/// (`--smtp-url` unset).
#[utoipa::path(post, path = "/api/auth/email/send", operation_id = "send_verification", tags = ["accounts", "mail"],
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 202),
        (status = 401, body = ErrorBody),
        (status = 409, description = "The address is already verified", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
pub(super) async fn send_verification(
    State(s): State<AppState>,
    client: ClientAddr,
    me: SignedIn,
) -> Result<StatusCode, ApiError> {
    mailer(&s)?;
    if me.user.email_verified {
        return Err(ApiError::Conflict("email is already verified".into()));
    }
    if me.user.email.is_none() {
        return Err(ApiError::BadRequest(
            "this account has no email address".into(),
        ));
    }
    mail_rate(&s, client, &me.user.username)?;
    queue_mail(&s, &me.user, EmailPurpose::Verify);
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenBody {
    token: String,
}

// The same 400 for every token that does not work (unknown, used,
// expired, another purpose's): the same two database statements either way.
/// Confirm an address with the mailed token
///
/// The account's address, or the new address it asked for, which then
/// replaces the old one.
#[utoipa::path(post, path = "/api/auth/email/verify", operation_id = "verify_email", tags = ["accounts", "mail"],
    request_body = TokenBody,
    responses((status = 204)))]
pub(super) async fn verify(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<TokenBody>,
) -> Result<StatusCode, ApiError> {
    mailer(&s)?;
    let token = auth::token_hash(&req.token);
    let verified = s.db.take_email_token(&token, EmailPurpose::Verify).await?;
    let changed = s.db.take_email_change(&token).await?;
    match (verified, changed) {
        (Some(user), _) => s.db.set_email_verified(user).await?,
        (None, Some((user, email))) => s.db.set_verified_email(user, &email).await?,
        (None, None) => {
            return Err(ApiError::BadRequest(
                "token is invalid, used or expired".into(),
            ))
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EmailChange {
    #[schema(max_length = 254)]
    email: String,
    /// The account's password, asked again: whoever holds only a session
    /// must not be able to move the account's mail (and its password
    /// resets) elsewhere.
    password: String,
}

/// Change the account's address
///
/// With mail on (202), the new address gets a link and the old one a
/// notice; the address changes, verified, when the link is followed. With
/// mail off (204), it changes at once and counts as unverified.
#[utoipa::path(post, path = "/api/me/email", tags = ["accounts", "mail"],
    request_body = EmailChange,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 202, description = "A confirmation link was mailed to the new address"),
        (status = 204, description = "Changed, unverified: this server sends no mail"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The password is wrong, or a cross-site request", body = ErrorBody),
        (status = 409, description = "That is already the account's verified address", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
pub(super) async fn change_email(
    State(s): State<AppState>,
    client: ClientAddr,
    me: SignedIn,
    ApiJson(req): ApiJson<EmailChange>,
) -> Result<StatusCode, ApiError> {
    let email = req.email.trim().to_string();
    super::auth::check_email(&email)?;
    if me.user.email_verified && me.user.email.as_deref() == Some(email.as_str()) {
        return Err(ApiError::Conflict(
            "that is already this account's verified address".into(),
        ));
    }
    super::auth::confirm_password(&s, client, &me, req.password, "password is wrong").await?;
    if s.mailer.is_none() {
        s.db.set_unverified_email(me.user.id, &email).await?;
        tracing::info!(user = %me.user.username, "email address changed (unverified: mail is off)");
        return Ok(StatusCode::NO_CONTENT);
    }
    mail_rate(&s, client, &me.user.username)?;
    queue_change_mail(&s, &me.user, email);
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ResetRequest {
    username: String,
}

// The one lookup is the same for all; the token and the mail are made in
// the background.
/// Mail a password-reset link
///
/// Always 202 when mail is on and the rate allows, whatever the name: the
/// answer, and the time it takes, tell nobody which accounts exist or have
/// an address.
#[utoipa::path(post, path = "/api/auth/password/reset", tags = ["accounts", "mail"],
    request_body = ResetRequest,
    responses((status = 202), (status = 429, body = ErrorBody)))]
pub(super) async fn request_reset(
    State(s): State<AppState>,
    client: ClientAddr,
    ApiJson(req): ApiJson<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    mailer(&s)?;
    mail_rate(&s, client, &req.username)?;
    if let Some(c) = s.db.credentials(&req.username).await? {
        if c.user.deleted_at.is_none() && c.user.email.is_some() {
            queue_mail(&s, &c.user, EmailPurpose::Reset);
        }
    }
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ResetConfirm {
    token: String,
    #[schema(min_length = 8, max_length = 256)]
    new_password: String,
}

/// Set a new password with the mailed token
///
/// Every session of the account ends, and its address counts as verified.
#[utoipa::path(post, path = "/api/auth/password/reset/confirm", tags = ["accounts", "mail"],
    request_body = ResetConfirm,
    responses((status = 204)))]
pub(super) async fn confirm_reset(
    State(s): State<AppState>,
    client: ClientAddr,
    ApiJson(req): ApiJson<ResetConfirm>,
) -> Result<StatusCode, ApiError> {
    mailer(&s)?;
    auth::check_password(&req.new_password)?;
    let token = auth::token_hash(&req.token);
    let bad = || ApiError::BadRequest("token is invalid, used or expired".into());
    // Spent only once the new password is hashed: a busy hasher (503)
    // must not cost the user their token.
    s.db.peek_email_token(&token, EmailPurpose::Reset)
        .await?
        .ok_or_else(bad)?;
    let hash = s
        .limits
        .hasher
        .hash(client.host(), req.new_password)
        .await?;
    let user =
        s.db.take_email_token(&token, EmailPurpose::Reset)
            .await?
            .ok_or_else(bad)?;
    s.db.set_password_hash(user, &hash).await?;
    // Whoever held a session (perhaps the reason for the reset) is out,
    // chat sockets included.
    s.db.delete_sessions(user).await?;
    s.rooms.standings().end_sessions(user, None);
    // The mailbox proved itself: the address is verified too.
    s.db.set_email_verified(user).await?;
    if let Some(u) = s.db.user_by_id(user).await? {
        s.limits.login.forgive(&u.username);
        if let Some(bus) = s.rooms.bus() {
            if let Err(e) = crate::auth::throttle::site::forgive(bus, &u.username).await {
                tracing::warn!("site login throttle: {e}");
            }
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
