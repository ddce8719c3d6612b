//! RTMP ingest: OBS/ffmpeg publish to `rtmp://HOST:1935/live/STREAM_KEY`.
//! The accept loop lives here; [`conn`] runs one connection on rml_rtmp's
//! handshake and `ServerSession`; [`to_hub`] turns FLV tags into hub units.
//!
//! Limits: a client that does not finish the handshake within
//! [`HANDSHAKE_TIMEOUT`], or sends nothing for [`IDLE_TIMEOUT`], is dropped;
//! at most [`MAX_CONNECTIONS`] connections run at once.

mod conn;
mod to_hub;

use crate::hub::{Channels, Hub};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A real encoder completes the handshake in one round trip; ten seconds
/// covers a slow mobile uplink while port scanners and half-open clients go
/// away soon.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A publisher sends media many times a second, and even an idle
/// (connected, not yet publishing) OBS sends window acknowledgements; 30 s
/// of silence means the peer is gone.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Concurrent connections, publishing or not. Each may hold one RTMP message
/// in progress (up to 16 MiB); the cap bounds what a flood of connections
/// can make the server allocate. Far above the number of real publishers.
pub const MAX_CONNECTIONS: usize = 256;

/// Pause after a failed `accept` (e.g. out of file descriptors), so the
/// loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts RTMP connections until `shutdown` is cancelled, then closes every
/// connection (ending their streams) and returns once they are all gone.
pub async fn serve<C: Channels>(
    listener: TcpListener,
    hub: Arc<Hub>,
    channels: Arc<C>,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
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
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "rtmp connection refused: {MAX_CONNECTIONS} connections already open");
            continue;
        };
        // Control messages are small and latency matters more than packing.
        let _ = socket.set_nodelay(true);
        let (hub, channels, shutdown) = (hub.clone(), channels.clone(), shutdown.clone());
        tracker.spawn(async move {
            conn::run(socket, peer, hub, channels, shutdown).await;
            drop(permit);
        });
    }
    tracker.close();
    tracker.wait().await;
}
