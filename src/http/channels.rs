//! Channels: the directory, a channel's public page data, its settings,
//! stream key, likes and past broadcasts. Categories and the schedule have
//! their own modules.

use super::auth::{ApiJson, SignedIn};
use super::openapi::SignedInErrors;
use super::schedule::ScheduledView;
use super::{ApiError, AppState, ErrorBody};
use crate::chat::rfc3339;
use crate::db::{BroadcastMeta, ChannelInfo, ChannelPatch, Role, User};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::{Duration, Instant, UNIX_EPOCH};
use utoipa::{IntoParams, ToSchema};

pub const PAGE_DEFAULT: i64 = 24;
pub const PAGE_MAX: i64 = 100;
pub const TITLE_MAX: usize = 140;
pub const DESCRIPTION_MAX: usize = 5000;
pub const TAGS_MAX: usize = 10;
pub const TAG_MAX: usize = 64;
/// Slow mode between 0 (off) and 10 minutes.
pub const SLOW_MODE_MAX: i64 = 600;
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/channels", get(directory))
        .route("/api/channels/{name}", get(channel).patch(edit))
        .route("/api/channels/{name}/key", get(key).post(rotate_key))
        .route("/api/channels/{name}/live", delete(end_live))
        .route("/api/channels/{name}/like", post(like))
        .route(
            "/api/channels/{channel}/broadcasts/{id}",
            get(super::hls::one_broadcast)
                .patch(edit_broadcast)
                .delete(delete_broadcast),
        )
}

/// Owner of the channel (or, when `admin_too`, an admin).
pub fn is_owner(user: &User, info: &ChannelInfo, admin_too: bool) -> bool {
    info.owner_id == Some(user.id) || (admin_too && user.role == Role::Admin)
}

/// Streaming needs a role that streams: until then the account has no
/// stream key to see or rotate.
pub fn may_stream(user: &User) -> Result<(), ApiError> {
    if user.role.streams() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(NOT_YET_STREAMING.into()))
    }
}

pub const NOT_YET_STREAMING: &str =
    "this account may not stream yet: an admin grants it the broadcaster role";

