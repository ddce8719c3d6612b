//! "Sign in with ..." over OpenID Connect: the browser leaves for the
//! provider from `/auth/oidc/ID/start` and comes back to
//! `/auth/oidc/ID/callback`. The state is single-use and bound to the
//! browser that started (a cookie); PKCE and the nonce bind the code and
//! the ID token to this sign-in.
//!
//! Who comes back is, in order: the account the identity is linked to; the
//! account the signed-in user is linking it to; the one account whose
//! verified address the provider vouches for as verified too; or someone new,
//! who picks a username on `/oidc/signup`. An address the provider does not
//! vouch for never reaches an existing account.

use super::admission::Admission;
use super::auth::{open_session, ApiJson, SignedIn};
use super::{ApiError, AppState, ErrorBody};
use crate::auth::oidc::{
    local_path, random_token, suggest_username, Flow, FlowError, PendingSignup,
};
use crate::auth::oidc_provider::{Person, ProviderError, Providers};
use crate::db::{NewIdentity, NewUser, User};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::time::Instant;
use utoipa::ToSchema;

const STATE_COOKIE: &str = "onair_oidc";

/// The configured providers and the sign-ins in flight.
pub struct Oidc {
    pub providers: Providers,
    pub flows: crate::auth::oidc::Flows,
}

impl Oidc {
    pub fn new(specs: Vec<crate::auth::oidc::ProviderSpec>) -> Oidc {
        Oidc {
            providers: Providers::new(specs),
            flows: Default::default(),
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/providers", get(list))
        .route("/api/auth/providers/{id}/link", post(link))
        .route("/api/auth/providers/signup", post(signup))
        .route("/api/me/identities", get(identities))
        .route("/api/me/identities/{id}", delete(unlink))
        .route("/auth/oidc/{id}/start", get(start))
        .route("/auth/oidc/{id}/callback", get(callback))
}

#[derive(Serialize, ToSchema)]
pub(super) struct ProviderInfo {
    /// In `/auth/oidc/{id}/start`.
    id: String,
    /// For the button: "Sign in with {name}".
    name: String,
}

#[derive(Serialize, ToSchema)]
pub(super) struct ProviderList {
    providers: Vec<ProviderInfo>,
}

/// The sign-in providers configured (`--oidc-provider`)
#[utoipa::path(get, path = "/api/auth/providers", tag = "providers",
    responses((status = 200, body = ProviderList)))]
pub(super) async fn list(State(s): State<AppState>) -> Json<ProviderList> {
    Json(ProviderList {
        providers: s
            .oidc
            .providers
            .specs()
            .map(|p| ProviderInfo {
                id: p.id.clone(),
                name: p.name.clone(),
            })
            .collect(),
    })
}

/// Sign-ins one browser may have in flight at once (two tabs, a retry
/// after the provider's page was closed): the state cookie holds each
/// one's state, newest first, so finishing one does not void the others.
const STATES_PER_BROWSER: usize = 4;

/// The states in the browser's state cookie, newest first.
fn pending_states(headers: &HeaderMap) -> Vec<&str> {
    super::auth::cookie(headers, STATE_COOKIE)
        .map(|c| {
            c.split('.')
                .filter(|s| !s.is_empty())
                .take(STATES_PER_BROWSER)
                .collect()
        })
        .unwrap_or_default()
}

/// The state cookie holding `states`, or clearing it when there are none.
fn states_cookie(states: &[&str], secure: bool) -> String {
    match states {
        [] => state_cookie("", 0, secure),
        _ => state_cookie(
            &states.join("."),
            crate::auth::oidc::FLOW_TTL.as_secs(),
            secure,
        ),
    }
}

fn state_cookie(value: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    // Lax: the provider sends the browser back with a top-level GET, which
    // carries it; Strict would not.
    format!("{STATE_COOKIE}={value}; Path=/auth/oidc; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
}

impl From<FlowError> for ApiError {
    fn from(e: FlowError) -> ApiError {
        match e {
            FlowError::Full => ApiError::Busy(e.to_string(), 60),
            FlowError::RateLimited(wait) => {
                ApiError::TooManyRequests(e.to_string(), super::auth::retry_secs(wait))
            }
        }
    }
}

impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> ApiError {
        match e {
            ProviderError::Unknown => ApiError::NotFound(e.to_string()),
            e => ApiError::Unavailable(e.to_string()),
        }
    }
}

