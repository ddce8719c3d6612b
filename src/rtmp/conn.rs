//! One RTMP connection: handshake, then an rml_rtmp `ServerSession` fed
//! from the socket. Accepts one publish on app `live` with a valid stream
//! key; refuses everything else with a status the client can show, one log
//! line, and a closed socket.

use super::to_hub::Ingest;
use super::{HANDSHAKE_TIMEOUT, IDLE_TIMEOUT};
use crate::hub::{Channels, Hub};
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::handshake::{Handshake, HandshakeError, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{MessagePayload, RtmpMessage};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionError, ServerSessionEvent, ServerSessionResult,
};
use rml_rtmp::time::RtmpTimestamp;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Bytes read from the socket at a time. The only buffer the client fills
/// directly; rml_rtmp then holds at most one message (<= 16 MiB, the RTMP
/// 24-bit length) in progress.
const READ_BUF: usize = 64 * 1024;

/// The app OBS and ffmpeg publish to: `rtmp://HOST:1935/live`.
const APP: &str = "live";

/// Status code the contract promises for a refused publish (CONTRACT.md).
const BAD_NAME: &str = "NetStream.Publish.BadName";

#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("no complete handshake within {0:?}")]
    HandshakeTimeout(std::time::Duration),
    #[error("bad handshake (not an RTMP client?): {0}")]
    Handshake(#[from] HandshakeError),
    #[error("nothing received (or nothing accepted) for {0:?}")]
    Idle(std::time::Duration),
    #[error("RTMP protocol error: {0}")]
    Session(#[from] ServerSessionError),
    #[error("RTMP session panicked on malformed input")]
    Panicked,
}

/// How the event loop should go on after some input.
enum Next {
    Continue,
    /// Flush what is queued, then close.
    Close,
}

struct Conn<C> {
    peer: SocketAddr,
    hub: Arc<Hub>,
    channels: Arc<C>,
    app: Option<String>,
    ingest: Option<Ingest>,
    out: Vec<u8>,
}

pub(super) async fn run<C: Channels>(
    mut socket: TcpStream,
    peer: SocketAddr,
    hub: Arc<Hub>,
    channels: Arc<C>,
    shutdown: CancellationToken,
) {
    let mut conn = Conn {
        peer,
        hub,
        channels,
        app: None,
        ingest: None,
        out: Vec::new(),
    };
    let result = tokio::select! {
        r = conn.serve(&mut socket, &shutdown) => r,
        // Shutdown while still in the handshake: nothing to flush.
        _ = shutdown.cancelled() => Ok(()),
    };
    match result {
        Ok(()) => tracing::debug!(%peer, "rtmp connection closed"),
        Err(e) => tracing::warn!(%peer, "rtmp connection closed: {e}"),
    }
    if let Some(ingest) = conn.ingest.take() {
        let h = ingest.publisher().stream().health();
        tracing::info!(%peer, channel = ingest.publisher().stream().channel(),
            video_units = h.video_units, audio_units = h.audio_units, "rtmp publish ended");
    }
    let _ = socket.shutdown().await;
}

impl<C: Channels> Conn<C> {
    async fn serve(
        &mut self,
        socket: &mut TcpStream,
        shutdown: &CancellationToken,
    ) -> Result<(), ConnError> {
        let leftover = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(socket))
            .await
            .map_err(|_| ConnError::HandshakeTimeout(HANDSHAKE_TIMEOUT))??;
        let (mut session, initial) = ServerSession::new(ServerSessionConfig::new())?;
        self.queue_results(initial);
        let mut next = self.input(&mut session, leftover).await?;
        let mut buf = vec![0u8; READ_BUF];
        loop {
            // A client that stops reading must not park this task forever.
            tokio::time::timeout(IDLE_TIMEOUT, socket.write_all(&self.out))
                .await
                .map_err(|_| ConnError::Idle(IDLE_TIMEOUT))??;
            self.out.clear();
            if let Next::Close = next {
                return Ok(());
            }
            let replaced = self
                .ingest
                .as_ref()
                .map(|i| i.publisher().stream().closed().clone());
            let n = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = async { match replaced {
                    Some(t) => t.cancelled_owned().await,
                    None => std::future::pending().await,
                } } => {
                    tracing::info!(peer = %self.peer, "stream replaced by a newer publisher (or ended); closing this connection");
                    return Ok(());
                }
                r = tokio::time::timeout(IDLE_TIMEOUT, socket.read(&mut buf)) => {
                    r.map_err(|_| ConnError::Idle(IDLE_TIMEOUT))??
                }
            };
            if n == 0 {
                return Ok(());
            }
            let chunk = buf.get(..n).unwrap_or_default().to_vec();
            next = self.input(&mut session, chunk).await?;
        }
    }

    fn queue_results(&mut self, results: Vec<ServerSessionResult>) -> Vec<ServerSessionEvent> {
        let mut events = Vec::new();
        for r in results {
            match r {
                ServerSessionResult::OutboundResponse(p) => self.out.extend_from_slice(&p.bytes),
                ServerSessionResult::RaisedEvent(e) => events.push(e),
                ServerSessionResult::UnhandleableMessageReceived(p) => {
                    tracing::trace!(peer = %self.peer, type_id = p.type_id, "unhandled RTMP message")
                }
            }
        }
        events
    }

    async fn input(
        &mut self,
        session: &mut ServerSession,
        mut bytes: Vec<u8>,
    ) -> Result<Next, ConnError> {
        if bytes.is_empty() {
            return Ok(Next::Continue);
        }
        if self.ingest.is_none() {
            lowercase_publish_mode(&mut bytes);
        }
        let out_before = self.out.len();
        // rml_rtmp 0.8 can hit arithmetic overflow on some malformed chunk
        // sequences; that must end this connection, not poison anything else.
        let results = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            session.handle_input(&bytes)
        }))
        .map_err(|_| ConnError::Panicked)??;
        let events = self.queue_results(results);
        if self.ingest.is_none()
            && events.is_empty()
            && contains(&self.out[out_before..], b"_error")
        {
            // rml_rtmp answers some bad requests itself (a publish with a
            // mode other than live/record/append, missing arguments) and
            // raises no event; without this the client would wait forever.
            tracing::warn!(peer = %self.peer, "rtmp request refused by the protocol layer (bad publish arguments or publish type); closing");
            crate::metrics::rtmp_publish(false);
            return Ok(Next::Close);
        }
        for event in events {
            if let Next::Close = self.event(session, event).await? {
                return Ok(Next::Close);
            }
        }
        Ok(Next::Continue)
    }

    async fn event(
        &mut self,
        session: &mut ServerSession,
        event: ServerSessionEvent,
    ) -> Result<Next, ConnError> {
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                // The app is checked at publish time, so that a wrong app
                // and a wrong key give the client the same BadName status.
                self.app = Some(app_name);
                let r = session.accept_request(request_id)?;
                self.queue_results(r);
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => {
                return self
                    .publish(session, request_id, &app_name, &stream_key)
                    .await
            }
            ServerSessionEvent::PlayStreamRequested {
                request_id,
                stream_key,
                stream_id,
                ..
            } => {
                let why = "RTMP playback is not offered; watch over WebRTC (WHEP) or HLS";
                let r = session.reject_request(request_id, "NetStream.Play.Failed", why)?;
                self.queue_results(r);
                self.queue_status(stream_id, "NetStream.Play.Failed", why);
                tracing::warn!(peer = %self.peer, name = %truncate(&stream_key), "rtmp play refused: {why}");
                return Ok(Next::Close);
            }
            ServerSessionEvent::PublishStreamFinished { .. } => return Ok(Next::Close),
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                if let Some(i) = &mut self.ingest {
                    i.metadata(&metadata);
                }
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                if let Some(i) = &mut self.ingest {
                    i.video(data, timestamp.value);
                }
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                if let Some(i) = &mut self.ingest {
                    i.audio(data, timestamp.value);
                }
            }
            _ => {}
        }
        Ok(Next::Continue)
    }

    async fn publish(
        &mut self,
        session: &mut ServerSession,
        request_id: u32,
        app_name: &str,
        stream_name: &str,
    ) -> Result<Next, ConnError> {
        let connected_app = self.app.clone().unwrap_or_else(|| app_name.to_string());
        let app = normalize_app(&connected_app);
        // OBS and others may append `?query` (e.g. tokens from a tcUrl) to
        // the stream name; the key is what comes before.
        let key = stream_name.split('?').next().unwrap_or_default();
        let refusal = if self.ingest.is_some() {
            Err("a second publish on the same connection".to_string())
        } else if app != APP {
            Err(format!(
                "unknown app {:?} (publish to rtmp://HOST/{APP})",
                truncate(app)
            ))
        } else if key.is_empty() {
            Err("empty stream key".to_string())
        } else {
            match self.channels.channel_for_key(key).await {
                Ok(Some(channel)) => Ok(channel),
                Ok(None) => Err("wrong stream key".to_string()),
                Err(e) => {
                    tracing::error!(peer = %self.peer, "stream key lookup failed: {e}");
                    Err("stream key lookup failed".to_string())
                }
            }
        };
        let channel = match refusal {
            Ok(channel) => channel,
            Err(why) => {
                let r = session.reject_request(request_id, BAD_NAME, &why)?;
                self.queue_results(r);
                // rml_rtmp sends the code in an `_error` command; clients
                // that follow nginx-rtmp/FMS wait for an onStatus instead.
                // Publish requests arrive on stream 1 (the first and only
                // stream id rml_rtmp hands out before a publish).
                self.queue_status(1, BAD_NAME, &why);
                crate::metrics::rtmp_publish(false);
                tracing::warn!(peer = %self.peer, app = %truncate(app), "rtmp publish refused: {why}");
                return Ok(Next::Close);
            }
        };
        let r = session.accept_request(request_id)?;
        self.queue_results(r);
        crate::metrics::rtmp_publish(true);
        tracing::info!(peer = %self.peer, %channel, "rtmp publish started");
        let publisher = self.hub.publish(&channel);
        self.ingest = Some(Ingest::new(publisher, self.peer, channel));
        Ok(Next::Continue)
    }

    /// Queues an `onStatus` error on `stream_id`. Serialized by a fresh chunk
    /// serializer with full (type 0) headers, which depend on no earlier
    /// chunk, and with the session's chunk size (which the client was told
    /// at the start), so it can follow the session's own output safely.
    fn queue_status(&mut self, stream_id: u32, code: &str, description: &str) {
        let config = ServerSessionConfig::new();
        let mut serializer = ChunkSerializer::new();
        let object: HashMap<String, Amf0Value> = [
            ("level", "error"),
            ("code", code),
            ("description", description),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Amf0Value::Utf8String(v.to_string())))
        .collect();
        let message = RtmpMessage::Amf0Command {
            command_name: "onStatus".to_string(),
            transaction_id: 0.0,
            command_object: Amf0Value::Null,
            additional_arguments: vec![Amf0Value::Object(object)],
        };
        let packet = serializer
            .set_max_chunk_size(config.chunk_size, RtmpTimestamp::new(0))
            .ok()
            .and_then(|_| {
                MessagePayload::from_rtmp_message(message, RtmpTimestamp::new(0), stream_id).ok()
            })
            .and_then(|payload| serializer.serialize(&payload, true, false).ok());
        match packet {
            Some(p) => self.out.extend_from_slice(&p.bytes),
            None => tracing::debug!(peer = %self.peer, "could not serialize onStatus"),
        }
    }
}