pub async fn channel_or_404(s: &AppState, name: &str) -> Result<ChannelInfo, ApiError> {
    s.db.channel_info(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no channel named {name:?}")))
}

/// The channel, if `user` owns it (or, with `admin_too`, is an admin):
/// otherwise a 404, or a 403 saying "only the owner can {what}".
pub(super) async fn owned_channel(
    s: &AppState,
    user: &User,
    name: &str,
    admin_too: bool,
    what: &str,
) -> Result<ChannelInfo, ApiError> {
    let info = channel_or_404(s, name).await?;
    if !is_owner(user, &info, admin_too) {
        return Err(ApiError::Forbidden(format!("only the owner can {what}")));
    }
    Ok(info)
}

/// A channel with its live state.
#[derive(Serialize, ToSchema)]
pub(super) struct ChannelView {
    name: String,
    /// The owner's username; none for channels made by the operator.
    owner: Option<String>,
    title: String,
    description: String,
    category: Option<String>,
    tags: Vec<String>,
    likes: i64,
    slow_mode_secs: i64,
    live: bool,
    /// While live: when the broadcast started.
    #[schema(format = DateTime)]
    started_at: Option<String>,
    /// WebRTC, LL-HLS, Icecast and HTTP-FLV viewers together.
    viewers: usize,
    /// While live: whether the stream has video (a watch page without it
    /// is a listening page); null while that is not known yet, in the
    /// first moments of a publish (up to 2 s for an RTMP publisher that
    /// sends sound first and no metadata).
    video: Option<bool>,
    /// While live: the track on the air (Icecast `/admin/metadata`).
    now_playing: Option<String>,
    next_broadcast: Option<ScheduledView>,
    /// Upcoming broadcasts, soonest first: only on
    /// `GET /api/channels/{name}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<Vec<ScheduledView>>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct ChannelPage {
    items: Vec<ChannelView>,
    /// The `cursor` for the next page; none on the last.
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct StreamKey {
    stream_key: String,
}

#[derive(Serialize, ToSchema)]
pub(super) struct RotatedKey {
    /// The new key, for the owner; none when an admin rotated someone
    /// else's (it is not theirs to see).
    stream_key: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Likes {
    likes: i64,
}

/// Whether a live stream has video: `None` until its source has said. A
/// player that asks when the `live` event comes (the first milliseconds of
/// an RTMP publish, before its first track) must not take a video stream
/// for radio: it would offer audio alone and never show a picture.
fn has_video(source: crate::hub::Source, h: &crate::hub::Health, now: Instant) -> Option<bool> {
    if source == crate::hub::Source::Icecast {
        return Some(false);
    }
    // An RTMP publisher's onMetaData comes before its media.
    if h.video_codec.is_some() || h.metadata.contains_key("videocodecid") {
        return Some(true);
    }
    h.audio_codec.as_ref()?;
    // Sound and no picture yet. The metadata, when the publisher sent it,
    // says there is none; without it, the first video may just be behind
    // the first audio, so only a while of sound alone says it.
    let said = !h.metadata.is_empty() || source != crate::hub::Source::Rtmp;
    let alone = h
        .audio_since
        .is_some_and(|t| now.saturating_duration_since(t) >= AUDIO_ALONE);
    (said || alone).then_some(false)
}

/// How long an RTMP publisher that sent no metadata must send sound and no
/// picture before its stream counts as having no video.
const AUDIO_ALONE: Duration = Duration::from_secs(2);

/// A channel as the directory and its page show it: settings plus live
/// state.
async fn channel_json(s: &AppState, info: &ChannelInfo) -> Result<ChannelView, ApiError> {
    let stream = s.hub.stream(&info.name);
    let started_at = stream.as_ref().map(|st| {
        let secs = st
            .started_at()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        rfc3339(secs)
    });
    let next = s.db.schedule(&info.name).await?;
    let health = stream.as_ref().map(|st| st.health());
    Ok(ChannelView {
        name: info.name.clone(),
        owner: info.owner.clone(),
        title: info.title.clone(),
        description: info.description.clone(),
        category: info.category.clone(),
        tags: info.tags.clone(),
        likes: info.likes,
        slow_mode_secs: info.slow_mode_secs,
        live: s.live.is_live(&info.name),
        started_at,
        viewers: s.live.viewers(&info.name),
        video: stream
            .as_ref()
            .zip(health.as_ref())
            .and_then(|(st, h)| has_video(st.source(), h, Instant::now())),
        now_playing: health.and_then(|h| h.now_playing),
        next_broadcast: next.first().map(ScheduledView::from),
        schedule: None,
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DirectoryQuery {
    /// Only live (`true`) or only offline (`false`) channels.
    live: Option<bool>,
    /// A category's slug.
    category: Option<String>,
    /// `next_cursor` from the previous page.
    cursor: Option<String>,
    /// Channels per page, 1 to 100 (24 by default).
    limit: Option<i64>,
}

/// Directory: channels by name, with their live state
///
/// Cursor pagination: pass the previous page's `next_cursor`.
#[utoipa::path(get, path = "/api/channels", tag = "channels",
    params(DirectoryQuery),
    responses((status = 200, body = ChannelPage)))]
pub(super) async fn directory(
    State(s): State<AppState>,
    q: Result<Query<DirectoryQuery>, QueryRejection>,
) -> Result<Json<ChannelPage>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = q.limit.unwrap_or(PAGE_DEFAULT);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1 to {PAGE_MAX}"
        )));
    }
    let mut after = q.cursor.unwrap_or_default();
    if !after.is_empty() && !crate::db::valid_channel_name(&after) {
        return Err(ApiError::BadRequest("invalid cursor".into()));
    }
    if q.category
        .as_deref()
        .is_some_and(|c| !crate::db::valid_channel_name(c))
    {
        // No category has such a slug: an empty page.
        return Ok(Json(ChannelPage {
            items: Vec::new(),
            next_cursor: None,
        }));
    }
    let mut items = Vec::new();
    let mut more = false;
    // Live state lives in memory, not in SQL: read pages until one is full.
    'pages: loop {
        let page =
            s.db.channel_page(&after, q.category.as_deref(), limit + 1)
                .await?;
        let exhausted = page.len() as i64 <= limit;
        for info in &page {
            after = info.name.clone();
            let live = s.live.is_live(&info.name);
            if q.live.is_some_and(|want| want != live) {
                continue;
            }
            if items.len() as i64 == limit {
                more = true;
                break 'pages;
            }
            items.push(channel_json(&s, info).await?);
        }
        if exhausted || page.is_empty() {
            break;
        }
    }
    let next_cursor = if more {
        items.last().map(|i| i.name.clone())
    } else {
        None
    };
    Ok(Json(ChannelPage { items, next_cursor }))
}

/// A channel with its live state and its schedule
#[utoipa::path(get, path = "/api/channels/{name}", operation_id = "get_channel", tag = "channels",
    params(("name" = String, Path)),
    responses((status = 200, body = ChannelView), (status = 404, body = ErrorBody)))]
