//! Icecast-compatible audio: DJ software (BUTT, Mixxx, Liquidsoap, ices,
//! ffmpeg's `icecast://`) publishes a channel with `PUT /CHANNEL` (Icecast
//! 2.4+) or the legacy `SOURCE /CHANNEL`, HTTP Basic `source` : stream key;
//! `GET /admin/metadata?mode=updinfo&mount=/CHANNEL&song=...` sets what is
//! playing; radio apps and VLC listen with `GET /CHANNEL`, to the source's
//! own bytes with ICY metadata.
//!
//! - [`head`]: the request head, credentials, mount and query (sans-I/O).
//! - [`demux`]: MP3, ADTS and Ogg/Opus byte streams cut into frames.
//! - [`source`]: one source connection: its frames to the hub (the egresses
//!   read them there like any other publish) and to its [`mount`].
//! - [`listener`]: one plain listener, with ICY metadata blocks.
//! - [`metadata`]: now-playing updates.
//!
//! The port speaks just enough HTTP/1.x for these clients, not through the
//! main HTTP stack: `SOURCE` is no HTTP method, and a source's body has no
//! length and lasts for hours.

pub mod demux;
pub mod head;
pub mod listener;
mod metadata;
pub mod mount;
mod source;

use crate::auth::rate::{Rate, RateLimiter};
use crate::db::Db;
use crate::hub::{Channels, Hub};
use crate::net::{host_of, ConnGate, ConnLimits};
use head::{basic_auth, parse_head, Head, HeadError, MAX_HEAD_BYTES};
use mount::Mounts;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const DEFAULT_ICECAST: &str = "0.0.0.0:8000";

/// Flags for the Icecast port (flattened into `serve`'s flags).
#[derive(Debug, clap::Args, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct IcecastArgs {
    /// Icecast-compatible source ingest and plain listeners (`0` port: any
    /// free one); 8000 is Icecast's own port.
    #[arg(long, env = "ONAIR_ICECAST", global = true, default_value = DEFAULT_ICECAST)]
    pub icecast: Option<SocketAddr>,
}

/// Connections at once on the port, sources and listeners together. A
/// listener costs a socket, a task and a ring cursor (a few KiB), so this
/// is well within memory while far above any one server's audience of
/// plain listeners (browsers listen over WebRTC or HLS).
pub const MAX_CONNECTIONS: usize = 8192;
/// Connections from one address (an IPv4 address or an IPv6 /64), as for
/// the HTTP port: an office behind one NAT listens; one machine cannot
/// take the port.
pub const MAX_CONNECTIONS_PER_HOST: usize = 256;
/// A client has this long to send its request head: a real one sends it
/// in its first packet.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A source that sends nothing for this long is gone (Icecast's own
/// `source-timeout` default): its listeners and viewers are released and
/// the channel goes offline, instead of hanging on a dead connection.
pub const SOURCE_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// A listener whose socket takes no bytes for this long is dropped. A
/// player that pauses stops reading; past this it would be playing stale
/// audio anyway.
pub const LISTENER_WRITE_TIMEOUT: Duration = Duration::from_secs(20);
/// A source's bytes per second, averaged over its life: 1 Mbit/s is twice
/// Opus's highest bitrate and three times MP3's. Faster input is not
/// refused but read no faster (TCP pushes back on the source).
pub const MAX_SOURCE_BYTES_PER_SEC: u64 = 128 * 1024;
/// How far a source may run ahead of real time, in media time or at the
/// byte-rate cap: room for the burst some clients send on connect (their
/// buffer), while decoding never costs more than real time after it.
pub const MAX_SOURCE_LEAD: Duration = Duration::from_secs(10);
/// Requests that present credentials (sources and metadata updates), per
/// address: a key lookup reads every channel's key, so a stranger guessing
/// keys gets 20 tries, then one a second.
pub const AUTH_RATE: Rate = Rate {
    burst: 20,
    every: Duration::from_secs(1),
};
/// Now-playing updates per channel: a DJ changes track every few minutes;
/// a script that sends titles in a loop is cut to one every two seconds
/// (each one is pushed to every chat client of the channel).
pub const METADATA_RATE: Rate = Rate {
    burst: 10,
    every: Duration::from_secs(2),
};
/// A listener whose source disconnects waits this long for it to come
/// back (a DJ's encoder reconnecting) before its connection ends.
pub const LISTENER_RECONNECT_WAIT: Duration = Duration::from_secs(5);
/// Bytes read from a source at a time.
const READ_BUF: usize = 16 * 1024;
/// Pause after a failed `accept` (out of file descriptors, say).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The Icecast side of the server: its mounts, limits and what it talks to.
pub struct Icecast {
    hub: Arc<Hub>,
    db: Db,
    rooms: crate::chat::Rooms,
    hooks: Arc<crate::hooks::Hooks>,
    pub mounts: Arc<Mounts>,
    /// The port sources connect to, for the dashboard's settings.
    pub port: u16,
    auth_rate: RateLimiter<IpAddr>,
    meta_rate: RateLimiter<String>,
    gate: Arc<ConnGate>,
}

