//! `GET /api/ice-servers`: the STUN/TURN servers clients should use, with
//! fresh TURN credentials; the same list goes out as `Link` headers on
//! WHIP/WHEP answers.

use super::AppState;
use crate::auth::turn::{self, IceServer};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

/// The configured STUN/TURN servers and the TURN secret.
#[derive(Debug, Clone, Default)]
pub struct IceConfig {
    pub urls: Vec<String>,
    pub turn_secret: Option<String>,
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/ice-servers", get(list))
}

/// The TURN user a client's credentials are named after: its role and its
/// host. The relay caps allocations per user, so credentials handed to one
/// host open no more there than that host may, however widely they are
/// shared.
pub fn turn_user(role: &str, client: super::ClientAddr) -> String {
    format!("{role}@{}", client.host())
}

/// The list for one client, with credentials named after `user`.
pub fn servers_for(s: &AppState, user: &str) -> Vec<IceServer> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    turn::ice_servers(&s.ice.urls, s.ice.turn_secret.as_deref(), user, now)
}

/// `Link` header values for a WHIP/WHEP answer.
pub fn link_headers(s: &AppState, user: &str) -> Vec<String> {
    servers_for(s, user).iter().map(turn::link_header).collect()
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct IceServers {
    ice_servers: Vec<IceServer>,
}

/// STUN and TURN servers for WebRTC clients
///
/// TURN entries carry time-limited credentials (the TURN REST scheme
/// coturn's `use-auth-secret` checks). WHIP and WHEP answers carry the same
/// list as `Link` headers.
#[utoipa::path(get, path = "/api/ice-servers", operation_id = "ice_servers", tag = "operations",
    responses((status = 200, body = IceServers)))]
pub(super) async fn list(State(s): State<AppState>, client: super::ClientAddr) -> Json<IceServers> {
    let user = turn_user("viewer", client);
    Json(IceServers {
        ice_servers: servers_for(&s, &user),
    })
}
