//! Accounts over HTTP: register, login, logout, password change; the
//! extractors that find the signed-in user (session cookie or Bearer token),
//! the CSRF rule for cookies, and JSON bodies that fail with `{"error"}`.

use super::admission::Admission;
use super::limits::{here_and_site, throttle_check, throttle_failed};
pub use super::limits::{
    Limits, LIKE_INTERVAL, MAIL_PER_ACCOUNT, MAIL_PER_HOST, SIGNALING_BURST, SIGNALING_PER_SEC,
};
use super::{ApiError, AppState, ErrorBody};
use crate::auth::{self, AuthError, HashError};
use crate::auth::{throttle, MAX_SESSIONS_PER_USER, SESSION_TTL_SECS};
use crate::db::User;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use utoipa::ToSchema;

pub const SESSION_COOKIE: &str = "onair_session";
/// Every JSON body of the API fits in this; larger ones are refused (413).
pub const MAX_JSON_BYTES: usize = 16 * 1024;

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        match e {
            AuthError::Hash(m) => {
                tracing::error!("password hashing failed: {m}");
                ApiError::Unavailable("cannot hash the password now".into())
            }
            e => ApiError::BadRequest(e.to_string()),
        }
    }
}

/// A JSON body that must parse into `T` (with `deny_unknown_fields`); every
/// failure is a 4xx with `{"error": ...}`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(r) => Err(json_rejection(r)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge(format!("body is larger than {MAX_JSON_BYTES} bytes"))
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::UnsupportedMediaType("Content-Type must be application/json".into())
        }
        _ => ApiError::BadRequest(r.body_text()),
    }
}

/// How the request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Cookie,
    Bearer,
}

/// The signed-in user; 401 without a valid session.
pub struct SignedIn {
    pub user: User,
    pub token_hash: String,
    pub via: Via,
}

/// The signed-in user if any; an invalid or expired token counts as none.
pub struct MaybeSignedIn(pub Option<User>);

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Same-origin check for requests that carry the session cookie: the
/// browser's `Origin` (or `Referer`) must name the host the request was sent
/// to, or `Sec-Fetch-Site` must say same-origin. A cross-site form or fetch
/// fails it; Bearer tokens are never sent by a browser on its own, so they
/// are exempt. Reads (GET, HEAD) change nothing and are exempt too.
pub fn same_origin(method: &Method, headers: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site == "same-origin" {
            return true;
        }
    }
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    let Some(origin) = origin else { return false };
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or("");
    authority.eq_ignore_ascii_case(host)
}

/// Sign-up and sign-in carry no session yet, so [`authenticate`] does not
/// guard them: a cross-site page must not make accounts or sessions in a
/// visitor's browser either.
pub(super) fn refuse_cross_site(headers: &HeaderMap) -> Result<(), ApiError> {
    if headers.contains_key(header::ORIGIN) && !same_origin(&Method::POST, headers) {
        return Err(ApiError::Forbidden("cross-site request refused".into()));
    }
    Ok(())
}

/// Finds the user from the Bearer token or the session cookie. `Ok(None)`
/// if the request carries neither; an error for a bad token or a
/// cross-site cookie request.
pub async fn authenticate(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Option<SignedIn>, ApiError> {
    let (token, via) = match (bearer(headers), cookie(headers, SESSION_COOKIE)) {
        (Some(t), _) => (t, Via::Bearer),
        (None, Some(t)) => (t, Via::Cookie),
        (None, None) => return Ok(None),
    };
    if via == Via::Cookie && !same_origin(method, headers) {
        return Err(ApiError::Forbidden(
            "cross-site request refused: send Origin of this site, or use a Bearer token".into(),
        ));
    }
    let token_hash = auth::token_hash(token);
    match state.db.session_user(&token_hash).await? {
        Some(user) => Ok(Some(SignedIn {
            user,
            token_hash,
            via,
        })),
        None => Err(ApiError::Unauthorized(
            "session expired or invalid: sign in again".into(),
        )),
    }
}

/// The user behind a bare token (a WebSocket's `?token=`).
pub async fn user_for_token(state: &AppState, token: &str) -> Result<Option<User>, ApiError> {
    Ok(state.db.session_user(&auth::token_hash(token)).await?)
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(state, &parts.method, &parts.headers)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("sign in first".into()))
    }
}

impl FromRequestParts<AppState> for MaybeSignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match authenticate(state, &parts.method, &parts.headers).await {
            Ok(s) => Ok(MaybeSignedIn(s.map(|s| s.user))),
            Err(ApiError::Unauthorized(_)) => Ok(MaybeSignedIn(None)),
            Err(e) => Err(e),
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/register", post(register))
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/password", post(change_password))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Register {
    /// Also the channel's name. Reserved names (api, hls, admin...) are
    /// refused.
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,31}$")]
    username: String,
    #[schema(min_length = 8, max_length = 256)]
    password: String,
    /// Verified by a mailed link when the server can send mail.
    #[serde(default)]
    email: Option<String>,
    /// An invite's token (from its link): needed with
    /// `--registration invite`; elsewhere it may grant a role.
    #[serde(default)]
    invite: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Registered {
    user: User,
    channel: ChannelName,
}

