//! Chat over HTTP: the WebSocket `/ws/CHANNEL`, history, and moderation
//! (delete a message, time out or ban a user, slow mode).

use super::auth::{self, ApiJson, SignedIn};
use super::channels::{channel_or_404, SLOW_MODE_MAX};
use super::openapi::SignedInErrors;
use super::{ApiError, AppState, ClientAddr, ErrorBody};
use crate::chat::{ChatError, ChatMessage, FrameLimit, Member};
use crate::db::{Ban, ChannelInfo, User};
use crate::net::Refused;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Instant;
use utoipa::{IntoParams, ToSchema};

/// Longest frame a client may send; a chat message is far smaller.
const MAX_FRAME: usize = 8 * 1024;
/// The socket's read buffer: a chat frame or two. (tungstenite's default,
/// 128 KiB per socket, would be most of an idle socket's memory.)
const READ_BUFFER: usize = 8 * 1024;
/// Bytes written before a flush is forced, and at most queued unsent: the
/// loop writes one line at a time and waits for it, so a slow reader holds
/// this much and then falls behind in the room (which skips it ahead).
const WRITE_BUFFER: usize = 8 * 1024;
const MAX_WRITE_BUFFER: usize = 64 * 1024;
/// How long a refused client should wait before opening another socket.
const REFUSED_RETRY_SECS: u64 = 5;
/// Longest time-out a moderator can give (7 days).
pub const TIMEOUT_MAX_SECS: i64 = 7 * 24 * 3600;

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> ApiError {
        match e {
            ChatError::Db(e) => ApiError::Db(e),
            ChatError::NoSuchChannel(_) => ApiError::NotFound(e.to_string()),
            ChatError::NotSignedIn | ChatError::SignedOut => ApiError::Unauthorized(e.to_string()),
            ChatError::Banned | ChatError::TimedOut(_) | ChatError::Unverified => {
                ApiError::Forbidden(e.to_string())
            }
            ChatError::RateLimited => ApiError::TooManyRequests(e.to_string(), 1),
            ChatError::SlowMode(s) => ApiError::TooManyRequests(e.to_string(), s as u64),
            ChatError::Unavailable => ApiError::Busy(e.to_string(), 2),
            e => ApiError::BadRequest(e.to_string()),
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ws/{channel}", get(websocket))
        .route("/api/channels/{name}/chat", get(history).post(post_message))
        .route("/api/channels/{name}/chat/{id}", delete(delete_message))
        .route("/api/channels/{name}/bans", post(ban))
        .route("/api/channels/{name}/bans/{username}", delete(unban))
        .route("/api/channels/{name}/slow_mode", post(slow_mode))
}

/// Channel owner, admins and moderators moderate a channel's chat.
pub fn moderates(user: &User, info: &ChannelInfo) -> bool {
    info.owner_id == Some(user.id) || user.role.moderates_everywhere()
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct WsQuery {
    /// A session token (from sign-in), for clients that send no cookie.
    token: Option<String>,
}

/// The chat WebSocket
///
/// Anyone may join and read; a session cookie (same-origin only) or
/// `?token=` lets the client write, for as long as that session lasts.
/// The client sends `{"type":"chat","text":"..."}`; the server sends
/// `chat`, `delete`, `live`, `offline`, `viewers`, `likes`, `slow_mode`,
/// `ban`, `timeout` and `error` objects, one per text frame (see
/// CONTRACT.md). Sockets are capped per client address (429) and in all
/// (503).
#[utoipa::path(get, path = "/ws/{channel}", operation_id = "chat_websocket", tag = "chat",
    params(("channel" = String, Path), WsQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade", body = ErrorBody),
        (status = 401, description = "`token` is invalid or expired", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub(super) async fn websocket(
    State(s): State<AppState>,
    Path(channel): Path<String>,
    Query(q): Query<WsQuery>,
    client: ClientAddr,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let permit = s.limits.chat_sockets.admit(client.0).map_err(|r| match r {
        Refused::HostFull => ApiError::TooManyRequests(
            "too many chat connections from this address".into(),
            REFUSED_RETRY_SECS,
        ),
        Refused::Full => {
            ApiError::Busy("chat is at its connection limit".into(), REFUSED_RETRY_SECS)
        }
    })?;
    channel_or_404(&s, &channel).await?;
    let signed_in = match q.token.as_deref() {
        Some(t) => {
            let session = crate::auth::token_hash(t);
            let user =
                s.db.session_user(&session)
                    .await?
                    .ok_or_else(|| ApiError::Unauthorized("session expired or invalid".into()))?;
            Some((user, session))
        }
        // Cross-site pages may open a WebSocket with the visitor's cookie:
        // checked like a state-changing request, and anonymous if it fails.
        None => match auth::authenticate(&s, &Method::POST, &headers).await {
            Ok(signed) => signed.map(|x| (x.user, x.token_hash)),
            Err(ApiError::Db(e)) => return Err(ApiError::Db(e)),
            Err(_) => None,
        },
    };
    let ws = ws.map_err(|r| ApiError::BadRequest(r.body_text()))?;
    let member = s.rooms.join(&channel, signed_in).await?;
    Ok(ws
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            serve_member(socket, member).await;
            drop(permit);
        }))
}

async fn send_line(socket: &mut WebSocket, line: &str) -> bool {
    socket.send(Message::Text(line.into())).await.is_ok()
}

/// Carries the room to the socket and the socket's messages to the room.
/// Every inbound frame counts against [`FrameLimit`]; a socket over it is
/// closed (1008, policy violation). A member whose session ends gets an
/// error line and stays connected, read-only.
async fn serve_member(mut socket: WebSocket, mut member: Member) {
    for line in member.take_backlog() {
        if !send_line(&mut socket, &line).await {
            return;
        }
    }
    let mut frames = FrameLimit::new(Instant::now());
    let mut sign_out = member.sign_out();
    loop {
        tokio::select! {
            line = member.recv() => {
                let Some(line) = line else { break };
                if !send_line(&mut socket, &line).await {
                    break;
                }
            }
            () = sign_out.wait() => {
                let e = crate::chat::error_line(&ChatError::SignedOut.to_string());
                if !send_line(&mut socket, &e).await {
                    break;
                }
            }
            msg = socket.recv() => {
                let Some(Ok(msg)) = msg else { break };
                if !frames.allow(Instant::now()) {
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: close_code::POLICY,
                            reason: "too many frames: slow down".into(),
                        })))
                        .await;
                    break;
                }
                let text = match msg {
                    Message::Text(t) => t,
                    Message::Binary(_) => {
                        let e = crate::chat::error_line("send JSON text frames");
                        if !send_line(&mut socket, &e).await {
                            break;
                        }
                        continue;
                    }
                    Message::Close(_) => break,
                    _ => continue,
                };
                if let Some(reply) = member.handle(text.as_str()).await {
                    if !send_line(&mut socket, &reply).await {
                        break;
                    }
                }
            }
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct ChatList {
    items: Vec<ChatMessage>,
}

/// The last 50 chat messages, oldest first
#[utoipa::path(get, path = "/api/channels/{name}/chat", operation_id = "chat_history", tag = "chat",
    params(("name" = String, Path)),
    responses((status = 200, body = ChatList), (status = 404, body = ErrorBody)))]