/// Begins a sign-in: the provider's URL, and the state cookie to set.
async fn begin(
    s: &AppState,
    host: std::net::IpAddr,
    id: &str,
    uri: &Uri,
    headers: &HeaderMap,
    link_user: Option<i64>,
    next: String,
) -> Result<(String, String), ApiError> {
    if s.oidc.providers.spec(id).is_none() {
        return Err(ProviderError::Unknown.into());
    }
    s.oidc.flows.admit(host, Instant::now())?;
    let origin = super::web::site_origin(s, uri, headers)
        .ok_or_else(|| ApiError::BadRequest("no usable Host header".into()))?;
    let redirect_uri = format!("{origin}/auth/oidc/{id}/callback");
    let state = random_token();
    let (url, flow) = s
        .oidc
        .providers
        .authorize(id, &state, redirect_uri, link_user, next)
        .await?;
    s.oidc.flows.remember(&state, flow, Instant::now())?;
    let mut states = vec![state.as_str()];
    states.extend(
        pending_states(headers)
            .into_iter()
            .take(STATES_PER_BROWSER - 1),
    );
    Ok((url, states_cookie(&states, s.secure_cookies)))
}

#[derive(Deserialize)]
pub(super) struct StartQuery {
    next: Option<String>,
}

/// Sign in with a provider: redirects there
#[utoipa::path(get, path = "/auth/oidc/{id}/start", tag = "providers",
    params(("id" = String, Path), ("next" = Option<String>, Query, description = "A path on this site to land on")),
    responses(
        (status = 303, description = "To the provider"),
        (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, description = "The provider cannot be reached", body = ErrorBody),
    ))]
pub(super) async fn start(
    State(s): State<AppState>,
    client: super::ClientAddr,
    Path(id): Path<String>,
    Query(q): Query<StartQuery>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let next = local_path(q.next.as_deref());
    let (url, cookie) = begin(&s, client.host(), &id, &uri, &headers, None, next).await?;
    Ok(see_other(&url, Some(cookie)))
}

#[derive(Serialize, ToSchema)]
pub(super) struct LinkStart {
    /// Send the browser here (the provider).
    url: String,
}

/// Link a provider to this account: gives the provider URL to go to
///
/// After the provider, the browser returns to `/dashboard` with the
/// identity linked; later it signs in to this account.
#[utoipa::path(post, path = "/api/auth/providers/{id}/link", tag = "providers",
    params(("id" = String, Path)),
    security(("cookie" = [])),
    responses(
        (status = 200, body = LinkStart, headers(("Set-Cookie" = String, description = "Binds the sign-in to this browser"))),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub(super) async fn link(
    State(s): State<AppState>,
    client: super::ClientAddr,
    me: SignedIn,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let next = "/dashboard".to_string();
    let (url, cookie) = begin(
        &s,
        client.host(),
        &id,
        &uri,
        &headers,
        Some(me.user.id),
        next,
    )
    .await?;
    Ok(([(header::SET_COOKIE, cookie)], Json(LinkStart { url })).into_response())
}

fn see_other(location: &str, cookie: Option<String>) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = location.parse() {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(c) = cookie.and_then(|c| c.parse().ok()) {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

/// Back to the sign-in page with a reason, in the fragment (never logged).
fn failed(why: &str) -> Response {
    tracing::info!("OIDC sign-in refused: {why}");
    let why: String = openidconnect::url::form_urlencoded::byte_serialize(why.as_bytes()).collect();
    see_other(&format!("/login#oidc-error={why}"), None)
}

#[derive(Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Where the provider sends the browser back
#[utoipa::path(get, path = "/auth/oidc/{id}/callback", tag = "providers",
    params(("id" = String, Path)),
    responses((status = 303, description = "Signed in (to `next`), to `/oidc/signup` to pick a username, or to `/login` with the reason it failed")))]
pub(super) async fn callback(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<CallbackQuery>,
    headers: HeaderMap,
) -> Response {
    let mut r = finish(&s, &id, &q, &headers).await;
    // Whatever the outcome, this state is spent and the browser's other
    // sign-ins in flight stay.
    let rest: Vec<&str> = pending_states(&headers)
        .into_iter()
        .filter(|p| Some(*p) != q.state.as_deref())
        .collect();
    let h = r.headers_mut();
    let others: Vec<axum::http::HeaderValue> = h
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| !v.as_bytes().starts_with(STATE_COOKIE.as_bytes()))
        .cloned()
        .collect();
    h.remove(header::SET_COOKIE);
    for v in others {
        h.append(header::SET_COOKIE, v);
    }
    if let Ok(v) = states_cookie(&rest, s.secure_cookies).parse() {
        h.append(header::SET_COOKIE, v);
    }
    r
}