/// Why a request with credentials was refused.
enum Refusal {
    RateLimited(Duration),
    Unauthorized(&'static str),
    Internal,
}

impl Icecast {
    pub fn new(
        hub: Arc<Hub>,
        db: Db,
        rooms: crate::chat::Rooms,
        hooks: Arc<crate::hooks::Hooks>,
        mounts: Arc<Mounts>,
        port: u16,
    ) -> Arc<Icecast> {
        Arc::new(Icecast {
            hub,
            db,
            rooms,
            hooks,
            mounts,
            port,
            auth_rate: RateLimiter::new("icecast_auth_rate", AUTH_RATE),
            meta_rate: RateLimiter::new("icecast_metadata_rate", METADATA_RATE),
            gate: ConnGate::new(
                "icecast",
                ConnLimits {
                    total: MAX_CONNECTIONS,
                    per_host: MAX_CONNECTIONS_PER_HOST,
                },
            ),
        })
    }

    /// Plain listeners of `channel` now.
    pub fn listeners(&self, channel: &str) -> usize {
        self.mounts.listeners(channel)
    }

    /// Accepts connections until `shutdown`, then waits for them to end
    /// (sources end their streams; listeners are dropped).
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        loop {
            let (socket, peer) = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("icecast accept failed: {e}");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = self.gate.admit(peer.ip()) else {
                continue; // dropped: the socket closes; counted by the gate
            };
            let (me, shutdown) = (self.clone(), shutdown.clone());
            tracker.spawn(async move {
                let who = peer.to_string();
                crate::isolate::task("icecast", who, me.connection(socket, peer, shutdown)).await;
                drop(permit);
            });
        }
        tracker.close();
        tracker.wait().await;
    }