/// Runs the server side of the RTMP handshake (RTMP 1.0 section 5.2, plus
/// the digest variant Flash-era clients use) and returns any bytes the
/// client sent after it, which belong to the chunk stream.
async fn handshake(socket: &mut TcpStream) -> Result<Vec<u8>, ConnError> {
    let mut hs = Handshake::new(PeerType::Server);
    let mut buf = vec![0u8; 4096];
    loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Err(ConnError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        match hs.process_bytes(buf.get(..n).unwrap_or_default())? {
            HandshakeProcessResult::InProgress { response_bytes } => {
                socket.write_all(&response_bytes).await?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                socket.write_all(&response_bytes).await?;
                return Ok(remaining_bytes);
            }
        }
    }
}

/// `live`, `live/`, `live//` and `live?token=...` are all the app `live`.
fn normalize_app(app: &str) -> &str {
    app.split('?')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
}

/// Some encoders send the publish type as `LIVE`; the spec says `live` and
/// rml_rtmp 0.8 refuses anything else. Before publishing starts, rewrite an
/// AMF0 string `LIVE` (any case) to `live` in place: same length, so chunk
/// framing is untouched. The pattern (string marker, length 4) cannot occur
/// in chunk headers of the short command messages that precede a publish.
fn lowercase_publish_mode(bytes: &mut [u8]) {
    const PREFIX: [u8; 3] = [0x02, 0x00, 0x04];
    let mut i = 0;
    while i + 7 <= bytes.len() {
        if bytes.get(i..i + 3) == Some(&PREFIX[..]) {
            if let Some(word) = bytes.get_mut(i + 3..i + 7) {
                if word.eq_ignore_ascii_case(b"live") && word != b"live" {
                    word.make_ascii_lowercase();
                    tracing::debug!("publish type rewritten to lower-case 'live'");
                }
            }
        }
        i += 1;
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Client-chosen strings in logs are cut short so one line stays one line.
fn truncate(s: &str) -> String {
    s.chars().take(64).flat_map(char::escape_debug).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names() {
        for (raw, want) in [
            ("live", "live"),
            ("live/", "live"),
            ("live?x=1", "live"),
            ("live/?x=1", "live"),
            ("other", "other"),
            ("", ""),
        ] {
            assert_eq!(normalize_app(raw), want, "{raw}");
        }
    }

    #[test]
    fn publish_mode_rewrite() {
        let mut b = b"\x02\x00\x07goodkey\x02\x00\x04LIVE".to_vec();
        lowercase_publish_mode(&mut b);
        assert!(b.ends_with(b"\x02\x00\x04live"));
        let mut other = b"\x02\x00\x04LIFE".to_vec();
        lowercase_publish_mode(&mut other);
        assert_eq!(other, b"\x02\x00\x04LIFE");
    }
}
