//! Scheduled broadcasts: a channel's announced upcoming shows, which its
//! page and the directory list.

use super::auth::{ApiJson, MaybeSignedIn, SignedIn};
use super::channels::{channel_or_404, check_text, is_owner, owned_channel, TITLE_MAX};
use super::openapi::SignedInErrors;
use super::{ApiError, AppState, ErrorBody};
use crate::chat::{parse_rfc3339, rfc3339, unix_secs};
use crate::db::Scheduled;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A scheduled broadcast lasts at most this long (s).
pub const SCHEDULE_SPAN_MAX: i64 = 7 * 24 * 3600;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/channels/{name}/schedule",
            get(schedule).post(add_scheduled),
        )
        .route(
            "/api/channels/{name}/schedule/{id}",
            patch(edit_scheduled).delete(delete_scheduled),
        )
}

/// An announced broadcast.
#[derive(Serialize, ToSchema)]
pub(super) struct ScheduledView {
    #[serde(with = "crate::db::json_id")]
    #[schema(value_type = String)]
    id: i64,
    channel: String,
    title: String,
    #[schema(format = DateTime)]
    starts_at: String,
    #[schema(format = DateTime)]
    ends_at: String,
}

impl From<&Scheduled> for ScheduledView {
    fn from(x: &Scheduled) -> ScheduledView {
        ScheduledView {
            id: x.id,
            channel: x.channel.clone(),
            title: x.title.clone(),
            starts_at: rfc3339(x.starts_at),
            ends_at: rfc3339(x.ends_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct ScheduleList {
    items: Vec<ScheduledView>,
}

/// Upcoming broadcasts, soonest first
#[utoipa::path(get, path = "/api/channels/{name}/schedule", operation_id = "get_schedule", tag = "channels",
    params(("name" = String, Path)),
    responses((status = 200, body = ScheduleList), (status = 404, body = ErrorBody)))]
pub(super) async fn schedule(
    State(s): State<AppState>,
    _viewer: MaybeSignedIn,
    Path(name): Path<String>,
) -> Result<Json<ScheduleList>, ApiError> {
    channel_or_404(&s, &name).await?;
    let items =
        s.db.schedule(&name)
            .await?
            .iter()
            .map(ScheduledView::from)
            .collect();
    Ok(Json(ScheduleList { items }))
}

/// An announced broadcast: all three fields to create one; to edit, a
/// field left out stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ScheduleBody {
    #[schema(max_length = 140)]
    title: Option<String>,
    /// RFC 3339, like `2030-01-31T18:00:00Z`.
    #[schema(format = DateTime)]
    starts_at: Option<String>,
    /// After `starts_at`, at most 7 days later, and in the future.
    #[schema(format = DateTime)]
    ends_at: Option<String>,
}

fn parse_time(what: &str, v: &str) -> Result<i64, ApiError> {
    parse_rfc3339(v).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{what} must be RFC 3339, like 2030-01-31T18:00:00Z"
        ))
    })
}

fn check_scheduled(x: &Scheduled) -> Result<(), ApiError> {
    if x.title.trim().is_empty() {
        return Err(ApiError::BadRequest("title is empty".into()));
    }
    check_text("title", &x.title, TITLE_MAX)?;
    if x.ends_at <= x.starts_at {
        return Err(ApiError::BadRequest(
            "ends_at must be after starts_at".into(),
        ));
    }
    if x.ends_at - x.starts_at > SCHEDULE_SPAN_MAX {
        return Err(ApiError::BadRequest(
            "a broadcast lasts at most 7 days".into(),
        ));
    }
    if x.ends_at <= unix_secs() {
        return Err(ApiError::BadRequest("ends_at is in the past".into()));
    }
    Ok(())
}

/// Announce a broadcast (owner or admins)
#[utoipa::path(post, path = "/api/channels/{name}/schedule", tag = "channels",
    params(("name" = String, Path)),
    request_body = ScheduleBody,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, body = ScheduledView),
        SignedInErrors,
    ))]
pub(super) async fn add_scheduled(
    State(s): State<AppState>,
    me: SignedIn,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<ScheduleBody>,
) -> Result<Response, ApiError> {
    owned_channel(&s, &me.user, &name, true, "schedule broadcasts").await?;
    let (Some(title), Some(starts), Some(ends)) = (req.title, req.starts_at, req.ends_at) else {
        return Err(ApiError::BadRequest(
            "title, starts_at and ends_at are required".into(),
        ));
    };
    let x = Scheduled {
        id: crate::db::new_row_id(),
        channel: name,
        title,
        starts_at: parse_time("starts_at", &starts)?,
        ends_at: parse_time("ends_at", &ends)?,
    };
    check_scheduled(&x)?;
    s.db.put_scheduled(&x).await?;
    Ok((StatusCode::CREATED, Json(ScheduledView::from(&x))).into_response())
}

async fn owned_scheduled(
    s: &AppState,
    me: &SignedIn,
    name: &str,
    id: &str,
) -> Result<Scheduled, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no scheduled broadcast {id:?}")))?;
    let info = channel_or_404(s, name).await?;
    let x =
        s.db.scheduled(id)
            .await?
            .filter(|x| x.channel == name)
            .ok_or_else(|| ApiError::NotFound(format!("no scheduled broadcast {id}")))?;
    if !is_owner(&me.user, &info, true) {
        return Err(ApiError::Forbidden(
            "only the owner can change the schedule".into(),
        ));
    }
    Ok(x)
}

/// Edit an announced broadcast (owner or admins)
#[utoipa::path(patch, path = "/api/channels/{name}/schedule/{id}", tag = "channels",
    params(("name" = String, Path), ("id" = String, Path)),
    request_body = ScheduleBody,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, body = ScheduledView),
        SignedInErrors,
    ))]
pub(super) async fn edit_scheduled(
    State(s): State<AppState>,
    me: SignedIn,
    Path((name, id)): Path<(String, String)>,
    ApiJson(req): ApiJson<ScheduleBody>,
) -> Result<Json<ScheduledView>, ApiError> {
    let mut x = owned_scheduled(&s, &me, &name, &id).await?;
    if let Some(t) = req.title {
        x.title = t;
    }
    if let Some(t) = req.starts_at {
        x.starts_at = parse_time("starts_at", &t)?;
    }
    if let Some(t) = req.ends_at {
        x.ends_at = parse_time("ends_at", &t)?;
    }
    check_scheduled(&x)?;
    s.db.put_scheduled(&x).await?;
    Ok(Json(ScheduledView::from(&x)))
}

/// Remove an announced broadcast (owner or admins)
#[utoipa::path(delete, path = "/api/channels/{name}/schedule/{id}", tag = "channels",
    params(("name" = String, Path), ("id" = String, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204),
        SignedInErrors,
    ))]
pub(super) async fn delete_scheduled(
    State(s): State<AppState>,
    me: SignedIn,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let x = owned_scheduled(&s, &me, &name, &id).await?;
    s.db.delete_scheduled(x.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
