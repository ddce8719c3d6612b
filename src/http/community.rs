//! The product around the video: accounts, channels, chat, likes, the
//! schedule and oEmbed, with the OpenAPI description of them. One router,
//! one body limit.

use super::auth::MAX_JSON_BYTES;
use super::{
    admin, auth, avatar, categories, channels, chat_ws, email, invites, me, oembed, openapi,
    schedule, sessions, AppState,
};
use axum::extract::DefaultBodyLimit;
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(auth::routes())
        .merge(super::oidc::routes())
        .merge(me::routes())
        .merge(avatar::routes())
        .merge(sessions::routes())
        .merge(email::routes())
        .merge(invites::routes())
        .merge(admin::routes())
        .merge(channels::routes())
        .merge(categories::routes())
        .merge(schedule::routes())
        .merge(chat_ws::routes())
        .merge(oembed::routes())
        .merge(openapi::routes())
        .layer(DefaultBodyLimit::max(MAX_JSON_BYTES))
}
