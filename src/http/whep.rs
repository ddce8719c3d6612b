//! WHEP (draft-ietf-wish-whep): `POST /whep/CHANNEL` with an offer, then
//! `PATCH` and `DELETE` on the session it creates.

use super::{ApiError, AppState, ErrorBody};
use crate::hub::Channels;
use crate::sfu::sdp::{self, MAX_OFFER_BYTES};
use crate::sfu::{ChatTap, DataChannelEvent, WhepSession};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/whep/{channel}", post(offer))
        .route("/whep/{channel}/{session}", patch(trickle).delete(end))
        .layer(DefaultBodyLimit::max(MAX_OFFER_BYTES))
}

/// The answer to a WHIP or WHEP offer.
// Never built: utoipa reads its variants for the document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(super) enum OfferAnswered {
    #[response(
        status = 201,
        description = "The SDP answer; `Location` is the session's URL, for PATCH and DELETE",
        content_type = "application/sdp",
        headers(
            ("Location" = String, description = "The session's URL"),
            ("ETag" = String, description = "The session's entity tag, for If-Match"),
            ("Link" = String, description = "ICE servers (RFC 9725 4.6), one header each"),
        )
    )]
    Created(String),
}

/// What refuses any WHIP or WHEP offer, whoever sends it.
// Never built: utoipa reads its variants for the document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(super) enum OfferRefused {
    #[response(status = 406, description = "No codec in common")]
    NoCommonCodec(ErrorBody),
    #[response(status = 413, description = "The offer is too large")]
    TooLarge(ErrorBody),
    #[response(status = 415, description = "Content-Type is not application/sdp")]
    NotSdp(ErrorBody),
    #[response(
        status = 429,
        description = "Too many offers from this address (Retry-After)"
    )]
    TooMany(ErrorBody),
    #[response(status = 503, description = "The server is full (Retry-After)")]
    Full(ErrorBody),
}

/// The answers to a trickle-ICE PATCH on a WHIP or WHEP session.
// Never built: utoipa reads its variants for the document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(super) enum TrickleAnswers {
    #[response(status = 204, description = "The candidates are added")]
    Added,
    #[response(status = 400, description = "Not an SDP fragment we can read")]
    Bad(ErrorBody),
    #[response(status = 404, description = "No such session")]
    NoSession(ErrorBody),
    #[response(status = 412, description = "If-Match names another session")]
    OtherSession(ErrorBody),
    #[response(
        status = 415,
        description = "Content-Type is not application/trickle-ice-sdpfrag"
    )]
    NotFragment(ErrorBody),
    #[response(
        status = 422,
        description = "An ICE restart (If-Match: *): start a new session instead"
    )]
    Restart(ErrorBody),
}

pub(super) fn body_text(body: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!("body is larger than {MAX_OFFER_BYTES} bytes"))
        } else {
            ApiError::BadRequest(format!("cannot read body: {r}"))
        }
    })?;
    String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::BadRequest("body is not UTF-8 text".into()))
}

pub(super) fn require_type(headers: &HeaderMap, want: &str) -> Result<(), ApiError> {
    let got = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let base = got.split(';').next().unwrap_or("").trim();
    if base.eq_ignore_ascii_case(want) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type must be {want}, not {got:?}"
        )))
    }
}

/// WHEP: watch a channel over WebRTC
///
/// The answer's session also carries the chat on a data channel; a
/// signed-in viewer (cookie or Bearer) may write there.
#[utoipa::path(post, path = "/whep/{channel}", operation_id = "whep_offer", tag = "webrtc",
    params(("channel" = String, Path), OfferQuery),
    request_body(content = String, content_type = "application/sdp", description = "The SDP offer"),
    responses(
        OfferAnswered,
        (status = 307, description = "The channel is live on another server of the site (`--redis-url`), or this one is full and another has room: send the same offer to `Location`"),
        (status = 400, description = "Not an offer we can read", body = ErrorBody),
        (status = 403, description = "An `x-onair-node` header that is not the site's node token", body = ErrorBody),
        (status = 404, description = "No such channel", body = ErrorBody),
        OfferRefused,
    ))]
