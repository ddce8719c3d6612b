//! `/hls/CHANNEL/...` (live LL-HLS from memory), `/vod/ID/...` (recordings
//! from disk), `/api/channels/CHANNEL/broadcasts` and the thumbnails.
//!
//! File names are parsed into numbers ([`crate::hls::request`]), never
//! joined into paths as given, so no request can reach outside a
//! recording's folder.

use super::openapi::Binary;
use super::{ApiError, AppState, ErrorBody};
use crate::db::{valid_channel_name, BroadcastMeta, BroadcastRow};
use crate::hls::live::{LiveChannel, Reject, Want, BLOCKED_RETRY_AFTER_SECS};
use crate::hls::recorder::Recordings;
use crate::hls::request::{parse_file, parse_want, File};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
/// A live playlist changes every part. A browser asks again each time; a
/// shared cache (a CDN) may answer from one copy for about a part, so a
/// crowd of players joining at once costs the origin one request.
const PLAYLIST_CACHE: &str = "public, max-age=0, s-maxage=1";
/// A blocking reload (`_HLS_msn`, `_HLS_part`) is its own cache key, and its
/// answer stays a right answer to it: it holds at least the part asked for
/// (RFC 8216bis 6.2.5.2). Kept about a part (the header counts whole
/// seconds), so a cache that collapses requests (nginx `proxy_cache_lock`)
/// sends the origin one request per part however many players wait on it.
const BLOCKING_PLAYLIST_CACHE: &str = "public, max-age=1";
/// Live media is named under its playlist's stream id, which is never
/// reused, and recordings under their broadcast's id: a name's bytes never
/// change.
const MEDIA_CACHE: &str = "public, max-age=86400, immutable";
/// Errors on live paths: the thing may exist a moment later (a part not
/// cut yet, a channel going live), so no cache may remember its absence.
const ERROR_CACHE: &str = "no-store";
pub(super) const VOD_PLAYLIST_CACHE: &str = "public, max-age=3600";
const POSTER_CACHE: &str = "public, max-age=3600";
/// Everything of a recording that is not published (hidden: its owner's
/// and admins' alone).
pub(super) const PRIVATE_CACHE: &str = "private, no-store";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/hls/{channel}/{file}", get(live_playlist))
        .route("/hls/{channel}/{stream}/{file}", get(live_media))
        .route("/vod/{id}/{file}", get(vod_file))
        .route("/api/channels/{channel}/broadcasts", get(broadcasts))
        .route("/api/channels/{channel}/thumbnail.jpg", get(thumbnail))
}

fn reply(ctype: &'static str, cache: &'static str, body: Bytes) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ctype)),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
        ],
        body,
    )
        .into_response()
}

/// 503 with Retry-After for a request that would wait on a playlist that
/// already holds as many as it may (see
/// [`crate::hls::live::MAX_BLOCKED_PER_HOST`]).
fn busy() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::RETRY_AFTER, BLOCKED_RETRY_AFTER_SECS.to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        ErrorBody::json("too many requests are waiting on this playlist; retry later"),
    )
        .into_response()
}

fn bad(msg: &str) -> ApiError {
    ApiError::BadRequest(msg.to_string())
}

fn live_channel(s: &AppState, name: &str) -> Result<Arc<LiveChannel>, ApiError> {
    if !valid_channel_name(name) {
        return Err(ApiError::NotFound("no such channel".into()));
    }
    s.hls
        .channel(name)
        .ok_or_else(|| ApiError::NotFound(format!("channel {name} is not live")))
}

// For the document only (utoipa reads its fields): the handler parses the
// raw query itself.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, non_snake_case)]
struct BlockingReload {
    /// Wait until the playlist holds this media sequence number.
    _HLS_msn: Option<u64>,
    /// With `_HLS_msn`: wait for this partial segment of it.
    _HLS_part: Option<u64>,
    /// `YES` or `v2`: a delta update (`EXT-X-SKIP`).
    _HLS_skip: Option<String>,
}