#[derive(Serialize, ToSchema)]
pub(super) struct ChannelName {
    name: String,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Session {
    /// For `Authorization: Bearer`; the same session is also set as an
    /// HttpOnly cookie.
    pub token: String,
    pub user: User,
}

/// Stored as given, trimmed; only its shape is checked (no mail is sent
/// without SMTP).
pub(super) fn check_email(email: &str) -> Result<(), ApiError> {
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(a, b)| {
            !a.is_empty() && b.contains('.') && !b.starts_with('.') && !b.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest("invalid email address".into()))
    }
}

impl From<HashError> for ApiError {
    fn from(e: HashError) -> ApiError {
        match e {
            HashError::HostBusy => ApiError::TooManyRequests(e.to_string(), 1),
            HashError::Busy => ApiError::Busy(
                e.to_string(),
                crate::auth::hasher::HASH_WAIT.as_secs().max(1),
            ),
            HashError::Failed(m) => {
                tracing::error!("password hashing failed: {m}");
                ApiError::Unavailable("cannot hash the password now".into())
            }
        }
    }
}

/// Seconds for a Retry-After header: at least one.
pub(super) fn retry_secs(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// Create an account and its channel (named after the user)
///
/// New accounts are viewers, or broadcasters with `--open-streaming` or an
/// invite that grants it. `--registration invite` needs an invite;
/// `closed` takes nobody. From a browser, a cross-site request is refused
/// (403).
#[utoipa::path(post, path = "/api/auth/register", tag = "accounts",
    request_body = Register,
    responses(
        (status = 201, body = Registered),
        (status = 403, description = "Registration closed, an invite needed or not valid, or a cross-site request", body = ErrorBody),
        (status = 409, description = "The username is taken", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 429, description = "Too many accounts from this address", body = ErrorBody),
    ))]
pub(super) async fn register(
    State(s): State<AppState>,
    client: super::ClientAddr,
    headers: HeaderMap,
    ApiJson(req): ApiJson<Register>,
) -> Result<Response, ApiError> {
    refuse_cross_site(&headers)?;
    auth::check_username(&req.username)?;
    auth::check_password(&req.password)?;
    let email = req
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    if let Some(e) = email {
        check_email(e)?;
    }
    let host = client.host();
    let here = s.limits.register(host, Instant::now());
    let limit = s.limits.register_rate();
    let verdict = here_and_site(&s, "register", host, here, limit).await;
    verdict.map_err(|wait| {
        ApiError::TooManyRequests(
            "too many accounts registered from this address; try again later".into(),
            retry_secs(wait),
        )
    })?;
    let admission = Admission::check(&s, req.invite.as_deref()).await?;
    if s.db.credentials(&req.username).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "username {:?} is taken",
            req.username
        )));
    }
    let hash = s.limits.hasher.hash(client.host(), req.password).await?;
    let spent = admission.spend(&s).await?;
    let role = spent.role;
    let created =
        s.db.create_user(&req.username, &hash, email, role, false)
            .await;
    let (user, channel) = spent.settle(&s, created, &req.username).await?;
    tracing::info!(user = %user.username, role = role.as_str(), "registered");
    if user.email.is_some() {
        super::email::queue_mail(&s, &user, crate::db::EmailPurpose::Verify);
    }
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            user,
            channel: ChannelName { name: channel.name },
        }),
    )
        .into_response())
}