pub(super) async fn offer(
    State(s): State<AppState>,
    Path(channel): Path<String>,
    Query(query): Query<OfferQuery>,
    client: super::ClientAddr,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    if let Some(token) = headers.get(crate::edge::NODE_TOKEN_HEADER) {
        return relay(&s, &channel, token.as_bytes(), &headers, body, client).await;
    }
    rate_limit(&s, client).await?;
    let text = body_text(body)?;
    if !s.db.exists(&channel).await? {
        return Err(ApiError::NotFound(format!("no channel named {channel:?}")));
    }
    require_type(&headers, "application/sdp")?;
    // An edge serves every channel itself, pulling it; other servers send
    // the viewer to the one it is live on.
    if s.edge.is_none() {
        if let Some(there) = live_elsewhere(&s, &channel).await {
            return Ok(redirect(&s, &there, &channel, &headers).await);
        }
    }
    if let Some(edge) = &s.edge {
        // A pull starts only for an offer that can be served here: one
        // that reads, on an edge with room.
        crate::sfu::sdp::read_offer(&text)
            .map_err(|e| crate::sfu::SfuError::BadOffer(e.to_string()))?;
        if !s.sfu.has_room() || !edge.want(&channel) {
            return elsewhere(&s, &channel, &headers).await;
        }
        if let Some(there) = edge.ready(&channel).await {
            return Ok(redirect(&s, &there, &channel, &headers).await);
        }
    }
    let (chat, bridge) = chat_for(&s, &channel, &headers, query.ticket.as_deref()).await?;
    let answer = match s.sfu.whep(&channel, text, chat).await {
        Err(crate::sfu::SfuError::Busy) => return elsewhere(&s, &channel, &headers).await,
        r => r?,
    };
    if let Some((member, events)) = bridge {
        tokio::spawn(bridge_chat(
            member,
            events,
            s.sfu.clone(),
            answer.session.clone(),
        ));
    }
    let location = format!(
        "{}/whep/{channel}/{}",
        s.node_url.as_deref().unwrap_or(""),
        answer.session
    );
    Ok(created(&s, answer, location, "viewer", client))
}

/// Full here: a 307 to another server of the site with room, if any; else
/// 503 with `Retry-After`.
async fn elsewhere(s: &AppState, channel: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let me = s.node_url.as_deref().unwrap_or("");
    match s.census.room_elsewhere(channel, me) {
        Some(there) => Ok(redirect(s, &there, channel, headers).await),
        None => Err(crate::sfu::SfuError::Busy.into()),
    }
}

/// What a WHEP offer's URL may carry.
#[derive(serde::Deserialize, utoipa::IntoParams)]
pub(super) struct OfferQuery {
    /// Who the viewer is, from the server of the site that redirected the
    /// offer here (see [`crate::auth::ticket`]): their chat identity on the
    /// data channel, where their cookie does not reach.
    ticket: Option<String>,
}

/// The same offer, to be sent to `node` (307 keeps the method and body);
/// the session is that server's, and PATCH and DELETE go to it. A
/// signed-in viewer's redirect carries a ticket, so they chat as
/// themselves there.
async fn redirect(s: &AppState, node: &str, channel: &str, headers: &HeaderMap) -> Response {
    let mut to = format!("{node}/whep/{channel}");
    let signed_in = super::authenticate(s, &Method::POST, headers).await;
    if let (Ok(Some(me)), Some(bus)) = (signed_in, s.rooms.bus()) {
        if let Ok(key) = bus.node_token().await {
            let ticket = crate::auth::ticket::issue(key.as_bytes(), &me.token_hash, unix_now());
            to = format!("{to}?ticket={ticket}");
        }
    }
    (
        StatusCode::TEMPORARY_REDIRECT,
        [
            (header::LOCATION, to),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
    )
        .into_response()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The signed-in user a ticket names, if it is good and their session
/// still is.
async fn ticket_user(
    s: &AppState,
    ticket: &str,
) -> Result<Option<(crate::db::User, String)>, ApiError> {
    let Some(bus) = s.rooms.bus() else {
        return Ok(None);
    };
    let Ok(key) = bus.node_token().await else {
        return Ok(None);
    };
    let Some(session) = crate::auth::ticket::redeem(key.as_bytes(), ticket, unix_now()) else {
        return Ok(None);
    };
    Ok(s.db.session_user(&session).await?.map(|u| (u, session)))
}

/// An offer from another server of the site pulling `channel` (an edge),
/// shown by the site's node token: served as one stream to that server,
/// not counted, not rate-limited, not refused by `--max-viewers`. A wrong
/// token is 403, and without Redis there is no site to belong to.
async fn relay(
    s: &AppState,
    channel: &str,
    token: &[u8],
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    client: super::ClientAddr,
) -> Result<Response, ApiError> {
    let forbidden = || ApiError::Forbidden("not a server of this site".into());
    let bus = s.rooms.bus().ok_or_else(forbidden)?;
    let want = bus
        .node_token()
        .await
        .map_err(|e| ApiError::Unavailable(format!("cannot check the node token: {e}")))?;
    if !bool::from(subtle::ConstantTimeEq::ct_eq(token, want.as_bytes())) {
        rate_limit(s, client).await?;
        return Err(forbidden());
    }
    let text = body_text(body)?;
    require_type(headers, "application/sdp")?;
    if !crate::db::valid_channel_name(channel) {
        return Err(ApiError::NotFound(format!("no channel named {channel:?}")));
    }
    let answer = s.sfu.whep_relay(channel, text).await?;
    let location = format!(
        "{}/whep/{channel}/{}",
        s.node_url.as_deref().unwrap_or(""),
        answer.session
    );
    Ok(created(s, answer, location, "viewer", client))
}

/// The URL of the server of the site `channel` is live on, when it is not
/// published here (see [`crate::hub::lease`]; a stream an edge relays is
/// the origin's publish).
pub(super) async fn live_elsewhere(s: &AppState, channel: &str) -> Option<String> {
    let bus = s.rooms.bus()?;
    let here = s
        .hub
        .stream(channel)
        .is_some_and(|st| st.source() != crate::hub::Source::Relay);
    if !crate::db::valid_channel_name(channel) || here {
        return None;
    }
    crate::hub::lease::where_live(bus, s.db.node_id(), channel).await
}

/// The 201 to a WHEP or WHIP offer: the answer, the session's URL (what
/// PATCH and DELETE address) and the ICE servers for `role` at `client` as
/// Link headers.
pub(super) fn created(
    s: &AppState,
    answer: WhepSession,
    location: String,
    role: &str,
    client: super::ClientAddr,
) -> Response {
    let mut response = (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_string()),
            (header::LOCATION, location),
            (header::ETAG, format!("\"{}\"", answer.session)),
        ],
        answer.sdp,
    )
        .into_response();
    for link in super::ice::link_headers(s, &super::ice::turn_user(role, client)) {
        if let Ok(v) = axum::http::HeaderValue::from_str(&link) {
            response.headers_mut().append(header::LINK, v);
        }
    }
    response
}