/// A live channel's LL-HLS playlist
///
/// The media playlist, with blocking reloads (RFC 8216bis 6.2.5.2). Its
/// media is named under the stream's folder: `STREAM/init{N}.mp4`,
/// `STREAM/s{MSN}.m4s` segments and `STREAM/s{MSN}.{PART}.m4s` partial
/// segments (CMAF). A blocking reload's answer may be cached for a second;
/// the plain playlist only by a shared cache, for a second.
#[utoipa::path(get, path = "/hls/{channel}/{file}", operation_id = "hls_playlist", tag = "playback",
    params(("channel" = String, Path), ("file" = String, Path, example = "index.m3u8"), BlockingReload),
    responses(
        (status = 200, description = "The playlist", content((String = "application/vnd.apple.mpegurl"))),
        (status = 307, description = "Live on another server of the site (`--redis-url`): the same request goes to `Location`"),
        (status = 400, description = "A bad `_HLS_` query", body = ErrorBody),
        (status = 404, description = "Offline, or not the playlist", body = ErrorBody),
        (status = 503, description = "Too many requests already wait on this playlist, or it did not reach the part asked for in time", body = ErrorBody),
    ))]
pub(super) async fn live_playlist(
    State(s): State<AppState>,
    Path((channel, file)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    client: super::ClientAddr,
    headers: HeaderMap,
) -> Response {
    uncached_errors(async {
        if parse_file(&file) != Some(File::Playlist) {
            return Err(ApiError::NotFound("no such file".into()));
        }
        // Live on another server of the site: the player goes there (its
        // media URLs are relative, so they follow), whatever this server
        // still holds of an earlier stream.
        if let Some(there) = super::whep::live_elsewhere(&s, &channel).await {
            let query = query.map(|q| format!("?{q}")).unwrap_or_default();
            let to = format!("{there}/hls/{channel}/index.m3u8{query}");
            return Ok((StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, to)]).into_response());
        }
        let ch = live_channel(&s, &channel)?;
        crate::metrics::hls_request(true);
        {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            client.0.hash(&mut h);
            headers
                .get(header::USER_AGENT)
                .map(|v| v.as_bytes())
                .hash(&mut h);
            s.hls.viewers.seen(&channel, h.finish());
        }
        let limit = wait_limit(&ch);
        let client = client.0;
        let want = parse_want(query.as_deref()).map_err(|e| bad(&e.to_string()))?;
        if let Some(want) = want {
            match ch.wait_for(want, limit, client).await {
                Ok(()) => {}
                Err(Reject::Busy) => return Ok(busy()),
                Err(Reject::TooFarAhead) => {
                    return Err(bad("_HLS_msn is more than two segments ahead"))
                }
                Err(Reject::Timeout) => {
                    return Err(ApiError::Unavailable("playlist update timed out".into()))
                }
                Err(Reject::Gone) => {
                    return Err(ApiError::NotFound(format!(
                        "channel {channel} went offline"
                    )))
                }
            }
        }
        let cache = if want.is_some() {
            BLOCKING_PLAYLIST_CACHE
        } else {
            PLAYLIST_CACHE
        };
        // Live, but maybe the first part is not out yet: wait for it.
        match ch.wait_ready(limit, client).await {
            Ok(Some(body)) => Ok(reply(PLAYLIST_TYPE, cache, body)),
            Ok(None) => Err(ApiError::NotFound("no playlist yet".into())),
            Err(_) => Ok(busy()),
        }
    })
    .await
}

/// A live channel's media
///
/// `init{N}.mp4`, `s{MSN}.m4s` and `s{MSN}.{PART}.m4s` under the stream id
/// the playlist names them with. A request for the next segment or part
/// waits until it exists, up to three target durations. A stream id that
/// is not the channel's current one is 404: its numbers may be reused.
#[utoipa::path(get, path = "/hls/{channel}/{stream}/{file}", operation_id = "hls_media", tag = "playback",
    params(("channel" = String, Path), ("stream" = String, Path, example = "3f0c9a1be2d47a55"),
        ("file" = String, Path, example = "s12.3.m4s")),
    responses(
        (status = 200, description = "A segment, a part or an init segment (audio/mp4 for a stream without video); never changes",
            content((inline(Binary) = "video/mp4"), (inline(Binary) = "audio/mp4"))),
        (status = 404, description = "Offline, another stream, or no such file", body = ErrorBody),
        (status = 503, description = "Too many requests already wait on this playlist", body = ErrorBody),
    ))]
