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
//! - With TLS, the handshake within [`crate::tls::HANDSHAKE_TIMEOUT`], and
//!   over HTTP/2 [`MAX_H2_STREAMS`] at once.

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

/// Streams a connection may carry at once over HTTP/2: a page, its
/// player's playlist and parts, and the API fit many times; hyper's default
/// (200) is close, and a bound matters more than its exact value.
pub const MAX_H2_STREAMS: u32 = 128;
/// HTTP/2 keep-alive: a peer that does not answer a PING within
/// [`HEADER_TIMEOUT`] is gone, and its streams are freed.
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);

/// Runs a connection; on shutdown, finishes the requests in flight and
/// takes no other.
macro_rules! drive {
    ($conn:expr, $shutdown:expr) => {{
        let conn = $conn;
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => r,
            _ = $shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
    }};
}

/// Serves `app` on `listener` until `shutdown`, then lets open requests
/// finish (the caller bounds how long it waits). With `tls`, every
/// connection is HTTPS: HTTP/2 when the client's ALPN asks for it,
/// HTTP/1.1 otherwise.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    proxies: Arc<TrustedProxies>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) {
    let gate = ConnGate::new(
        if tls.is_some() { "https" } else { "http" },
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
                host_from_authority(&mut req);
                req
            },
        );
        let service = TowerToHyperService::new(service);
        let (shutdown, tls) = (shutdown.clone(), tls.clone());
        connections.spawn(async move {
            let ended = match tls {
                None => drive!(
                    http1()
                        .serve_connection(TokioIo::new(tcp), service)
                        .with_upgrades(),
                    shutdown
                ),
                Some(config) => {
                    let Some(stream) = crate::tls::accept(&config, tcp).await else {
                        return;
                    };
                    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                        let conn = hyper::server::conn::http2::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .timer(TokioTimer::new())
                        .max_concurrent_streams(MAX_H2_STREAMS)
                        .max_header_list_size(MAX_HEAD_BYTES as u32)
                        .keep_alive_interval(H2_PING_INTERVAL)
                        .keep_alive_timeout(HEADER_TIMEOUT)
                        .serve_connection(TokioIo::new(stream), service);
                        drive!(conn, shutdown)
                    } else {
                        drive!(
                            http1()
                                .serve_connection(TokioIo::new(stream), service)
                                .with_upgrades(),
                            shutdown
                        )
                    }
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

/// HTTP/2 names the host in `:authority`, which hyper puts in the URI,
/// not in a `Host` header: copy it there, so the same-origin check and
/// anything else reading `Host` see the same request over both versions.
fn host_from_authority<B>(req: &mut axum::http::Request<B>) {
    use axum::http::{header::HOST, HeaderValue};
    if req.headers().contains_key(HOST) {
        return;
    }
    let host = req
        .uri()
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    if let Some(host) = host {
        req.headers_mut().insert(HOST, host);
    }
}

/// HTTP/1.1 with the head timeout and size bound.
fn http1() -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    b
}

/// The body deadline, as a layer for the router.
pub fn body_timeout() -> tower_http::timeout::RequestBodyTimeoutLayer {
    tower_http::timeout::RequestBodyTimeoutLayer::new(BODY_TIMEOUT)
}