pub(super) async fn history(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ChatList>, ApiError> {
    channel_or_404(&s, &name).await?;
    let mut member = s.rooms.join(&name, None).await?;
    // The backlog holds every event; only the messages are history.
    let items = member
        .take_backlog()
        .iter()
        .filter_map(|l| serde_json::from_str::<ChatMessage>(l).ok())
        .collect();
    Ok(Json(ChatList { items }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PostBody {
    #[schema(max_length = 500)]
    text: String,
}

/// Post a chat message
///
/// For scripts and bots: the WebSocket's rules and limits apply (slow mode,
/// bans, the per-user rate).
#[utoipa::path(post, path = "/api/channels/{name}/chat", tag = "chat",
    params(("name" = String, Path)),
    request_body = PostBody,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, body = ChatMessage),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Banned or timed out", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, description = "Too fast, or slow mode", body = ErrorBody),
    ))]
pub(super) async fn post_message(
    State(s): State<AppState>,
    me: SignedIn,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<PostBody>,
) -> Result<(StatusCode, Json<ChatMessage>), ApiError> {
    let line = s.rooms.post(&name, &me.user, &req.text).await?;
    let message =
        serde_json::from_str(&line).map_err(|e| ApiError::Internal(format!("chat line: {e}")))?;
    Ok((StatusCode::CREATED, Json(message)))
}