pub(super) async fn channel(
    State(s): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ChannelView>, ApiError> {
    let info = channel_or_404(&s, &name).await?;
    let mut v = channel_json(&s, &info).await?;
    v.schedule = Some(
        s.db.schedule(&name)
            .await?
            .iter()
            .map(ScheduledView::from)
            .collect(),
    );
    Ok(Json(v))
}

/// Changes to a channel; a field left out stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Edit {
    #[schema(max_length = 140)]
    title: Option<String>,
    #[schema(max_length = 5000)]
    description: Option<String>,
    /// A category's slug; `null` clears it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    category: Option<Option<String>>,
    #[schema(max_items = 10)]
    tags: Option<Vec<String>>,
    #[schema(minimum = 0, maximum = 600)]
    slow_mode_secs: Option<i64>,
}

/// Tells a missing field (`None`) from an explicit `null` (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Ok(Some(Option::deserialize(d)?))
    }
}

/// An edit of a channel or one of its broadcasts: only the owner (or an
/// admin) may make it, and the texts must fit.
fn check_edit(
    user: &crate::db::User,
    info: &crate::db::ChannelInfo,
    what: &str,
    title: Option<&str>,
    description: Option<&str>,
) -> Result<(), ApiError> {
    if !is_owner(user, info, true) {
        return Err(ApiError::Forbidden(format!(
            "only the owner can edit {what}"
        )));
    }
    if let Some(t) = title {
        check_text("title", t, TITLE_MAX)?;
    }
    if let Some(d) = description {
        check_text("description", d, DESCRIPTION_MAX)?;
    }
    Ok(())
}

pub(super) fn check_text(what: &str, v: &str, max: usize) -> Result<(), ApiError> {
    if v.chars().count() > max {
        return Err(ApiError::BadRequest(format!(
            "{what} is longer than {max} characters"
        )));
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ApiError::BadRequest(format!(
            "{what} has control characters"
        )));
    }
    Ok(())
}

/// Edit the title, description, category, tags or slow mode (owner or admins)
#[utoipa::path(patch, path = "/api/channels/{name}", operation_id = "edit_channel", tag = "channels",
    params(("name" = String, Path)),
    request_body = Edit,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, body = ChannelView),
        SignedInErrors,
    ))]
pub(super) async fn edit(
    State(s): State<AppState>,
    me: SignedIn,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<Edit>,
) -> Result<Json<ChannelView>, ApiError> {
    let info = channel_or_404(&s, &name).await?;
    check_edit(
        &me.user,
        &info,
        "this channel",
        req.title.as_deref(),
        req.description.as_deref(),
    )?;
    if let Some(Some(c)) = &req.category {
        if !s.db.category_exists(c).await? {
            return Err(ApiError::BadRequest(format!("no category {c:?}")));
        }
    }
    let tags = match req.tags {
        Some(tags) => {
            if tags.len() > TAGS_MAX {
                return Err(ApiError::BadRequest(format!("at most {TAGS_MAX} tags")));
            }
            let mut out: Vec<String> = Vec::new();
            for t in tags {
                let t = t.trim().to_string();
                check_text("tag", &t, TAG_MAX)?;
                if t.is_empty() {
                    return Err(ApiError::BadRequest("empty tag".into()));
                }
                if !out.contains(&t) {
                    out.push(t);
                }
            }
            Some(out)
        }
        None => None,
    };
    if let Some(secs) = req.slow_mode_secs {
        if !(0..=SLOW_MODE_MAX).contains(&secs) {
            return Err(ApiError::BadRequest(format!(
                "slow_mode_secs must be 0 to {SLOW_MODE_MAX}"
            )));
        }
    }
    s.db.update_channel(
        &name,
        &ChannelPatch {
            title: req.title,
            description: req.description,
            category: req.category,
            tags,
            slow_mode_secs: req.slow_mode_secs,
        },
    )
    .await?;
    if let Some(secs) = req.slow_mode_secs {
        s.rooms.set_slow_mode(&name, secs);
    }
    let info = channel_or_404(&s, &name).await?;
    Ok(Json(channel_json(&s, &info).await?))
}

/// The stream key (its owner only; not even an admin reads it)
#[utoipa::path(get, path = "/api/channels/{name}/key", operation_id = "stream_key", tag = "channels",
    params(("name" = String, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, body = StreamKey),
        SignedInErrors,
    ))]
