//! The HTTP listener: accepts connections within their caps and serves the
//! router on each with timeouts, so a slow or silent client holds nothing
//! for long.
//!
//! - [`HEADER_TIMEOUT`]: a request's head must arrive within it, and a
//!   keep-alive connection waiting for its next request is closed after
//!   it (hyper starts the same timer whenever it waits for a head).
//! - [`BODY_TIMEOUT`]: a request body must arrive within it.
//! - [`MAX_CONNECTIONS`] in all and [`MAX_PER_HOST`] from one client host
//!   (IPv4 address or IPv6 /64); a trusted proxy counts toward the first
//!   only.
//! - [`MAX_HEAD_BYTES`]: the request line and headers.

use crate::net::{ConnGate, ConnLimits, TrustedProxies};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// nginx waits 60 s for a request head; a browser sends one in
/// milliseconds. Ten seconds covers a phone on a bad link and frees a
/// slowloris connection six times sooner.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Bodies are small (offers, JSON) and sent at once.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Each open connection costs a task and two buffers (~20 KiB); this many
/// is ~300 MiB, and far more than one node's browsers and players hold.
pub const MAX_CONNECTIONS: usize = 16_384;
/// A browser opens six per origin, a player one or two: 256 serves a
/// busy office or campus NAT and stops one host from taking every slot.
pub const MAX_PER_HOST: usize = 256;
/// Request line plus headers: cookies and a bearer token fit many times.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Pause after a failed accept (out of file descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown`, then lets open requests
/// finish (the caller bounds how long it waits).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    proxies: Arc<TrustedProxies>,
    shutdown: CancellationToken,
) {
    let gate = ConnGate::new(
        "http",
        ConnLimits {
            total: MAX_CONNECTIONS,
            per_host: MAX_PER_HOST,
        },
    );
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("HTTP accept failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let Ok(permit) = gate.admit_from(peer.ip(), !proxies.trusts(peer.ip())) else {
            continue; // dropped: closes the connection
        };
        // Chat frames and API answers are small writes: without NODELAY,
        // Nagle holds each behind the previous one's (delayed, up to 40 ms)
        // ACK.
        let _ = tcp.set_nodelay(true);
        let service = tower::ServiceExt::map_request(
            app.clone(),
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            },
        );
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .max_buf_size(MAX_HEAD_BYTES)
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service))
            .with_upgrades();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            tokio::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => r,
                _ = shutdown.cancelled() => {
                    // Finish the request in flight, take no other.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::trace!(%peer, "HTTP connection ended: {e}");
            }
            drop(permit);
        });
    }
    connections.close();
    connections.wait().await;
}

/// The body deadline, as a layer for the router.
pub fn body_timeout() -> tower_http::timeout::RequestBodyTimeoutLayer {
    tower_http::timeout::RequestBodyTimeoutLayer::new(BODY_TIMEOUT)
}