/// Delete a message (its author, the channel's owner, moderators)
///
/// Members get a `delete` event.
#[utoipa::path(delete, path = "/api/channels/{name}/chat/{id}", tag = "chat",
    params(("name" = String, Path), ("id" = String, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204),
        SignedInErrors,
    ))]
pub(super) async fn delete_message(
    State(s): State<AppState>,
    me: SignedIn,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let info = channel_or_404(&s, &name).await?;
    let not_found = || ApiError::NotFound(format!("no message {id:?}"));
    let id: i64 = id.parse().map_err(|_| not_found())?;
    s.rooms.flush().await;
    let msg = s.db.chat_message(&name, id).await?.ok_or_else(not_found)?;
    if msg.user_id != me.user.id && !moderates(&me.user, &info) {
        return Err(ApiError::Forbidden(
            "only moderators can delete others' messages".into(),
        ));
    }
    if !s.rooms.delete(&name, id).await? {
        return Err(not_found());
    }
    if msg.user_id != me.user.id {
        let detail = format!("message {id} by {}", msg.username);
        super::admin::record(&s, &me.user, "chat.delete", &name, &detail).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BanBody {
    pub(super) username: String,
    /// A time-out of this many seconds; absent: a ban until lifted.
    #[schema(minimum = 1, maximum = 604800)]
    pub(super) seconds: Option<i64>,
}

/// The ban `seconds` asks for: a time-out of 1 s to a week, or none for
/// a ban until lifted.
pub(super) fn ban_for(seconds: Option<i64>) -> Result<Ban, ApiError> {
    match seconds {
        None => Ok(Ban::Banned),
        Some(secs) if (1..=TIMEOUT_MAX_SECS).contains(&secs) => {
            Ok(Ban::Until(crate::chat::unix_secs() + secs))
        }
        Some(_) => Err(ApiError::BadRequest(format!(
            "seconds must be 1 to {TIMEOUT_MAX_SECS}"
        ))),
    }
}

/// How the audit log names a ban.
pub(super) fn ban_entry(username: &str, seconds: Option<i64>) -> (&'static str, String) {
    match seconds {
        Some(secs) => ("timeout", format!("{username} for {secs} s")),
        None => ("ban", username.to_string()),
    }
}

async fn moderator_of(s: &AppState, me: &SignedIn, name: &str) -> Result<ChannelInfo, ApiError> {
    let info = channel_or_404(s, name).await?;
    if !moderates(&me.user, &info) {
        return Err(ApiError::Forbidden("moderators only".into()));
    }
    Ok(info)
}

/// Ban a user from the chat, or time them out with `seconds` (moderators)
#[utoipa::path(post, path = "/api/channels/{name}/bans", tag = "chat",
    params(("name" = String, Path)),
    request_body = BanBody,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204),
        SignedInErrors,
    ))]