pub(super) async fn key(
    State(s): State<AppState>,
    me: SignedIn,
    Path(name): Path<String>,
) -> Result<Json<StreamKey>, ApiError> {
    owned_channel(&s, &me.user, &name, false, "see the stream key").await?;
    may_stream(&me.user)?;
    let row =
        s.db.channel(&name)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no channel named {name:?}")))?;
    Ok(Json(StreamKey {
        stream_key: row.stream_key,
    }))
}

/// Rotate the stream key (its owner, or admins)
///
/// Whatever is live with the old key ends now.
#[utoipa::path(post, path = "/api/channels/{name}/key", tag = "channels",
    params(("name" = String, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, body = RotatedKey),
        SignedInErrors,
    ))]
pub(super) async fn rotate_key(
    State(s): State<AppState>,
    me: SignedIn,
    Path(name): Path<String>,
) -> Result<Json<RotatedKey>, ApiError> {
    let info = owned_channel(&s, &me.user, &name, true, "rotate the stream key").await?;
    let owner = is_owner(&me.user, &info, false);
    if owner {
        may_stream(&me.user)?;
    }
    let key = s.db.rotate_stream_key(&name).await?;
    s.hub.kick(&name);
    tracing::info!(channel = %name, by = %me.user.username, "stream key rotated; live publish ended");
    if !owner {
        super::admin::record(&s, &me.user, "stream.rotate_key", &name, "").await;
    }
    Ok(Json(RotatedKey {
        stream_key: owner.then_some(key),
    }))
}

/// End the live broadcast now, whatever its ingest (owner or admins)
///
/// Viewers stay for the next publish. The key stays valid: an encoder that
/// reconnects is live again (rotate the key to stop that).
#[utoipa::path(delete, path = "/api/channels/{name}/live", tag = "channels",
    params(("name" = String, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No such channel, or it is not live", body = ErrorBody),
    ))]
pub(super) async fn end_live(
    State(s): State<AppState>,
    me: SignedIn,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let info = owned_channel(&s, &me.user, &name, true, "end the live stream").await?;
    if s.hub.stream(&name).is_none() {
        return Err(ApiError::NotFound(format!("{name} is not live")));
    }
    s.hub.kick(&name);
    if !is_owner(&me.user, &info, false) {
        super::admin::record(&s, &me.user, "stream.end", &name, "").await;
    }
    tracing::info!(channel = %name, by = %me.user.username, "live stream ended");
    Ok(StatusCode::NO_CONTENT)
}

/// Like the channel: once per user every 10 s
#[utoipa::path(post, path = "/api/channels/{name}/like", tag = "channels",
    params(("name" = String, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, body = Likes),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody),
    ))]
pub(super) async fn like(
    State(s): State<AppState>,
    me: SignedIn,
    Path(name): Path<String>,
) -> Result<Json<Likes>, ApiError> {
    channel_or_404(&s, &name).await?;
    let too_soon = |secs: u64| ApiError::TooManyRequests("one like every 10 seconds".into(), secs);
    if let Err(wait) = s.limits.like(me.user.id, &name, Instant::now()) {
        return Err(too_soon(wait.as_secs().max(1)));
    }
    // The same cooldown whichever server the like comes through.
    if let Some(bus) = s.rooms.bus() {
        let what = format!("like:{name}:{}", me.user.id);
        match bus.claim(&what, super::auth::LIKE_INTERVAL).await {
            Ok(true) => {}
            Ok(false) => return Err(too_soon(super::auth::LIKE_INTERVAL.as_secs())),
            Err(e) => {
                tracing::warn!("like: redis: {e}");
                return Err(ApiError::Busy("likes are unavailable right now".into(), 2));
            }
        }
    }
    let likes = s.db.add_like(&name).await?;
    s.rooms
        .announce(&name, json!({"type": "likes", "count": likes}));
    Ok(Json(Likes { likes }))
}

/// Changes to a past broadcast; a field left out stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct BroadcastEdit {
    #[schema(max_length = 140)]
    title: Option<String>,
    #[schema(max_length = 5000)]
    description: Option<String>,
    /// `false` hides it from everyone but its owner and admins.
    published: Option<bool>,
}

/// Publish or hide a past broadcast, edit its title and description (owner or admins)
#[utoipa::path(patch, path = "/api/channels/{channel}/broadcasts/{id}", tag = "broadcasts",
    params(("channel" = String, Path), ("id" = String, Path)),
    request_body = BroadcastEdit,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, body = BroadcastMeta),
        SignedInErrors,
    ))]
