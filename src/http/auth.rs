//! Accounts over HTTP: register, login, logout, password change; the
//! extractors that find the signed-in user (session cookie or Bearer token),
//! the CSRF rule for cookies, and JSON bodies that fail with `{"error"}`.

use super::{ApiError, AppState};
use crate::auth::{self, AuthError, LoginThrottle, SESSION_TTL_SECS};
use crate::db::{Role, User};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "onair_session";
/// Every JSON body of the API fits in this; larger ones are refused (413).
pub const MAX_JSON_BYTES: usize = 16 * 1024;
/// Likes: one per user per channel every 10 s, as in the seed system.
pub const LIKE_INTERVAL: Duration = Duration::from_secs(10);

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

/// In-memory limits that are not worth a database round trip.
#[derive(Default)]
pub struct Limits {
    pub login: LoginThrottle,
    likes: Mutex<HashMap<(i64, String), Instant>>,
    signaling: Mutex<HashMap<std::net::IpAddr, crate::chat::limits::TokenBucket>>,
    /// Offers per second per address; `None` is the default.
    offer_rate: Option<f64>,
}

/// WHIP/WHEP offers per client address: a page reload or a player retry
/// is a few; a flood costs the server a peer connection each.
pub const SIGNALING_BURST: u32 = 20;
pub const SIGNALING_PER_SEC: f64 = 5.0;
/// Addresses remembered at once; past it, idle ones are forgotten.
const SIGNALING_ADDRS: usize = 100_000;

impl Limits {
    /// Limits with `per_sec` WHIP/WHEP offers per address (a burst of four
    /// seconds' worth); 0 turns the limit off, for load tests.
    pub fn with_offer_rate(per_sec: f64) -> Limits {
        Limits {
            offer_rate: Some(per_sec),
            ..Default::default()
        }
    }

    /// `Err(retry_after)` when `ip` is over its offer rate.
    pub fn offer(&self, ip: std::net::IpAddr, now: Instant) -> Result<(), Duration> {
        let per_sec = self.offer_rate.unwrap_or(SIGNALING_PER_SEC);
        if per_sec <= 0.0 {
            return Ok(());
        }
        let burst = if self.offer_rate.is_some() {
            (per_sec * 4.0).ceil().max(1.0) as u32
        } else {
            SIGNALING_BURST
        };
        let mut map = self.signaling.lock().expect("signaling limits poisoned");
        if map.len() >= SIGNALING_ADDRS && !map.contains_key(&ip) {
            map.retain(|_, b| !b.is_full(now));
        }
        let bucket = map
            .entry(ip)
            .or_insert_with(|| crate::chat::limits::TokenBucket::with_rate(burst, per_sec, now));
        if bucket.take(now) {
            Ok(())
        } else {
            Err(Duration::from_secs_f64(1.0 / per_sec))
        }
    }

    /// `Err(retry_after)` if `user` liked `channel` less than 10 s ago.
    pub fn like(&self, user: i64, channel: &str, now: Instant) -> Result<(), Duration> {
        let mut map = self.likes.lock().expect("likes poisoned");
        if map.len() > 100_000 {
            map.retain(|_, t| now.duration_since(*t) < LIKE_INTERVAL);
        }
        let key = (user, channel.to_string());
        if let Some(t) = map.get(&key) {
            let since = now.duration_since(*t);
            if since < LIKE_INTERVAL {
                return Err(LIKE_INTERVAL - since);
            }
        }
        map.insert(key, now);
        Ok(())
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

fn bearer(headers: &HeaderMap) -> Option<&str> {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Register {
    username: String,
    password: String,
    #[serde(default)]
    email: Option<String>,
}

/// Stored as given, trimmed; only its shape is checked (no mail is sent
/// without SMTP).
fn check_email(email: &str) -> Result<(), ApiError> {
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

async fn register(
    State(s): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<Register>,
) -> Result<Response, ApiError> {
    // A cross-site page must not create accounts in a visitor's name either.
    if headers.contains_key(header::ORIGIN) && !same_origin(&Method::POST, &headers) {
        return Err(ApiError::Forbidden("cross-site request refused".into()));
    }
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
    if s.db.credentials(&req.username).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "username {:?} is taken",
            req.username
        )));
    }
    let hash = auth::hash_password_blocking(req.password).await?;
    let (user, channel) =
        s.db.create_user(&req.username, &hash, email, Role::Viewer, false)
            .await
            .map_err(|e| match e {
                crate::db::DbError::Conflict(_) => {
                    ApiError::Conflict(format!("username {:?} is taken", req.username))
                }
                e => e.into(),
            })?;
    tracing::info!(user = %user.username, "registered");
    if let (Some(mailer), Some(_)) = (s.mailer.clone(), &user.email) {
        let (s2, u2) = (s.clone(), user.clone());
        tokio::spawn(async move {
            let purpose = crate::db::EmailPurpose::Verify;
            if let Err(e) = super::email::mail_token(&s2, &mailer, &u2, purpose).await {
                tracing::warn!(user = %u2.username, "verification mail failed: {e}");
            }
        });
    }
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "user": user,
            "channel": { "name": channel.name },
        })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    username: String,
    password: String,
}

