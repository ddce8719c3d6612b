//! `/hls/CHANNEL/...` (live LL-HLS from memory), `/vod/ID/...` (recordings
//! from disk), `/api/channels/CHANNEL/broadcasts` and the thumbnails.
//!
//! File names are parsed into numbers, never joined into paths as given,
//! so no request can reach outside a recording's folder.

use super::{ApiError, AppState};
use crate::db::{valid_channel_name, BroadcastRow};
use crate::hls::live::{LiveChannel, Reject, Want};
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
/// A live playlist changes every part: caches may keep it no longer than
/// that (a blocking reload is its own cache key, RFC 8216bis 6.2.5.2).
const PLAYLIST_CACHE: &str = "max-age=0, no-cache";
/// Parts, segments and init segments never change under their name while
/// they exist; names restart with the server, hence not `immutable`.
const MEDIA_CACHE: &str = "public, max-age=60";
const VOD_MEDIA_CACHE: &str = "public, max-age=86400, immutable";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/hls/{channel}/{file}", get(live_file))
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

/// What a live or VOD file name asks for.
#[derive(Debug, PartialEq, Eq)]
enum File {
    Playlist,
    Init(u32),
    Segment(u64),
    Part(u64, u32),
    Poster,
}

fn parse_file(name: &str) -> Option<File> {
    fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
        // Digits only: no signs, spaces or dots.
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    }
    if name == "index.m3u8" {
        return Some(File::Playlist);
    }
    if name == "poster.jpg" {
        return Some(File::Poster);
    }
    if let Some(n) = name
        .strip_prefix("init")
        .and_then(|n| n.strip_suffix(".mp4"))
    {
        return num(n).map(File::Init);
    }
    let stem = name.strip_prefix('s')?.strip_suffix(".m4s")?;
    match stem.split_once('.') {
        Some((m, p)) => Some(File::Part(num(m)?, num(p)?)),
        None => num(stem).map(File::Segment),
    }
}

fn bad(msg: &str) -> ApiError {
    ApiError::BadRequest(msg.to_string())
}

/// `_HLS_msn` / `_HLS_part` (RFC 8216bis 6.2.5.2). Anything else in the
/// query is ignored, as the spec asks for unknown parameters.
fn parse_want(query: Option<&str>) -> Result<Option<Want>, ApiError> {
    let (mut msn, mut part) = (None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let parse = |v: &str| -> Result<u64, ApiError> {
            if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(&format!("{k} must be a non-negative integer")));
            }
            v.parse().map_err(|_| bad(&format!("{k} out of range")))
        };
        match k {
            "_HLS_msn" => msn = Some(parse(v)?),
            "_HLS_part" => {
                let p = parse(v)?;
                part = Some(u32::try_from(p).map_err(|_| bad("_HLS_part out of range"))?);
            }
            _ => {}
        }
    }
    match (msn, part) {
        (None, Some(_)) => Err(bad("_HLS_part without _HLS_msn")),
        (None, None) => Ok(None),
        (Some(msn), part) => Ok(Some(Want { msn, part })),
    }
}

fn live_channel(s: &AppState, name: &str) -> Result<Arc<LiveChannel>, ApiError> {
    if !valid_channel_name(name) {
        return Err(ApiError::NotFound("no such channel".into()));
    }
    s.hls
        .channel(name)
        .ok_or_else(|| ApiError::NotFound(format!("channel {name} is not live")))
}

