//! Channel categories: anyone lists them, admins create, rename and
//! remove them.

use super::auth::{ApiJson, SignedIn};
use super::channels::check_text;
use super::openapi::SignedInErrors;
use super::{ApiError, AppState, ErrorBody};
use crate::db::{Category, Role};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/categories", get(categories))
        .route(
            "/api/categories/{slug}",
            put(put_category).delete(delete_category),
        )
}

#[derive(Serialize, ToSchema)]
pub(super) struct CategoryList {
    items: Vec<Category>,
}

/// Channel categories
#[utoipa::path(get, path = "/api/categories", tag = "channels",
    responses((status = 200, body = CategoryList)))]
pub(super) async fn categories(State(s): State<AppState>) -> Result<Json<CategoryList>, ApiError> {
    Ok(Json(CategoryList {
        items: s.db.categories().await?,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CategoryBody {
    #[schema(max_length = 64)]
    name: String,
}

/// Create or rename a category (admins)
#[utoipa::path(put, path = "/api/categories/{slug}", tag = "channels",
    params(("slug" = String, Path, pattern = "^[a-z0-9][a-z0-9_-]{0,31}$")),
    request_body = CategoryBody,
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, body = Category),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
pub(super) async fn put_category(
    State(s): State<AppState>,
    me: SignedIn,
    Path(slug): Path<String>,
    ApiJson(req): ApiJson<CategoryBody>,
) -> Result<Json<Category>, ApiError> {
    if me.user.role != Role::Admin {
        return Err(ApiError::Forbidden("admins only".into()));
    }
    if !crate::db::valid_channel_name(&slug) {
        return Err(ApiError::BadRequest(
            "category slug must be 1-32 characters of a-z, 0-9, '_' or '-'".into(),
        ));
    }
    let name = req.name.trim();
    if name.is_empty() {
        return Err(ApiError::BadRequest("category name is empty".into()));
    }
    check_text("category name", name, 64)?;
    s.db.put_category(&slug, name).await?;
    super::admin::record(&s, &me.user, "category.put", &slug, name).await;
    Ok(Json(Category {
        slug,
        name: name.to_string(),
    }))
}

/// Remove a category; its channels become uncategorised (admins)
#[utoipa::path(delete, path = "/api/categories/{slug}", tag = "channels",
    params(("slug" = String, Path)),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204),
        SignedInErrors,
    ))]
pub(super) async fn delete_category(
    State(s): State<AppState>,
    me: SignedIn,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    if me.user.role != Role::Admin {
        return Err(ApiError::Forbidden("admins only".into()));
    }
    if s.db.delete_category(&slug).await? {
        super::admin::record(&s, &me.user, "category.delete", &slug, "").await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no category {slug:?}")))
    }
}