pub(super) async fn edit_broadcast(
    State(s): State<AppState>,
    me: SignedIn,
    Path((name, id)): Path<(String, String)>,
    ApiJson(req): ApiJson<BroadcastEdit>,
) -> Result<Json<BroadcastMeta>, ApiError> {
    let info = channel_or_404(&s, &name).await?;
    let not_found = || ApiError::NotFound(format!("no broadcast {id:?}"));
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let meta =
        s.db.broadcast_meta(id)
            .await?
            .filter(|m| m.channel == name)
            .ok_or_else(not_found)?;
    check_edit(
        &me.user,
        &info,
        "broadcasts",
        req.title.as_deref(),
        req.description.as_deref(),
    )?;
    s.db.edit_broadcast(
        meta.id,
        &crate::db::BroadcastPatch {
            title: req.title,
            description: req.description,
            published: req.published,
        },
    )
    .await?;
    let meta = s.db.broadcast_meta(meta.id).await?.ok_or_else(not_found)?;
    Ok(Json(meta))
}

// Its row goes first, then its recording's files: the order that never
// leaves a row without files (see
// [`crate::hls::recorder::Recordings::delete`]).
/// Delete a past broadcast and its recording (owner or admins)
///
/// One still on the air cannot be deleted (409): end it first.
#[utoipa::path(delete, path = "/api/channels/{channel}/broadcasts/{id}", tag = "broadcasts",
    params(("channel" = String, Path), ("id" = String, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204),
        SignedInErrors,
        (status = 409, description = "The broadcast is still live", body = ErrorBody),
    ))]
pub(super) async fn delete_broadcast(
    State(s): State<AppState>,
    me: SignedIn,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let info = channel_or_404(&s, &name).await?;
    let not_found = || ApiError::NotFound(format!("no broadcast {id:?}"));
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let row =
        s.db.broadcast(id)
            .await?
            .filter(|r| r.channel == name)
            .ok_or_else(not_found)?;
    if !is_owner(&me.user, &info, true) {
        return Err(ApiError::Forbidden(
            "only the owner can delete broadcasts".into(),
        ));
    }
    if row.ended_at.is_none() {
        return Err(ApiError::Conflict(
            "this broadcast is still live: end it before deleting it".into(),
        ));
    }
    match s.hls.recordings() {
        Some(rec) => rec.delete(&row, "owner-or-admin").await?,
        // Recording off on this server: no folder to remove.
        None => s.db.delete_broadcast(row.id).await?,
    }
    tracing::info!(channel = %name, broadcast = row.id, by = %me.user.username, "broadcast deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod video_tests {
    use super::{has_video, AUDIO_ALONE};
    use crate::hub::{Health, Source};
    use std::time::{Duration, Instant};

    #[test]
    fn video_is_unknown_until_the_source_says() {
        let now = Instant::now();
        let mut h = Health::default();
        assert_eq!(has_video(Source::Rtmp, &h, now), None);
        assert_eq!(has_video(Source::Icecast, &h, now), Some(false));
        h.metadata.insert("audiocodecid".into(), 10.into());
        assert_eq!(has_video(Source::Rtmp, &h, now), None, "no track yet");
        h.audio_codec = Some("AAC-LC".into());
        h.audio_since = Some(now);
        assert_eq!(has_video(Source::Rtmp, &h, now), Some(false));
        h.metadata.insert("videocodecid".into(), 7.into());
        assert_eq!(has_video(Source::Rtmp, &h, now), Some(true));
        let h = Health {
            video_codec: Some("H.264".into()),
            ..Health::default()
        };
        assert_eq!(has_video(Source::Whip, &h, now), Some(true));
    }

    /// A publisher that sends no metadata and its first audio before its
    /// first video is not taken for radio: only a while of sound alone says
    /// there is no picture.
    #[test]
    fn sound_first_without_metadata_is_not_radio_at_once() {
        // Counted from the first audio, not from the publish: a publisher
        // silent for a while before it sends anything is no different.
        let first = Instant::now();
        let h = Health {
            audio_codec: Some("AAC-LC".into()),
            audio_since: Some(first),
            ..Health::default()
        };
        assert_eq!(has_video(Source::Rtmp, &h, first), None);
        let soon = first + AUDIO_ALONE - Duration::from_millis(1);
        assert_eq!(has_video(Source::Rtmp, &h, soon), None);
        assert_eq!(
            has_video(Source::Rtmp, &h, first + AUDIO_ALONE),
            Some(false)
        );
        let h = Health {
            video_codec: Some("H.264".into()),
            ..h
        };
        assert_eq!(has_video(Source::Rtmp, &h, first), Some(true));
        // A WHIP offer names its tracks at once.
        let h = Health {
            audio_codec: Some("Opus".into()),
            ..Health::default()
        };
        assert_eq!(has_video(Source::Whip, &h, first), Some(false));
    }
}
