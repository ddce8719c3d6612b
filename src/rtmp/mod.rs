//! RTMP ingest: OBS/ffmpeg publish to `rtmp://HOST:1935/live/STREAM_KEY`.
//! The accept loop lives here; [`session`] is one connection's protocol
//! (sans-I/O: rml_rtmp's handshake and `ServerSession` over our bounded
//! [`chunk`] reader and [`amf`] checks); [`conn`] drives it from a socket;
//! [`to_hub`] turns FLV tags into hub units.
//!
//! Limits, each closing only the connection that reaches it (and counted
//! in `onair_limit_hits_total{limit}`, or `onair_connections_refused_total`
//! for the caps):
//! - [`MAX_CONNECTIONS`] at once, [`MAX_CONNECTIONS_PER_HOST`] from one
//!   IPv4 address or IPv6 /64;
//! - a connection that has not published within [`PUBLISH_DEADLINE`] of
//!   connecting (handshake included), or sends nothing for
//!   [`IDLE_TIMEOUT`], is closed;
//! - messages: [`MAX_MEDIA_MESSAGE`] for audio and video once publishing,
//!   [`MAX_CONTROL_MESSAGE`] for everything else; bytes held in unfinished
//!   messages at most twice the largest allowed; [`chunk::MAX_CHUNK_STREAMS`]
//!   chunk stream ids; AMF nesting [`amf::MAX_DEPTH`]; [`MAX_STREAMS`]
//!   `createStream` calls.

/// `tracing::warn!` for lines about one connection (why it closed, why a
/// publish was refused) within [`WARNINGS`], `tracing::debug!` past it.
macro_rules! warn_limited {
    ($($arg:tt)+) => {
        $crate::log_limited!($crate::rtmp::WARNINGS, tracing::Level::WARN, $($arg)+)
    };
}

mod amf;
mod chunk;
mod conn;
mod session;
mod to_hub;

pub use session::{Session, SessionError, Step};

use crate::hub::{Channels, Hub};
use crate::net::{ConnGate, ConnLimits};
use chunk::Limits;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::either::Either;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// From accept to an accepted publish, handshake included. An encoder
/// needs three round trips and a key lookup; ten seconds covers a slow
/// mobile uplink, while a client that connects and idles (or sends pings
/// forever) gives its slot back soon.
pub const PUBLISH_DEADLINE: Duration = Duration::from_secs(10);

/// A publisher sends media many times a second; 30 s of silence means the
/// peer is gone. Also bounds how long a client that stops reading can
/// park its connection on a write.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Concurrent connections, publishing or not. Before publishing each holds
/// at most 2 x [`MAX_CONTROL_MESSAGE`]; far above the number of real
/// publishers a server carries.
pub const MAX_CONNECTIONS: usize = 256;

/// Connections from one host (IPv4 address or IPv6 /64): room for a studio
/// with several encoders behind one NAT, and reconnects overlapping their
/// old connection, while one host cannot take every slot.
pub const MAX_CONNECTIONS_PER_HOST: usize = 16;

/// The largest audio or video message (one FLV tag: for video, one access
/// unit). Keyframes are the big ones. x264 (veryfast) on a noisy 4K
/// picture, the hardest case, makes 2.96 MB keyframes at 50 Mbit/s CBR
/// (OBS's CBR gives the encoder a 1 s buffer), 5.7 MB at 100 Mbit/s and
/// 3.7 MB at CRF 18; YouTube's highest recommended 4K60 bitrate is
/// 51 Mbit/s. 8 MiB leaves room above that; RTMP itself allows 16 MiB.
/// (nginx-rtmp's default is 1 MiB, which 4K keyframes pass.)
pub const MAX_MEDIA_MESSAGE: u32 = 8 << 20;

/// The largest command, metadata or control message. OBS's and ffmpeg's
/// `connect` and `onMetaData` are under 1 KiB.
pub const MAX_CONTROL_MESSAGE: u32 = 64 << 10;

/// `createStream` calls per connection: each leaves an entry in rml_rtmp's
/// stream table for the connection's life. Encoders call it once.
pub const MAX_STREAMS: u32 = 8;

/// Before a publish is accepted no media is expected: an unauthenticated
/// connection holds at most 2 x 64 KiB.
const CONNECTING_LIMITS: Limits = Limits {
    media: MAX_CONTROL_MESSAGE,
    other: MAX_CONTROL_MESSAGE,
};
const PUBLISHING_LIMITS: Limits = Limits {
    media: MAX_MEDIA_MESSAGE,
    other: MAX_CONTROL_MESSAGE,
};

/// Warnings about single connections: every refused publish or broken
/// connection is worth a line, but a client cycling bad connections must
/// not be able to flood the log.
static WARNINGS: crate::logs::Budget = crate::logs::Budget::new(60);

/// Pause after a failed `accept` (e.g. out of file descriptors), so the
/// loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts RTMP connections until `shutdown` is cancelled, then closes every
/// connection (ending their streams) and returns once they are all gone.
/// With `tls`, every connection is RTMPS. `fault_injection` is for tests
/// only ([`Session::with_fault_injection`]).
pub async fn serve<C: Channels>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    hub: Arc<Hub>,
    channels: Arc<C>,
    hooks: Arc<crate::hooks::Hooks>,
    shutdown: CancellationToken,
    fault_injection: bool,
) {
    let tracker = TaskTracker::new();
    let gate = ConnGate::new(
        if tls.is_some() { "rtmps" } else { "rtmp" },
        ConnLimits {
            total: MAX_CONNECTIONS,
            per_host: MAX_CONNECTIONS_PER_HOST,
        },
    );
    let mut refused = 0u64;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("rtmp accept failed: {e}");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let permit = match gate.admit(peer.ip()) {
            Ok(p) => p,
            Err(why) => {
                // A flood is one line per doubling, not one per connection.
                refused += 1;
                if refused.is_power_of_two() {
                    tracing::warn!(%peer, ?why, refused, "rtmp connection refused at the connection cap");
                }
                continue;
            }
        };
        // Control messages are small and latency matters more than packing.
        let _ = socket.set_nodelay(true);
        let (hub, channels, shutdown) = (hub.clone(), channels.clone(), shutdown.clone());
        let (hooks, tls) = (hooks.clone(), tls.clone());
        tracker.spawn(async move {
            let _permit = permit;
            let socket = match tls {
                None => Either::Left(socket),
                // The handshake's own deadline is within the 10 s a
                // connection has to start publishing.
                Some(config) => match crate::tls::accept(&config, socket).await {
                    Some(s) => Either::Right(s),
                    None => return,
                },
            };
            let conn = conn::run(
                socket,
                peer,
                hub,
                channels,
                hooks,
                shutdown,
                fault_injection,
            );
            crate::isolate::task("rtmp", peer, conn).await;
        });
    }
    tracker.close();
    tracker.wait().await;
}