/// Starts a session for `user`; returns the token and its cookie. Past
/// [`MAX_SESSIONS_PER_USER`] the oldest ends, and what it signed in with it.
pub(super) async fn open_session(s: &AppState, user: &User) -> Result<(String, String), ApiError> {
    let (token, hash) = auth::new_session_token();
    let ended =
        s.db.insert_session(
            &hash,
            user.id,
            crate::chat::unix_secs() + SESSION_TTL_SECS,
            MAX_SESSIONS_PER_USER,
        )
        .await?;
    for old in &ended {
        s.rooms.standings().end_session(user.id, old);
    }
    if !ended.is_empty() {
        crate::metrics::limit_hit("max_sessions_per_user");
    }
    let cookie = session_cookie(&token, SESSION_TTL_SECS, s.secure_cookies);
    Ok((token, cookie))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Login {
    username: String,
    password: String,
}

pub(super) fn session_cookie(token: &str, max_age: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

/// Sign in: sets the HttpOnly session cookie and returns a Bearer token
///
/// Wrong passwords slow down this username from this address, and this
/// address (429 with `Retry-After`); a saturated server answers 429 or 503.
#[utoipa::path(post, path = "/api/auth/login", tag = "accounts",
    request_body = Login,
    responses(
        (status = 200, body = Session, headers(("Set-Cookie" = String, description = "The session cookie"))),
        (status = 401, description = "Unknown user or wrong password", body = ErrorBody),
        (status = 403, description = "Cross-site request", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
pub(super) async fn login(
    State(s): State<AppState>,
    client: super::ClientAddr,
    headers: HeaderMap,
    ApiJson(req): ApiJson<Login>,
) -> Result<Response, ApiError> {
    refuse_cross_site(&headers)?;
    let host = client.host();
    throttle_check(&s, &req.username, host)
        .await
        .map_err(|wait| {
            ApiError::TooManyRequests(
                "too many failed sign-ins: wait before trying again".into(),
                retry_secs(wait),
            )
        })?;
    if req.password.len() > auth::PASSWORD_MAX * 4 {
        return Err(ApiError::BadRequest("password is too long".into()));
    }
    let creds = s.db.credentials(&req.username).await?;
    // Unknown names are checked against a stand-in hash: same work, same
    // time, so the answer does not reveal which names exist.
    let phc = creds.as_ref().map(|c| c.password_hash.clone());
    let ok = s.limits.hasher.verify(host, req.password, phc).await?;
    let creds = match (ok, creds) {
        (true, Some(c)) => c,
        _ => {
            throttle_failed(&s, &req.username, host).await;
            return Err(ApiError::Unauthorized("wrong username or password".into()));
        }
    };
    if creds.user.deleted_at.is_some() {
        return Err(ApiError::Forbidden("this account has been deleted".into()));
    }
    if creds.user.suspended {
        return Err(ApiError::Forbidden("this account is suspended".into()));
    }
    s.limits.login.succeeded(&req.username, host);
    if let Some(bus) = s.rooms.bus() {
        if let Err(e) = throttle::site::succeeded(bus, &req.username, host).await {
            tracing::debug!("site login throttle: {e}");
        }
    }
    let (token, cookie) = open_session(&s, &creds.user).await?;
    tracing::info!(user = %creds.user.username, "signed in");
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(Session {
            token,
            user: creds.user,
        }),
    )
        .into_response())
}

/// End this session
///
/// Chat sockets signed in with it become read-only.
#[utoipa::path(post, path = "/api/auth/logout", tag = "accounts",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn logout(State(s): State<AppState>, me: SignedIn) -> Result<Response, ApiError> {
    s.db.delete_session(&me.token_hash).await?;
    s.rooms.standings().end_session(me.user.id, &me.token_hash);
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, session_cookie("", 0, s.secure_cookies))],
    )
        .into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ChangePassword {
    old_password: String,
    #[schema(min_length = 8, max_length = 256)]
    new_password: String,
}

/// Asks a signed-in user for their password again before a change that
/// could hand the account to whoever holds the session: 403 with `wrong`
/// when it does not match. A stolen session must not become a free
/// password oracle, so misses count against the sign-in throttle.
pub(super) async fn confirm_password(
    s: &AppState,
    client: super::ClientAddr,
    me: &SignedIn,
    password: String,
    wrong: &str,
) -> Result<(), ApiError> {
    if password.len() > auth::PASSWORD_MAX * 4 {
        return Err(ApiError::BadRequest("password is too long".into()));
    }
    let host = client.host();
    throttle_check(s, &me.user.username, host)
        .await
        .map_err(|wait| {
            ApiError::TooManyRequests(
                "too many wrong passwords: wait before trying again".into(),
                retry_secs(wait),
            )
        })?;
    let creds =
        s.db.credentials(&me.user.username)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("sign in again".into()))?;
    if creds.password_hash.is_empty() {
        return recent_sign_in(s, me).await;
    }
    if !s
        .limits
        .hasher
        .verify(host, password, Some(creds.password_hash))
        .await?
    {
        throttle_failed(s, &me.user.username, host).await;
        return Err(ApiError::Forbidden(wrong.into()));
    }
    Ok(())
}

/// A session this young stands in for the password of an account that has
/// none (made through a provider): the person just proved themselves there.
pub const RECENT_SIGN_IN_SECS: i64 = 10 * 60;

async fn recent_sign_in(s: &AppState, me: &SignedIn) -> Result<(), ApiError> {
    let now = crate::chat::unix_secs();
    let fresh = s
        .db
        .sessions(me.user.id)
        .await?
        .iter()
        .any(|(hash, created, _)| *hash == me.token_hash && now - created < RECENT_SIGN_IN_SECS);
    if fresh {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "this account has no password: sign out and in again with your provider, then retry within 10 minutes".into(),
        ))
    }
}

/// Change the password; the account's other sessions end
#[utoipa::path(post, path = "/api/auth/password", tag = "accounts",
    request_body = ChangePassword,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The old password is wrong, or a cross-site request", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
pub(super) async fn change_password(
    State(s): State<AppState>,
    client: super::ClientAddr,
    me: SignedIn,
    ApiJson(req): ApiJson<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    auth::check_password(&req.new_password)?;
    confirm_password(&s, client, &me, req.old_password, "old password is wrong").await?;
    let hash = s
        .limits
        .hasher
        .hash(client.host(), req.new_password)
        .await?;
    s.db.set_password_hash(me.user.id, &hash).await?;
    // Other devices sign in again with the new password, and their chat
    // sockets stop writing now.
    s.db.delete_other_sessions(me.user.id, &me.token_hash)
        .await?;
    s.rooms
        .standings()
        .end_sessions(me.user.id, Some(&me.token_hash));
    Ok(StatusCode::NO_CONTENT)
}