    async fn connection(
        self: Arc<Self>,
        mut socket: TcpStream,
        peer: SocketAddr,
        shutdown: CancellationToken,
    ) {
        let head = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut socket)) => r,
        };
        let (head, body) = match head {
            Ok(Ok(Some(h))) => h,
            Ok(Ok(None)) => return, // closed before a head
            Ok(Err(ReadHeadError::Head(e))) => {
                tracing::warn!(%peer, "icecast: bad request: {e}");
                crate::metrics::limit_hit("icecast_head");
                respond(&mut socket, "400 Bad Request", &[], &format!("{e}\n")).await;
                return;
            }
            Ok(Err(ReadHeadError::Io(e))) => {
                tracing::debug!(%peer, "icecast: connection failed before a request: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "icecast: no request within {HEAD_TIMEOUT:?}");
                return;
            }
        };
        match (head.method.as_str(), head.path()) {
            ("GET", "/admin/metadata") => metadata::handle(&self, &mut socket, peer, &head).await,
            ("SOURCE" | "PUT", _) => source::run(&self, socket, peer, head, body, shutdown).await,
            ("GET" | "HEAD", _) => listener::run(&self, socket, peer, head, shutdown).await,
            (m, _) => {
                tracing::warn!(%peer, method = %clip(m), "icecast: method not allowed");
                respond(
                    &mut socket,
                    "405 Method Not Allowed",
                    &[("Allow", "GET, HEAD, PUT, SOURCE")],
                    "",
                )
                .await;
            }
        }
    }

    /// Checks the credentials of a request for `channel`: Basic `source` :
    /// that channel's stream key, looked up as RTMP and WHIP look it up.
    async fn authorize(&self, head: &Head, ip: IpAddr, channel: &str) -> Result<(), Refusal> {
        self.auth_rate
            .check(&host_of(ip), Instant::now())
            .map_err(Refusal::RateLimited)?;
        let Some((user, key)) = head.header("authorization").and_then(basic_auth) else {
            return Err(Refusal::Unauthorized("no Basic credentials"));
        };
        if user != "source" {
            return Err(Refusal::Unauthorized("the user must be `source`"));
        }
        match self.db.channel_for_key(&key).await {
            Ok(Some(c)) if c == channel => Ok(()),
            Ok(_) => {
                crate::metrics::publish("icecast", false);
                Err(Refusal::Unauthorized("wrong stream key for this mount"))
            }
            Err(e) => {
                tracing::error!("icecast: stream key lookup failed: {e}");
                Err(Refusal::Internal)
            }
        }
    }
}

/// Answers a refusal with its status (and a log line from the caller).
async fn refuse(socket: &mut TcpStream, r: &Refusal) {
    match r {
        Refusal::RateLimited(after) => {
            let secs = after.as_secs().max(1).to_string();
            respond(
                socket,
                "429 Too Many Requests",
                &[("Retry-After", &secs)],
                "too many attempts; slow down\n",
            )
            .await
        }
        Refusal::Unauthorized(why) => {
            respond(
                socket,
                "401 Unauthorized",
                &[("WWW-Authenticate", "Basic realm=\"onair\"")],
                &format!("{why}\n"),
            )
            .await
        }
        Refusal::Internal => {
            respond(socket, "500 Internal Server Error", &[], "internal error\n").await
        }
    }
}

impl Refusal {
    fn why(&self) -> String {
        match self {
            Refusal::RateLimited(_) => "too many attempts from this address".into(),
            Refusal::Unauthorized(w) => (*w).into(),
            Refusal::Internal => "key lookup failed".into(),
        }
    }
}

enum ReadHeadError {
    Head(HeadError),
    Io(std::io::Error),
}

/// Reads until the head is complete; returns it and the bytes after it.
async fn read_head(socket: &mut TcpStream) -> Result<Option<(Head, Vec<u8>)>, ReadHeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = socket.read(&mut chunk).await.map_err(ReadHeadError::Io)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        match parse_head(&buf).map_err(ReadHeadError::Head)? {
            Some((head, len)) => {
                let rest = buf.get(len..).unwrap_or_default().to_vec();
                return Ok(Some((head, rest)));
            }
            None if buf.len() >= MAX_HEAD_BYTES => {
                return Err(ReadHeadError::Head(HeadError::TooLong))
            }
            None => {}
        }
    }
}

/// A short answer, then the connection is done with (HTTP/1.0: no
/// keep-alive on this port).
async fn respond(socket: &mut TcpStream, status: &str, headers: &[(&str, &str)], body: &str) {
    let mut out = format!(
        "HTTP/1.0 {status}\r\nServer: onair\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty()
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        out.push_str("Content-Type: text/plain; charset=utf-8\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.push_str(body);
    let _ = tokio::time::timeout(HEAD_TIMEOUT, socket.write_all(out.as_bytes())).await;
    let _ = tokio::time::timeout(HEAD_TIMEOUT, socket.shutdown()).await;
}

/// Client-chosen strings in logs are cut short so one line stays one line.
fn clip(s: &str) -> String {
    s.chars().take(64).flat_map(char::escape_debug).collect()
}
