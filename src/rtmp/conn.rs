//! One RTMP connection on a socket: reads into a [`Session`], writes what
//! it answers, looks up the stream keys it asks about, and enforces its
//! deadline and the idle timeout. Everything about the protocol is in the
//! session.

use super::session::{Session, SessionError, Step};
use super::{IDLE_TIMEOUT, PUBLISH_DEADLINE};
use crate::hub::{Channels, Hub};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A TCP connection, or TLS over one (RTMPS).
pub(super) trait Socket:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send
{
}
impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Socket for S {}
use tokio_util::sync::CancellationToken;

/// Bytes read from the socket at a time: the most one read can add to what
/// the session holds before it turns bytes into messages.
const READ_BUF: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("no publish within {PUBLISH_DEADLINE:?} of connecting")]
    PublishDeadline,
    #[error("nothing received (or nothing accepted) for {0:?}")]
    Idle(Duration),
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// This connection's share of `onair_rtmp_buffered_bytes`, given back when
/// the connection ends however it ends.
struct Buffered(usize);

impl Buffered {
    fn set(&mut self, now: usize) {
        crate::metrics::rtmp_buffered(now as i64 - self.0 as i64);
        self.0 = now;
    }
}

impl Drop for Buffered {
    fn drop(&mut self) {
        self.set(0);
    }
}

pub(super) async fn run<C: Channels, S: Socket>(
    mut socket: S,
    peer: SocketAddr,
    hub: Arc<Hub>,
    channels: Arc<C>,
    hooks: Arc<crate::hooks::Hooks>,
    shutdown: CancellationToken,
    fault_injection: bool,
) {
    let mut session = Session::new(peer, hub, Instant::now()).with_fault_injection(fault_injection);
    let mut buffered = Buffered(0);
    let result = tokio::select! {
        r = serve(&mut socket, &mut session, &*channels, &hooks, &mut buffered) => r,
        _ = shutdown.cancelled() => Ok(()),
    };
    match result {
        Ok(()) => tracing::debug!(%peer, "rtmp connection closed"),
        Err(e) => {
            if let ConnError::Session(s) = &e {
                if let Some(limit) = s.limit() {
                    crate::metrics::limit_hit(limit);
                }
            }
            if let ConnError::PublishDeadline = e {
                crate::metrics::limit_hit("rtmp_publish_deadline");
            }
            warn_limited!(%peer, "rtmp connection closed: {e}");
        }
    }
    if let Some(stream) = session.stream() {
        let h = stream.health();
        tracing::info!(%peer, channel = stream.channel(),
            video_units = h.video_units, audio_units = h.audio_units, "rtmp publish ended");
    }
    let _ = socket.shutdown().await;
}

async fn serve<C: Channels, S: Socket>(
    socket: &mut S,
    session: &mut Session,
    channels: &C,
    hooks: &crate::hooks::Hooks,
    buffered: &mut Buffered,
) -> Result<(), ConnError> {
    let mut buf = vec![0u8; READ_BUF];
    let mut step = Step::Read;
    loop {
        if !session.output().is_empty() {
            bounded(session.deadline(), socket.write_all(session.output())).await??;
            session.clear_output();
        }
        match step {
            Step::Close => return Ok(()),
            Step::Authorize { key } => {
                let verdict = match bounded(session.deadline(), channels.channel_for_key(&key))
                    .await?
                {
                    Ok(Some(channel)) => {
                        let who = crate::hooks::Admission {
                            channel: &channel,
                            protocol: "rtmp",
                            remote: session.peer().ip(),
                        };
                        match bounded(session.deadline(), hooks.admit(who)).await? {
                            Ok(()) => Ok(channel),
                            Err(why) => Err(why),
                        }
                    }
                    Ok(None) => Err("wrong stream key".to_string()),
                    Err(e) => {
                        tracing::error!(peer = %session.peer(), "stream key lookup failed: {e}");
                        Err("stream key lookup failed".to_string())
                    }
                };
                step = session.authorize(verdict)?;
                buffered.set(session.in_flight());
                continue;
            }
            Step::Read => {}
        }
        let replaced = session.stream().map(|s| s.closed().clone());
        let n = tokio::select! {
            _ = async { match replaced {
                Some(t) => t.cancelled_owned().await,
                None => std::future::pending().await,
            } } => {
                tracing::info!(peer = %session.peer(), "stream replaced by a newer publisher (or ended); closing this connection");
                return Ok(());
            }
            r = bounded(session.deadline(), socket.read(&mut buf)) => r??,
        };
        if n == 0 {
            return Ok(());
        }
        step = session.input(buf.get(..n).unwrap_or_default())?;
        buffered.set(session.in_flight());
    }
}

/// `fut`, cut off at the publish deadline while there is one, and after
/// [`IDLE_TIMEOUT`] in any case.
async fn bounded<T>(
    deadline: Option<Instant>,
    fut: impl Future<Output = T>,
) -> Result<T, ConnError> {
    let idle = Instant::now() + IDLE_TIMEOUT;
    let (until, expired) = match deadline {
        Some(d) if d < idle => (d, ConnError::PublishDeadline),
        _ => (idle, ConnError::Idle(IDLE_TIMEOUT)),
    };
    tokio::time::timeout_at(until.into(), fut)
        .await
        .map_err(|_| expired)
}