async fn live_file(
    State(s): State<AppState>,
    Path((channel, file)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    client: super::ClientAddr,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let file = parse_file(&file).ok_or_else(|| ApiError::NotFound("no such file".into()))?;
    let ch = live_channel(&s, &channel)?;
    crate::metrics::hls_request(file == File::Playlist);
    if file == File::Playlist {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        client.0.hash(&mut h);
        headers
            .get(header::USER_AGENT)
            .map(|v| v.as_bytes())
            .hash(&mut h);
        s.hls.viewers.seen(&channel, h.finish());
    }
    let cfg = *ch.config();
    // RFC 8216bis 6.2.5.2: answer or give up within 3 target durations.
    let limit = Duration::from_secs(3 * cfg.target_duration as u64);
    let media_type = if ch.has_video() {
        "video/mp4"
    } else {
        "audio/mp4"
    };
    match file {
        File::Playlist => {
            let want = parse_want(query.as_deref())?;
            if let Some(want) = want {
                ch.wait_for(want, limit).await.map_err(|r| match r {
                    Reject::TooFarAhead => bad("_HLS_msn is more than two segments ahead"),
                    Reject::Timeout => ApiError::Unavailable("playlist update timed out".into()),
                    Reject::Gone => ApiError::NotFound(format!("channel {channel} went offline")),
                })?;
            }
            // Live, but maybe the first part is not out yet: wait for it.
            let body = ch
                .wait_ready(limit)
                .await
                .ok_or_else(|| ApiError::NotFound("no playlist yet".into()))?;
            Ok(reply(PLAYLIST_TYPE, PLAYLIST_CACHE, body))
        }
        File::Init(id) => ch
            .init(id)
            .map(|b| reply(media_type, MEDIA_CACHE, b))
            .ok_or_else(|| ApiError::NotFound("no such init segment".into())),
        File::Segment(msn) => {
            if ch.segment(msn).is_none() && ch.is_upcoming(msn) {
                let _ = ch.wait_for(Want { msn, part: None }, limit).await;
            }
            ch.segment(msn)
                .map(|b| reply(media_type, MEDIA_CACHE, b))
                .ok_or_else(|| ApiError::NotFound("no such segment".into()))
        }
        File::Part(msn, idx) => {
            // A preload hint names the next part before it exists: hold the
            // request until it does (RFC 8216bis 6.2.5.3).
            if ch.part(msn, idx).is_none() && ch.is_upcoming(msn) {
                let _ = ch
                    .wait_for(
                        Want {
                            msn,
                            part: Some(idx),
                        },
                        limit,
                    )
                    .await;
            }
            ch.part(msn, idx)
                .map(|b| reply(media_type, MEDIA_CACHE, b))
                .ok_or_else(|| ApiError::NotFound("no such part".into()))
        }
        File::Poster => Err(ApiError::NotFound("no such file".into())),
    }
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

async fn vod_file(
    State(s): State<AppState>,
    Path((id, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    // A hidden broadcast is the owner's alone; to anyone else it does not
    // exist.
    let who = viewer(&s, &headers).await?;
    if !s.db.broadcast_visible(id, who.as_ref()).await? {
        return Err(ApiError::NotFound("no such broadcast".into()));
    }
    let file = parse_file(&file).ok_or_else(|| ApiError::NotFound("no such file".into()))?;
    let rec = s
        .hls
        .recordings()
        .ok_or_else(|| ApiError::NotFound("recordings are off".into()))?;
    let row =
        s.db.broadcast(id)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such broadcast".into()))?;
    let dir = rec.dir(row.id);
    let (name, ctype, cache) = match file {
        File::Playlist => {
            let body = rec
                .playlist(&row)
                .await
                .ok_or_else(|| ApiError::NotFound("this broadcast was not recorded".into()))?;
            let cache = if row.ended_at.is_some() {
                "public, max-age=3600"
            } else {
                PLAYLIST_CACHE
            };
            return Ok(reply(PLAYLIST_TYPE, cache, body));
        }
        File::Init(n) => (format!("init{n}.mp4"), "video/mp4", VOD_MEDIA_CACHE),
        File::Segment(n) => (format!("s{n}.m4s"), "video/mp4", VOD_MEDIA_CACHE),
        File::Poster => (
            "poster.jpg".to_string(),
            "image/jpeg",
            "public, max-age=3600",
        ),
        File::Part(..) => return Err(ApiError::NotFound("no such file".into())),
    };
    match tokio::fs::read(dir.join(&name)).await {
        Ok(data) => Ok(reply(ctype, cache, Bytes::from(data))),
        Err(_) => Err(ApiError::NotFound("no such file".into())),
    }
}

#[derive(serde::Serialize)]
struct BroadcastJson {
    #[serde(flatten)]
    row: BroadcastRow,
    live: bool,
    /// Hidden by its owner; only the owner (and admins) get such rows.
    hidden: bool,
    playlist: Option<String>,
    poster: Option<String>,
}

async fn broadcasts(
    State(s): State<AppState>,
    Path(channel): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
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
    let items: Vec<BroadcastJson> = rows
        .into_iter()
        .take(limit as usize)
        .filter(|row| sees_hidden || !hidden.contains(&row.id))
        .map(|row| {
            let recorded = row.recorded;
            let id = row.id;
            BroadcastJson {
                live: row.ended_at.is_none(),
                hidden: hidden.contains(&id),
                playlist: recorded.then(|| format!("/vod/{id}/index.m3u8")),
                poster: recorded.then(|| format!("/vod/{id}/poster.jpg")),
                row,
            }
        })
        .collect();
    let next = if more {
        items.last().map(|i| i.row.id.to_string())
    } else {
        None
    };
    Ok(Json(
        serde_json::json!({ "items": items, "next_cursor": next }),
    ))
}

async fn thumbnail(
    State(s): State<AppState>,
    Path(channel): Path<String>,
) -> Result<Response, ApiError> {
    if !valid_channel_name(&channel) {
        return Err(ApiError::NotFound("no such channel".into()));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_parse_strictly() {
        assert_eq!(parse_file("index.m3u8"), Some(File::Playlist));
        assert_eq!(parse_file("init3.mp4"), Some(File::Init(3)));
        assert_eq!(parse_file("s12.m4s"), Some(File::Segment(12)));
        assert_eq!(parse_file("s12.4.m4s"), Some(File::Part(12, 4)));
        for bad in [
            "..",
            "../index.m3u8",
            "s-1.m4s",
            "s+1.m4s",
            "s1.2.3.m4s",
            "init.mp4",
            "s.m4s",
            "s99999999999999999999.m4s",
            "index.m3u8 ",
            "s1 .m4s",
            "%2e%2e",
        ] {
            assert_eq!(parse_file(bad), None, "{bad}");
        }
    }

    #[test]
    fn blocking_query_is_validated() {
        assert_eq!(parse_want(None).ok().flatten(), None);
        assert_eq!(
            parse_want(Some("_HLS_msn=5&_HLS_part=2")).ok().flatten(),
            Some(Want {
                msn: 5,
                part: Some(2)
            })
        );
        assert_eq!(
            parse_want(Some("_HLS_msn=5&foo=bar")).ok().flatten(),
            Some(Want { msn: 5, part: None })
        );
        for q in [
            "_HLS_msn=-1",
            "_HLS_msn=abc",
            "_HLS_msn=",
            "_HLS_part=1",
            "_HLS_msn=1&_HLS_part=-2",
            "_HLS_msn=99999999999999999999",
            "_HLS_msn=1&_HLS_part=99999999999",
        ] {
            assert!(parse_want(Some(q)).is_err(), "{q}");
        }
    }
}