pub(super) async fn live_media(
    State(s): State<AppState>,
    Path((channel, stream, file)): Path<(String, String, String)>,
    client: super::ClientAddr,
) -> Response {
    uncached_errors(async {
        let file = parse_file(&file).ok_or_else(|| ApiError::NotFound("no such file".into()))?;
        let ch = live_channel(&s, &channel)?;
        if ch.stream() != stream {
            return Err(ApiError::NotFound("that stream has ended".into()));
        }
        crate::metrics::hls_request(false);
        let limit = wait_limit(&ch);
        let client = client.0;
        let media_type = if ch.has_video() {
            "video/mp4"
        } else {
            "audio/mp4"
        };
        match file {
            File::Init(id) => ch
                .init(id)
                .map(|b| reply(media_type, MEDIA_CACHE, b))
                .ok_or_else(|| ApiError::NotFound("no such init segment".into())),
            File::Segment(msn) => {
                if ch.segment(msn).is_none()
                    && ch.is_upcoming(msn)
                    && ch.wait_for(Want { msn, part: None }, limit, client).await
                        == Err(Reject::Busy)
                {
                    return Ok(busy());
                }
                ch.segment(msn)
                    .map(|b| reply(media_type, MEDIA_CACHE, b))
                    .ok_or_else(|| ApiError::NotFound("no such segment".into()))
            }
            File::Part(msn, idx) => {
                // A preload hint names the next part before it exists: hold
                // the request until it does (RFC 8216bis 6.2.5.3).
                if ch.part(msn, idx).is_none() && ch.is_upcoming(msn) {
                    let want = Want {
                        msn,
                        part: Some(idx),
                    };
                    if ch.wait_for(want, limit, client).await == Err(Reject::Busy) {
                        return Ok(busy());
                    }
                }
                ch.part(msn, idx)
                    .map(|b| reply(media_type, MEDIA_CACHE, b))
                    .ok_or_else(|| ApiError::NotFound("no such part".into()))
            }
            File::Playlist | File::Poster => Err(ApiError::NotFound("no such file".into())),
        }
    })
    .await
}

/// RFC 8216bis 6.2.5.2: answer or give up within 3 target durations.
fn wait_limit(ch: &LiveChannel) -> Duration {
    Duration::from_secs(3 * ch.config().target_duration as u64)
}

/// The answer of a live path, with every refusal marked [`ERROR_CACHE`].
async fn uncached_errors(
    answer: impl std::future::Future<Output = Result<Response, ApiError>>,
) -> Response {
    let mut r = answer.await.unwrap_or_else(IntoResponse::into_response);
    if !r.status().is_success() {
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(ERROR_CACHE));
    }
    r
}

fn parse_id(id: &str) -> Result<i64, ApiError> {
    if id.is_empty() || id.len() > 19 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::NotFound("no such broadcast".into()));
    }
    id.parse()
        .map_err(|_| ApiError::NotFound("no such broadcast".into()))
}

/// Who is asking, for hidden broadcasts; a bad or cross-site credential
/// just means anonymous here, since this only reads.
async fn viewer(s: &AppState, headers: &HeaderMap) -> Result<Option<crate::db::User>, ApiError> {
    match super::authenticate(s, &Method::GET, headers).await {
        Ok(v) => Ok(v.map(|v| v.user)),
        Err(ApiError::Db(e)) => Err(ApiError::Db(e)),
        Err(_) => Ok(None),
    }
}

/// The metadata of broadcast `id` (of `channel`, when given), if
/// `headers`' sender may see it: a hidden broadcast is its owner's (and
/// admins') alone; to anyone else it does not exist (404).
async fn visible_meta(
    s: &AppState,
    id: i64,
    channel: Option<&str>,
    headers: &HeaderMap,
) -> Result<BroadcastMeta, ApiError> {
    let gone = || ApiError::NotFound("no such broadcast".into());
    let meta =
        s.db.broadcast_meta(id)
            .await?
            .filter(|m| channel.is_none_or(|c| m.channel == c))
            .ok_or_else(gone)?;
    if !meta.published {
        let who = viewer(s, headers).await?;
        if !s.db.broadcast_visible(id, who.as_ref()).await? {
            return Err(gone());
        }
    }
    Ok(meta)
}

/// A recording `headers`' sender may see: its metadata, its row and the
/// recordings it is kept in. A hidden broadcast is its owner's (and
/// admins') alone; to anyone else it does not exist (404).
pub(super) async fn visible_recording(
    s: &AppState,
    id: &str,
    headers: &HeaderMap,
) -> Result<(BroadcastMeta, BroadcastRow, Arc<Recordings>), ApiError> {
    let id = parse_id(id)?;
    let meta = visible_meta(s, id, None, headers).await?;
    let rec = s
        .hls
        .recordings()
        .ok_or_else(|| ApiError::NotFound("recordings are off".into()))?
        .clone();
    let row =
        s.db.broadcast(id)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such broadcast".into()))?;
    Ok((meta, row, rec))
}