fn session_cookie(token: &str, max_age: i64) -> String {
    format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}")
}

async fn login(
    State(s): State<AppState>,
    client: super::ClientAddr,
    headers: HeaderMap,
    ApiJson(req): ApiJson<Login>,
) -> Result<Response, ApiError> {
    if headers.contains_key(header::ORIGIN) && !same_origin(&Method::POST, &headers) {
        return Err(ApiError::Forbidden("cross-site request refused".into()));
    }
    let now = Instant::now();
    let user_key = format!("user:{}", req.username);
    let ip_key = Some(format!("ip:{}", client.host()));
    for key in std::iter::once(&user_key).chain(ip_key.as_ref()) {
        if let Some(wait) = s.limits.login.check(key, now) {
            return Err(ApiError::TooManyRequests(
                "too many failed logins: try again later".into(),
                wait.as_secs().max(1),
            ));
        }
    }
    if req.password.len() > auth::PASSWORD_MAX * 4 {
        return Err(ApiError::BadRequest("password is too long".into()));
    }
    let creds = s.db.credentials(&req.username).await?;
    let ok = match &creds {
        Some(c) => auth::verify_password_blocking(req.password, c.password_hash.clone()).await,
        None => {
            // Same work for unknown names, so timing does not reveal them.
            let _ = auth::hash_password_blocking(req.password).await;
            false
        }
    };
    let creds = match (ok, creds) {
        (true, Some(c)) => c,
        _ => {
            s.limits.login.failed(&user_key, now);
            if let Some(k) = &ip_key {
                s.limits.login.failed(k, now);
            }
            return Err(ApiError::Unauthorized("wrong username or password".into()));
        }
    };
    if creds.user.deleted_at.is_some() {
        return Err(ApiError::Forbidden("this account has been deleted".into()));
    }
    s.limits.login.succeeded(&user_key);
    let (token, hash) = auth::new_session_token();
    s.db.insert_session(
        &hash,
        creds.user.id,
        crate::chat::unix_secs() + SESSION_TTL_SECS,
    )
    .await?;
    tracing::info!(user = %creds.user.username, "signed in");
    Ok((
        [(header::SET_COOKIE, session_cookie(&token, SESSION_TTL_SECS))],
        Json(serde_json::json!({ "token": token, "user": creds.user })),
    )
        .into_response())
}

async fn logout(State(s): State<AppState>, me: SignedIn) -> Result<Response, ApiError> {
    s.db.delete_session(&me.token_hash).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, session_cookie("", 0))],
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePassword {
    old_password: String,
    new_password: String,
}

async fn change_password(
    State(s): State<AppState>,
    me: SignedIn,
    ApiJson(req): ApiJson<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    auth::check_password(&req.new_password)?;
    let creds =
        s.db.credentials(&me.user.username)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("sign in again".into()))?;
    if !auth::verify_password_blocking(req.old_password, creds.password_hash).await {
        return Err(ApiError::Forbidden("old password is wrong".into()));
    }
    let hash = auth::hash_password_blocking(req.new_password).await?;
    s.db.set_password_hash(me.user.id, &hash).await?;
    // Other devices sign in again with the new password.
    s.db.delete_other_sessions(me.user.id, &me.token_hash)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