async fn finish(s: &AppState, id: &str, q: &CallbackQuery, headers: &HeaderMap) -> Response {
    let Some(state) = q.state.as_deref() else {
        return failed("the provider sent no state");
    };
    // Single-use: whatever happens next, this state is spent.
    let flow = s.oidc.flows.finish(state, Instant::now());
    let bound = pending_states(headers).into_iter().any(|c| {
        bool::from(subtle::ConstantTimeEq::ct_eq(
            c.as_bytes(),
            state.as_bytes(),
        ))
    });
    let flow = match flow {
        Some(f) if bound && f.provider == id => f,
        Some(_) => return failed("this sign-in was started in another browser; start again"),
        None => return failed("this sign-in is unknown, used or expired; start again"),
    };
    if let Some(e) = q.error.as_deref() {
        let detail = q.error_description.as_deref().unwrap_or("");
        let detail: String = detail.chars().take(200).collect();
        return failed(&format!("the provider said {e}: {detail}"));
    }
    let Some(code) = q
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 4096)
    else {
        return failed("the provider sent no code");
    };
    let person = match s.oidc.providers.exchange(&flow, code).await {
        Ok(p) => p,
        Err(e) => return failed(&e.to_string()),
    };
    match arrive(s, &flow, person).await {
        Ok(r) => r,
        Err(e @ (ApiError::Internal(_) | ApiError::Db(_))) => {
            tracing::error!("OIDC sign-in: {e}");
            failed("the server could not finish the sign-in; try again")
        }
        Err(e) => failed(&e.to_string()),
    }
}

fn provider_name(s: &AppState, id: &str) -> String {
    s.oidc
        .providers
        .spec(id)
        .map_or_else(|| id.to_string(), |p| p.name.clone())
}

/// Signs `user` in and lands on `next`, if the account may sign in.
async fn sign_in(s: &AppState, user: &User, next: &str) -> Result<Response, ApiError> {
    if user.deleted_at.is_some() {
        return Err(ApiError::Forbidden("this account has been deleted".into()));
    }
    if user.suspended {
        return Err(ApiError::Forbidden("this account is suspended".into()));
    }
    let (_, cookie) = open_session(s, user).await?;
    tracing::info!(user = %user.username, "signed in with a provider");
    Ok(see_other(next, Some(cookie)))
}