/// A recording's files
///
/// `index.m3u8` (a VOD playlist), `init{N}.mp4`, `s{MSN}.m4s` and
/// `poster.jpg`. Unpublished recordings answer only their owner and admins
/// (by cookie or Bearer token).
#[utoipa::path(get, path = "/vod/{id}/{file}", tag = "playback",
    params(("id" = String, Path), ("file" = String, Path, example = "index.m3u8")),
    responses(
        (status = 200, description = "The playlist, a segment, an init segment or the poster",
            content((String = "application/vnd.apple.mpegurl"), (inline(Binary) = "video/mp4"), (inline(Binary) = "image/jpeg"))),
        (status = 404, body = ErrorBody),
    ))]
pub(super) async fn vod_file(
    State(s): State<AppState>,
    Path((id, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (meta, row, rec) = visible_recording(&s, &id, &headers).await?;
    let file = parse_file(&file).ok_or_else(|| ApiError::NotFound("no such file".into()))?;
    // What only its owner may see is never kept by a shared cache, nor by
    // the browser (a shared computer); published recordings may be.
    let cache = |public: &'static str| {
        if meta.published {
            public
        } else {
            PRIVATE_CACHE
        }
    };
    let (name, ctype, cache) = match file {
        File::Playlist => {
            let body = rec
                .playlist(&row)
                .await
                .map_err(stored)?
                .ok_or_else(|| ApiError::NotFound("this broadcast was not recorded".into()))?;
            let c = if row.ended_at.is_some() {
                cache(VOD_PLAYLIST_CACHE)
            } else {
                cache(PLAYLIST_CACHE)
            };
            return Ok(reply(PLAYLIST_TYPE, c, body));
        }
        File::Init(n) => (format!("init{n}.mp4"), "video/mp4", cache(MEDIA_CACHE)),
        File::Segment(n) => (format!("s{n}.m4s"), "video/mp4", cache(MEDIA_CACHE)),
        File::Poster => ("poster.jpg".to_string(), "image/jpeg", cache(POSTER_CACHE)),
        File::Part(..) => return Err(ApiError::NotFound("no such file".into())),
    };
    match rec.read(row.id, &name).await.map_err(stored)? {
        Some(data) => Ok(reply(ctype, cache, data)),
        None => Err(ApiError::NotFound("no such file".into())),
    }
}

/// A recording this node could not read, here or in the object store.
fn stored(e: crate::store::StoreError) -> ApiError {
    tracing::warn!("cannot read a recording: {e}");
    ApiError::Unavailable("the recording cannot be read right now".into())
}

/// A past (or the current) broadcast.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct BroadcastItem {
    #[serde(flatten)]
    row: BroadcastRow,
    live: bool,
    /// Hidden by its owner; only the owner (and admins) get such items.
    hidden: bool,
    /// The recording's HLS playlist (`/vod/{id}/index.m3u8`), when recorded.
    playlist: Option<String>,
    /// Its poster image, when recorded.
    poster: Option<String>,
    /// The whole recording as one MP4 (`/vod/{id}/download.mp4`, byte
    /// ranges), once it has ended.
    download: Option<String>,
}

impl BroadcastItem {
    fn new(row: BroadcastRow, hidden: bool) -> BroadcastItem {
        let (id, recorded) = (row.id, row.recorded);
        BroadcastItem {
            live: row.ended_at.is_none(),
            hidden,
            playlist: recorded.then(|| format!("/vod/{id}/index.m3u8")),
            poster: recorded.then(|| format!("/vod/{id}/poster.jpg")),
            download: (recorded && row.ended_at.is_some())
                .then(|| format!("/vod/{id}/download.mp4")),
            row,
        }
    }
}

/// One broadcast of the channel
///
/// What a link to it (`/c/CHANNEL?b=ID`) opens, however far back it is.
/// A hidden one answers only its owner and admins; to anyone else it does
/// not exist.
#[utoipa::path(get, path = "/api/channels/{channel}/broadcasts/{id}", tag = "broadcasts",
    params(("channel" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = BroadcastItem), (status = 404, body = ErrorBody)))]
