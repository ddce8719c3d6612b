//! The client a request comes from, as every per-client decision sees it
//! (offer limit, login throttle, HLS viewer estimate, per-address caps):
//! the socket's address, or behind `--trusted-proxies` the address the
//! proxies forwarded (see [`crate::net::TrustedProxies::client`]).

use super::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

/// The requesting client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The address [`crate::net::host_of`] groups limits by.
    pub fn host(&self) -> IpAddr {
        crate::net::host_of(self.0)
    }
}

pub fn client_addr(
    proxies: &crate::net::TrustedProxies,
    peer: IpAddr,
    headers: &HeaderMap,
) -> IpAddr {
    let values = |name: &str| -> Vec<&str> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    };
    proxies.client(peer, values("forwarded"), values("x-forwarded-for"))
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Infallible> {
        // Every listener is served with connect info; a router driven
        // without it (a unit test's oneshot) counts as one local client.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        Ok(ClientAddr(client_addr(&s.proxies, peer, &parts.headers)))
    }
}