async fn arrive(s: &AppState, flow: &Flow, person: Person) -> Result<Response, ApiError> {
    let name = provider_name(s, &flow.provider);
    let identity = NewIdentity {
        provider: &flow.provider,
        subject: &person.subject,
        email: person.email.as_deref(),
    };
    let owner = s.db.identity_user(&flow.provider, &person.subject).await?;
    if let Some(me) = flow.link_user {
        return match owner {
            Some(u) if u.id == me => Ok(see_other(&flow.next, None)),
            Some(_) => Err(ApiError::Conflict(format!(
                "this {name} account is linked to another user here"
            ))),
            None => {
                s.db.link_identity(me, identity)
                    .await
                    .map_err(|e| match e {
                        crate::db::DbError::Conflict(_) => ApiError::Conflict(format!(
                        "your account is linked to another {name} account already; unlink it first"
                    )),
                        e => e.into(),
                    })?;
                Ok(see_other(&flow.next, None))
            }
        };
    }
    if let Some(user) = owner {
        return sign_in(s, &user, &flow.next).await;
    }
    if let (Some(email), true) = (person.email.as_deref(), person.email_verified) {
        if let Some(user) = s.db.user_by_verified_email(email).await? {
            if user.deleted_at.is_none() && !user.suspended {
                s.db.link_identity(user.id, identity).await?;
                tracing::info!(user = %user.username, provider = %flow.provider, "identity linked by verified email");
            }
            return sign_in(s, &user, &flow.next).await;
        }
    }
    if s.signup.registration == crate::auth::Registration::Closed {
        return Err(ApiError::Forbidden(format!(
            "no account here is linked to this {name} account, and registration is closed"
        )));
    }
    let suggest = suggest_username(
        person.preferred_username.as_deref(),
        person.email.as_deref(),
    );
    let token = s.oidc.flows.pend(
        PendingSignup {
            provider: flow.provider.clone(),
            subject: person.subject,
            email: person.email,
            email_verified: person.email_verified,
            next: flow.next.clone(),
        },
        Instant::now(),
    )?;
    let enc = |v: &str| -> String {
        openidconnect::url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
    };
    Ok(see_other(
        &format!(
            "/oidc/signup#token={token}&provider={}&name={}",
            enc(&flow.provider),
            enc(&suggest)
        ),
        None,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ProviderSignup {
    /// From the `/oidc/signup` link's fragment.
    token: String,
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,31}$")]
    username: String,
    /// Needed with `--registration invite`.
    #[serde(default)]
    invite: Option<String>,
}

/// Finish a sign-up through a provider: make the account with a username
///
/// The account has no password (the provider signs in to it); the email is
/// the provider's, verified when the provider says so.
#[utoipa::path(post, path = "/api/auth/providers/signup", tag = "providers",
    request_body = ProviderSignup,
    responses(
        (status = 201, body = super::auth::Session, headers(("Set-Cookie" = String, description = "The session cookie"))),
        (status = 400, body = ErrorBody),
        (status = 403, description = "Expired sign-up, registration closed or an invite needed, or a cross-site request", body = ErrorBody),
        (status = 409, description = "The username is taken, or this identity has an account", body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
pub(super) async fn signup(
    State(s): State<AppState>,
    client: super::ClientAddr,
    headers: HeaderMap,
    ApiJson(req): ApiJson<ProviderSignup>,
) -> Result<Response, ApiError> {
    super::auth::refuse_cross_site(&headers)?;
    let now = Instant::now();
    let pending = s.oidc.flows.pending(&req.token, now).ok_or_else(|| {
        ApiError::Forbidden(
            "this sign-up expired or is unknown: sign in with the provider again".into(),
        )
    })?;
    crate::auth::check_username(&req.username)?;
    s.limits.register(client.host(), now).map_err(|wait| {
        ApiError::TooManyRequests(
            "too many accounts registered from this address; try again later".into(),
            super::auth::retry_secs(wait),
        )
    })?;
    let admission = Admission::check(&s, req.invite.as_deref()).await?;
    let spent = admission.spend(&s).await?;
    let role = spent.role;
    let created =
        s.db.create_user_with(NewUser {
            username: &req.username,
            password_hash: "",
            email: pending.email.as_deref(),
            email_verified: pending.email_verified,
            role,
            adopt_channel: false,
            identity: Some(NewIdentity {
                provider: &pending.provider,
                subject: &pending.subject,
                email: pending.email.as_deref(),
            }),
        })
        .await;
    let (user, _) = spent.settle(&s, created, &req.username).await?;
    s.oidc.flows.signed_up(&req.token, now);
    tracing::info!(user = %user.username, provider = %pending.provider, role = role.as_str(), "registered with a provider");
    let (token, cookie) = open_session(&s, &user).await?;
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie)],
        Json(super::auth::Session { token, user }),
    )
        .into_response())
}

#[derive(Serialize, ToSchema)]
pub(super) struct LinkedIdentity {
    /// The provider's id.
    provider: String,
    /// Its display name.
    name: String,
    /// The address the provider gave when it was linked.
    email: Option<String>,
    /// Unix seconds.
    linked_at: i64,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Identities {
    identities: Vec<LinkedIdentity>,
    /// Whether a password signs in too (accounts made through a provider
    /// have none until one is set).
    password: bool,
}

/// The providers linked to this account
#[utoipa::path(get, path = "/api/me/identities", tag = "providers",
    security(("bearer" = []), ("cookie" = [])),
    responses((status = 200, body = Identities), (status = 401, body = ErrorBody)))]
pub(super) async fn identities(
    State(s): State<AppState>,
    me: SignedIn,
) -> Result<Json<Identities>, ApiError> {
    let list = s.db.identities(me.user.id).await?;
    Ok(Json(Identities {
        identities: list
            .into_iter()
            .map(|i| LinkedIdentity {
                name: provider_name(&s, &i.provider),
                provider: i.provider,
                email: i.email,
                linked_at: i.linked_at,
            })
            .collect(),
        password: s.db.has_password(me.user.id).await?,
    }))
}

/// Unlink a provider from this account
///
/// Refused (409) when it is the only way left to sign in: set a password
/// first.
#[utoipa::path(delete, path = "/api/me/identities/{id}", tag = "providers",
    params(("id" = String, Path, description = "The provider's id")),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The last way to sign in", body = ErrorBody),
    ))]
pub(super) async fn unlink(
    State(s): State<AppState>,
    me: SignedIn,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let linked = s.db.identities(me.user.id).await?;
    if !linked.iter().any(|i| i.provider == id) {
        return Err(ApiError::NotFound("no such provider linked".into()));
    }
    if linked.len() == 1 && !s.db.has_password(me.user.id).await? {
        return Err(ApiError::Conflict(
            "this is your only way to sign in: set a password first".into(),
        ));
    }
    s.db.unlink_identity(me.user.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