/// Trickle ICE candidates to a WHEP session
#[utoipa::path(patch, path = "/whep/{channel}/{session}", operation_id = "whep_trickle", tag = "webrtc",
    params(("channel" = String, Path), ("session" = String, Path)),
    request_body(content = String, content_type = "application/trickle-ice-sdpfrag"),
    responses(TrickleAnswers))]
pub(super) async fn trickle(
    State(s): State<AppState>,
    Path((_channel, session)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    add_candidates(&s, &session, &headers, body).await
}

/// Trickle ICE for a WHEP or WHIP session: a PATCH with an SDP fragment.
pub(super) async fn add_candidates(
    s: &AppState,
    session: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let text = body_text(body)?;
    require_type(headers, "application/trickle-ice-sdpfrag")?;
    check_if_match(headers, session)?;
    s.sfu.patch(session, sdp::frag_candidates(&text)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// RFC 9725 4.3: a trickle PATCH names the session's ETag in `If-Match`
/// (a client that sends none is taken at its word), and `If-Match: *`
/// asks for an ICE restart, which a session here does not do: the client
/// starts a new session instead (422, as the RFC wants from a server that
/// supports trickle but not restarts).
fn check_if_match(headers: &HeaderMap, session: &str) -> Result<(), ApiError> {
    let Some(want) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let want = want.to_str().unwrap_or("").trim();
    if want == "*" {
        return Err(ApiError::Unprocessable(
            "ICE restarts are not supported: end this session and start a new one".into(),
        ));
    }
    let ours = format!("\"{session}\"");
    if want.split(',').any(|tag| tag.trim() == ours) {
        Ok(())
    } else {
        Err(ApiError::PreconditionFailed(format!(
            "If-Match {want} does not match this session's ETag {ours}"
        )))
    }
}

/// End a WHEP session
#[utoipa::path(delete, path = "/whep/{channel}/{session}", operation_id = "whep_end", tag = "webrtc",
    params(("channel" = String, Path), ("session" = String, Path)),
    responses((status = 200), (status = 404, description = "No such session", body = ErrorBody)))]
pub(super) async fn end(
    State(s): State<AppState>,
    Path((_channel, session)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    s.sfu.delete(&session).await?;
    Ok(StatusCode::OK)
}

/// What a WHIP/WHEP resource takes, named in the answer to `OPTIONS`
/// (RFC 9725 4.1): `POST` an SDP offer to the endpoint, `PATCH` a trickle
/// fragment to a session. Added to every `OPTIONS` answer for those paths,
/// the CORS layer's preflight answers included.
pub(super) async fn accept_headers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let accept = (req.method() == Method::OPTIONS)
        .then(|| accepts(req.uri().path()))
        .flatten();
    let mut response = next.run(req).await;
    if let Some((name, value)) = accept {
        response
            .headers_mut()
            .insert(name, axum::http::HeaderValue::from_static(value));
    }
    response
}

fn accepts(path: &str) -> Option<(HeaderName, &'static str)> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["whip"] | ["whep", _] => Some((HeaderName::from_static("accept-post"), "application/sdp")),
        ["whip", _] | ["whep", _, _] => Some((
            HeaderName::from_static("accept-patch"),
            "application/trickle-ice-sdpfrag",
        )),
        _ => None,
    }
}