pub(super) async fn ban(
    State(s): State<AppState>,
    me: SignedIn,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<BanBody>,
) -> Result<StatusCode, ApiError> {
    let info = moderator_of(&s, &me, &name).await?;
    let target =
        s.db.credentials(&req.username)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no user named {:?}", req.username)))?
            .user;
    if info.owner_id == Some(target.id) {
        return Err(ApiError::BadRequest("the owner cannot be banned".into()));
    }
    let ban = ban_for(req.seconds)?;
    s.db.set_ban(&name, target.id, ban).await?;
    let (verb, detail) = ban_entry(&target.username, req.seconds);
    super::admin::record(&s, &me.user, &format!("chat.{verb}"), &name, &detail).await;
    s.rooms.announce(
        &name,
        json!({"type": if req.seconds.is_some() { "timeout" } else { "ban" },
               "user": target.username, "seconds": req.seconds}),
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Lift a ban or time-out (moderators)
#[utoipa::path(delete, path = "/api/channels/{name}/bans/{username}", tag = "chat",
    params(("name" = String, Path), ("username" = String, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204),
        SignedInErrors,
    ))]
pub(super) async fn unban(
    State(s): State<AppState>,
    me: SignedIn,
    Path((name, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    moderator_of(&s, &me, &name).await?;
    let target =
        s.db.credentials(&username)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no user named {username:?}")))?
            .user;
    s.db.lift_ban(&name, target.id).await?;
    super::admin::record(&s, &me.user, "chat.unban", &name, &target.username).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SlowModeBody {
    /// Seconds between one user's messages; 0 turns slow mode off.
    #[schema(minimum = 0, maximum = 600)]
    seconds: i64,
}

/// Set chat slow mode (moderators)
#[utoipa::path(post, path = "/api/channels/{name}/slow_mode", tag = "chat",
    params(("name" = String, Path)),
    request_body = SlowModeBody,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204),
        SignedInErrors,
    ))]
pub(super) async fn slow_mode(
    State(s): State<AppState>,
    me: SignedIn,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<SlowModeBody>,
) -> Result<StatusCode, ApiError> {
    moderator_of(&s, &me, &name).await?;
    if !(0..=SLOW_MODE_MAX).contains(&req.seconds) {
        return Err(ApiError::BadRequest(format!(
            "seconds must be 0 to {SLOW_MODE_MAX}"
        )));
    }
    s.db.update_channel(
        &name,
        &crate::db::ChannelPatch {
            slow_mode_secs: Some(req.seconds),
            ..Default::default()
        },
    )
    .await?;
    s.rooms.set_slow_mode(&name, req.seconds);
    let detail = format!("{} s", req.seconds);
    super::admin::record(&s, &me.user, "chat.slow_mode", &name, &detail).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Live state and viewer counts for chat events, channel pages and the
/// directory: this server's (the hub, the SFU, HLS, Icecast, FLV), summed
/// with the other servers' of the site when there are some (see
/// [`crate::hub::census`]).
pub struct HubLive {
    pub hub: std::sync::Arc<crate::hub::Hub>,
    pub sfu: crate::sfu::Sfu,
    pub hls: std::sync::Arc<crate::hls::Hls>,
    pub icecast: std::sync::Arc<crate::icecast::mount::Mounts>,
    pub flv: std::sync::Arc<crate::flv::Flv>,
    pub census: std::sync::Arc<crate::hub::census::Census>,
}

impl HubLive {
    /// WebRTC viewers plus the HLS estimate plus plain (Icecast) listeners
    /// plus HTTP-FLV readers, on this server.
    pub fn local_viewers(&self, channel: &str) -> usize {
        self.sfu.viewers(channel)
            + self.hls.viewers.count(channel)
            + self.icecast.listeners(channel)
            + self.flv.viewers(channel)
    }

    /// This server's live channels and their viewers: its census entry.
    pub fn local(&self) -> std::collections::HashMap<String, usize> {
        self.hub
            .live()
            .iter()
            .map(|s| (s.channel().to_string(), self.local_viewers(s.channel())))
            .collect()
    }
}

impl crate::chat::LiveState for HubLive {
    fn is_live(&self, channel: &str) -> bool {
        self.hub.stream(channel).is_some() || self.census.live(channel) == Some(true)
    }

    /// The site's viewers as last counted, or this server's when the
    /// channel is not in the count yet (or there is no count).
    fn viewers(&self, channel: &str) -> usize {
        self.census
            .viewers(channel)
            .unwrap_or_else(|| self.local_viewers(channel))
    }
}