pub(super) async fn one_broadcast(
    State(s): State<AppState>,
    Path((channel, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<BroadcastItem>, ApiError> {
    let id = parse_id(&id)?;
    let meta = visible_meta(&s, id, Some(&channel), &headers).await?;
    let row =
        s.db.broadcast(id)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such broadcast".into()))?;
    Ok(Json(BroadcastItem::new(row, !meta.published)))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct BroadcastPage {
    items: Vec<BroadcastItem>,
    /// The `cursor` for the next page; none on the last.
    next_cursor: Option<String>,
}

// For the document only (utoipa reads its fields): the handler parses the
// raw query itself.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct BroadcastQuery {
    /// `next_cursor` from the previous page.
    cursor: Option<String>,
    /// Broadcasts per page, 1 to 100 (20 by default).
    limit: Option<i64>,
}

/// Past broadcasts, newest first, with their recordings
///
/// Cursor pagination: pass the previous page's `next_cursor`. Hidden ones
/// are listed only to the channel's owner and admins.
#[utoipa::path(get, path = "/api/channels/{channel}/broadcasts", tag = "broadcasts",
    params(("channel" = String, Path), BroadcastQuery),
    responses((status = 200, body = BroadcastPage), (status = 404, body = ErrorBody)))]
pub(super) async fn broadcasts(
    State(s): State<AppState>,
    Path(channel): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<BroadcastPage>, ApiError> {
    if !valid_channel_name(&channel) || s.db.channel(&channel).await?.is_none() {
        return Err(ApiError::NotFound("no such channel".into()));
    }
    let who = viewer(&s, &headers).await?;
    let sees_hidden = match &who {
        Some(u) if u.role == crate::db::Role::Admin => true,
        Some(u) => {
            s.db.channel_info(&channel)
                .await?
                .is_some_and(|c| c.owner_id == Some(u.id))
        }
        None => false,
    };
    let hidden = s.db.hidden_broadcasts(&channel).await?;
    let cursor = match q.get("cursor").map(String::as_str) {
        None | Some("") => None,
        Some(c) => Some(
            c.parse::<i64>()
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| bad("cursor must be an id from next_cursor"))?,
        ),
    };
    let limit = match q.get("limit") {
        None => crate::db::BROADCASTS_PAGE,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| bad("limit must be 1..100"))?,
    };
    let rows = s.db.broadcasts(&channel, cursor, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<BroadcastItem> = rows
        .into_iter()
        .take(limit as usize)
        .filter(|row| sees_hidden || !hidden.contains(&row.id))
        .map(|row| {
            let hidden = hidden.contains(&row.id);
            BroadcastItem::new(row, hidden)
        })
        .collect();
    let next = if more {
        items.last().map(|i| i.row.id.to_string())
    } else {
        None
    };
    Ok(Json(BroadcastPage {
        items,
        next_cursor: next,
    }))
}

/// The live channel's latest keyframe, as JPEG
#[utoipa::path(get, path = "/api/channels/{channel}/thumbnail.jpg", tag = "broadcasts",
    params(("channel" = String, Path)),
    responses(
        (status = 200, content_type = "image/jpeg", body = inline(Binary)),
        (status = 307, description = "Live on another server of the site (`--redis-url`): its thumbnail is at `Location`"),
        (status = 404, description = "Offline, or no keyframe yet", body = ErrorBody),
    ))]
pub(super) async fn thumbnail(
    State(s): State<AppState>,
    Path(channel): Path<String>,
) -> Result<Response, ApiError> {
    if !valid_channel_name(&channel) {
        return Err(ApiError::NotFound("no such channel".into()));
    }
    if let Some(there) = super::whep::live_elsewhere(&s, &channel).await {
        let to = format!("{there}/api/channels/{channel}/thumbnail.jpg");
        return Ok((
            StatusCode::TEMPORARY_REDIRECT,
            [
                (header::LOCATION, to),
                (header::CACHE_CONTROL, "no-store".into()),
            ],
        )
            .into_response());
    }
    match s.hls.thumbnail(&channel) {
        Some(jpeg) => Ok((
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "public, max-age=10"),
            ],
            jpeg,
        )
            .into_response()),
        None => Err(ApiError::NotFound(format!(
            "no thumbnail for {channel} (offline, or not yet)"
        ))),
    }
}