/// Data-channel events a viewer may have in flight to its room; past this
/// a chatty client's messages are dropped, not queued.
const CHAT_EVENTS: usize = 32;

type Bridge = (
    crate::chat::Member,
    tokio::sync::mpsc::Receiver<DataChannelEvent>,
);

/// Joins the session to the channel's chat room, as the user the request
/// is signed in as (cookie or Bearer token), or anonymously (read-only).
/// Chat failing never stops playback: the viewer just gets no room.
async fn chat_for(
    s: &AppState,
    channel: &str,
    headers: &HeaderMap,
    ticket: Option<&str>,
) -> Result<(Option<ChatTap>, Option<Bridge>), ApiError> {
    let user = match super::authenticate(s, &Method::POST, headers).await {
        Ok(Some(x)) => Some((x.user, x.token_hash)),
        Ok(None) => match ticket {
            Some(t) => ticket_user(s, t).await?,
            None => None,
        },
        Err(ApiError::Db(e)) => return Err(ApiError::Db(e)),
        // A bad or expired token, or a cross-site cookie: read-only chat.
        Err(_) => None,
    };
    match s.rooms.join(channel, user).await {
        Ok(member) => {
            let (tx, rx) = tokio::sync::mpsc::channel(CHAT_EVENTS);
            Ok((Some(ChatTap { events: tx }), Some((member, rx))))
        }
        Err(e) => {
            tracing::warn!(channel, "WHEP viewer gets no chat: {e}");
            Ok((None, None))
        }
    }
}

/// Carries one session's chat both ways until the session ends (the SFU
/// drops the event sender) or the room closes. Every message from the
/// viewer counts against [`crate::chat::FrameLimit`]; a viewer over it is
/// told so and its chat is cut off (the video plays on). A viewer whose
/// session ends gets an error line and stays in the room, read-only.
async fn bridge_chat(
    mut member: crate::chat::Member,
    mut events: tokio::sync::mpsc::Receiver<DataChannelEvent>,
    sfu: crate::sfu::Sfu,
    session: String,
) {
    let mut open = false;
    let mut frames = crate::chat::FrameLimit::new(std::time::Instant::now());
    let mut sign_out = member.sign_out();
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                None => break,
                Some(DataChannelEvent::Open) => {
                    open = true;
                    for line in member.take_backlog() {
                        sfu.send_chat(&session, line);
                    }
                }
                Some(DataChannelEvent::Text(text)) => {
                    if !frames.allow(std::time::Instant::now()) {
                        sfu.send_chat(
                            &session,
                            crate::chat::error_line("too many messages: chat closed for this session"),
                        );
                        break;
                    }
                    if let Some(reply) = member.handle(&text).await {
                        sfu.send_chat(&session, reply);
                    }
                }
            },
            () = sign_out.wait() => {
                let e = crate::chat::ChatError::SignedOut.to_string();
                sfu.send_chat(&session, crate::chat::error_line(&e));
            }
            // Until the channel opens, what is said waits in the room's
            // buffer (bounded: a member that falls behind skips ahead), to
            // follow the backlog once it does.
            line = member.recv(), if open => match line {
                None => break,
                Some(line) => {
                    sfu.send_chat(&session, line);
                }
            },
        }
    }
}

/// Offers (WHIP and WHEP) per client address, on this server and across
/// the site; a flood from one address gets 429 while everyone else is
/// served.
pub(super) async fn rate_limit(s: &AppState, client: super::ClientAddr) -> Result<(), ApiError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    // One warning per minute at most, however long the flood.
    static LAST_WARNED: AtomicU64 = AtomicU64::new(0);
    let host = client.host();
    let here = s.limits.offer(host, std::time::Instant::now());
    let limit = s.limits.offer_rate();
    let verdict = super::limits::here_and_site(s, "offer", host, here, limit).await;
    verdict.map_err(|wait| {
        let now = unix_now();
        if now.saturating_sub(LAST_WARNED.swap(now, Ordering::Relaxed)) >= 60 {
            tracing::warn!(ip = %client.0, "too many WHIP/WHEP offers from one address; answering 429");
        }
        ApiError::TooManyRequests(
            "too many offers from this address; retry in a moment".into(),
            wait.as_secs().max(1),
        )
    })
}
