//! One RTMP connection's protocol, sans-I/O: bytes from the client in,
//! bytes for the client out, units to the hub, and the one question it
//! cannot answer itself (whose stream key is this?) handed to the caller.
//! [`super::conn`] drives it from a socket; the `rtmp` fuzz target drives
//! it from fuzz input.
//!
//! The layers: rml_rtmp's handshake; our chunk reader ([`super::chunk`],
//! bounded); a look at every AMF body ([`super::amf`]) so that rml_amf0
//! never recurses deeper than [`amf::MAX_DEPTH`] and rml_rtmp never sees
//! the inputs it panics on; rml_rtmp's `ServerSession` for the commands,
//! fed one whole message at a time so that its own chunk deserializer
//! never holds anything; and [`Ingest`] for the media.
//!
//! Accepts one publish on app `live` with a valid stream key; refuses
//! everything else with a status the client can show, and closes.

use super::amf;
use super::chunk::{ChunkError, ChunkReader, Message};
use super::to_hub::Ingest;
use crate::hub::{Hub, Stream};
use rml_rtmp::chunk_io::ChunkSerializer;
use rml_rtmp::handshake::{Handshake, HandshakeError, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{MessagePayload, RtmpMessage};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionError, ServerSessionEvent, ServerSessionResult,
};
use rml_rtmp::time::RtmpTimestamp;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The app OBS and ffmpeg publish to: `rtmp://HOST:1935/live`.
const APP: &str = "live";

/// Status code the contract promises for a refused publish (CONTRACT.md).
const BAD_NAME: &str = "NetStream.Publish.BadName";

/// Messages carrying AMF0 (RTMP 1.0 7.1): data and commands, with the AMF3
/// types that Flash-era clients send AMF0 in (rml_rtmp reads both as AMF0).
const TYPE_WINDOW_ACK_SIZE: u8 = 5;
const TYPE_AMF3_DATA: u8 = 15;
const TYPE_AMF3_COMMAND: u8 = 17;
const TYPE_AMF0_DATA: u8 = 18;
const TYPE_AMF0_COMMAND: u8 = 20;

/// rml_rtmp adds every input's length to a `u32` count of bytes since its
/// last acknowledgement and sends one when the count reaches the window
/// the client asked for. A window at most this large keeps that sum from
/// overflowing (2^31 plus one message < 2^32).
const MAX_WINDOW_ACK_SIZE: u32 = 1 << 31;

/// The chunk stream id messages are handed to rml_rtmp on, each whole in
/// one type 0 chunk; [`INNER_CHUNK_SIZE`] is sent to it first so that no
/// message is split.
const INNER_CSID: u8 = 3;
const INNER_CHUNK_SIZE: [u8; 16] = [
    0x02, 0, 0, 0, 0, 0, 4, 0x01, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff,
];

/// What the caller should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send the output, then read more.
    Read,
    /// A publish passed every check but the stream key: look it up, then
    /// call [`Session::authorize`].
    Authorize { key: String },
    /// Send the output, then close.
    Close,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("bad handshake (not an RTMP client?): {0}")]
    Handshake(#[from] HandshakeError),
    #[error("RTMP protocol error: {0}")]
    Protocol(#[from] ServerSessionError),
    #[error("RTMP chunk stream: {0}")]
    Chunk(#[from] ChunkError),
    #[error("{0}")]
    AmfDepth(#[from] amf::TooDeep),
    #[error(
        "more than {} createStream calls on one connection",
        super::MAX_STREAMS
    )]
    TooManyStreams,
    #[error("a second connect on one connection")]
    SecondConnect,
    #[error("an AMF command without name, transaction id and command object")]
    ShortCommand,
}

impl SessionError {
    /// The named limit this error is, for `onair_limit_hits_total`.
    pub fn limit(&self) -> Option<&'static str> {
        Some(match self {
            SessionError::Chunk(ChunkError::TooLarge { .. }) => "rtmp_message_size",
            SessionError::Chunk(ChunkError::InFlight { .. }) => "rtmp_in_flight_bytes",
            SessionError::Chunk(ChunkError::TooManyChunkStreams) => "rtmp_chunk_streams",
            SessionError::AmfDepth(_) => "rtmp_amf_depth",
            SessionError::TooManyStreams => "rtmp_streams_per_connection",
            _ => return None,
        })
    }
}

enum Phase {
    Handshake(Box<Handshake>),
    Messages {
        reader: ChunkReader,
        rtmp: Box<ServerSession>,
    },
}

struct PendingPublish {
    request_id: u32,
    key: String,
}

pub struct Session {
    peer: SocketAddr,
    hub: Arc<Hub>,
    /// Until a publish is accepted: when the connection must have one.
    deadline: Option<Instant>,
    phase: Phase,
    out: Vec<u8>,
    app: Option<String>,
    ingest: Option<Ingest>,
    pending: Option<PendingPublish>,
    /// Events raised by one message after a publish request in it.
    events: VecDeque<ServerSessionEvent>,
    connects: u32,
    streams_created: u32,
    fault_injection: bool,
}

impl Session {
    /// A connection accepted at `now`.
    pub fn new(peer: SocketAddr, hub: Arc<Hub>, now: Instant) -> Session {
        Session {
            peer,
            hub,
            deadline: Some(now + super::PUBLISH_DEADLINE),
            phase: Phase::Handshake(Box::new(Handshake::new(PeerType::Server))),
            out: Vec::new(),
            app: None,
            ingest: None,
            pending: None,
            events: VecDeque::new(),
            connects: 0,
            streams_created: 0,
            fault_injection: false,
        }
    }

    /// Tests only (`--fault-injection`): a command named
    /// `onair-fault:rtmp` panics, to prove that a panic while serving one
    /// connection ends that connection alone.
    pub fn with_fault_injection(mut self, on: bool) -> Session {
        self.fault_injection = on;
        self
    }

    /// When the connection is to be closed unless it has published by then.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Bytes for the client; clear them with [`clear_output`](Self::clear_output) once sent.
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    pub fn clear_output(&mut self) {
        self.out.clear();
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The stream this connection publishes, once accepted.
    pub fn stream(&self) -> Option<&Arc<Stream>> {
        self.ingest.as_ref().map(|i| i.publisher().stream())
    }

    /// Bytes taken in and not yet turned into messages.
    pub fn in_flight(&self) -> usize {
        match &self.phase {
            Phase::Handshake(_) => 0,
            Phase::Messages { reader, .. } => reader.in_flight(),
        }
    }

    /// Takes bytes from the client. With a publish waiting for
    /// [`authorize`](Self::authorize), they are only stored.
    pub fn input(&mut self, bytes: &[u8]) -> Result<Step, SessionError> {
        match &mut self.phase {
            Phase::Messages { reader, .. } => reader.push(bytes),
            Phase::Handshake(_) if bytes.is_empty() => return Ok(Step::Read),
            Phase::Handshake(hs) => match hs.process_bytes(bytes)? {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.out.extend_from_slice(&response_bytes);
                    return Ok(Step::Read);
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.out.extend_from_slice(&response_bytes);
                    let mut reader = ChunkReader::new(super::CONNECTING_LIMITS);
                    reader.push(&remaining_bytes);
                    self.start_messages(reader)?;
                }
            },
        }
        self.process()
    }

    /// The answer to [`Step::Authorize`]: the channel the key belongs to,
    /// or why the publish is refused.
    pub fn authorize(&mut self, verdict: Result<String, String>) -> Result<Step, SessionError> {
        let Some(p) = self.pending.take() else {
            return Ok(Step::Read);
        };
        let channel = match verdict {
            Ok(channel) => channel,
            Err(why) => return self.refuse(p.request_id, &why),
        };
        let Phase::Messages { reader, rtmp } = &mut self.phase else {
            return Ok(Step::Close);
        };
        let r = rtmp.accept_request(p.request_id)?;
        reader.set_limits(super::PUBLISHING_LIMITS);
        self.queue_results(r);
        crate::metrics::rtmp_publish(true);
        tracing::info!(peer = %self.peer, %channel, "rtmp publish started");
        let publisher = self.hub.publish(&channel);
        publisher
            .stream()
            .hold_key(crate::hub::keys::fingerprint(&p.key));
        self.ingest = Some(Ingest::new(publisher, self.peer, channel));
        self.deadline = None;
        self.process()
    }

    fn start_messages(&mut self, reader: ChunkReader) -> Result<(), SessionError> {
        let (mut rtmp, initial) = ServerSession::new(ServerSessionConfig::new())?;
        // Tells rml_rtmp's deserializer, not the client, to take each
        // message as one chunk.
        rtmp.handle_input(&INNER_CHUNK_SIZE)?;
        self.phase = Phase::Messages {
            reader,
            rtmp: Box::new(rtmp),
        };
        let events = self.queue_results(initial);
        self.events.extend(events);
        Ok(())
    }

    /// Handles queued events, then messages, until input runs out or the
    /// caller has something to do.
    fn process(&mut self) -> Result<Step, SessionError> {
        loop {
            if let Some(p) = &self.pending {
                return Ok(Step::Authorize { key: p.key.clone() });
            }
            if let Some(event) = self.events.pop_front() {
                match self.event(event)? {
                    Step::Read => continue,
                    step => return Ok(step),
                }
            }
            let Phase::Messages { reader, .. } = &mut self.phase else {
                return Ok(Step::Read);
            };
            let Some(message) = reader.next_message()? else {
                return Ok(Step::Read);
            };
            if let Step::Close = self.message(message)? {
                return Ok(Step::Close);
            }
        }
    }

    /// Checks one message, hands it to rml_rtmp and queues what it raised.
    fn message(&mut self, mut m: Message) -> Result<Step, SessionError> {
        let mut publish = false;
        match m.type_id {
            TYPE_AMF0_DATA | TYPE_AMF3_DATA => {
                let shape = amf::shape(&m.payload)?;
                // rml_rtmp 0.8 indexes past the end of a `@setDataFrame`
                // with fewer than two values after it.
                if shape.first_string == Some(b"@setDataFrame") && shape.values < 3 {
                    tracing::debug!(peer = %self.peer, "@setDataFrame without metadata ignored");
                    return Ok(Step::Read);
                }
            }
            TYPE_AMF0_COMMAND | TYPE_AMF3_COMMAND => {
                // rml_rtmp drops the marker byte an AMF3 command may start with.
                let skip =
                    usize::from(m.type_id == TYPE_AMF3_COMMAND && m.payload.first() == Some(&0));
                let body = m.payload.get_mut(skip..).unwrap_or_default();
                // rml_rtmp 0.8 drains three values (name, transaction,
                // command object) whether or not there are three.
                if amf::shape(body)?.values < 3 {
                    return Err(SessionError::ShortCommand);
                }
                match amf::command_name(body) {
                    Some(b"createStream") => {
                        self.streams_created += 1;
                        if self.streams_created > super::MAX_STREAMS {
                            return Err(SessionError::TooManyStreams);
                        }
                    }
                    Some(b"publish") if self.ingest.is_none() => {
                        lowercase_publish_mode(body);
                        publish = true;
                    }
                    Some(b"onair-fault:rtmp") if self.fault_injection => {
                        panic!("injected fault: one RTMP connection")
                    }
                    _ => {}
                }
            }
            TYPE_WINDOW_ACK_SIZE => {
                if let Some(size) = m.payload.get_mut(..4) {
                    let v = <[u8; 4]>::try_from(&*size).map_or(0, u32::from_be_bytes);
                    size.copy_from_slice(&v.min(MAX_WINDOW_ACK_SIZE).to_be_bytes());
                }
            }
            _ => {}
        }
        let Phase::Messages { rtmp, .. } = &mut self.phase else {
            return Ok(Step::Close);
        };
        let (header, n) = inner_header(&m);
        let mut results = rtmp.handle_input(header.get(..n).unwrap_or_default())?;
        results.extend(rtmp.handle_input(&m.payload)?);
        let events = self.queue_results(results);
        let requested = events
            .iter()
            .any(|e| matches!(e, ServerSessionEvent::PublishStreamRequested { .. }));
        if publish && !requested {
            // rml_rtmp answered a bad publish itself (a mode other than
            // live/record/append, missing arguments) with an `_error` and
            // raised nothing; without this the client would wait forever.
            warn_limited!(peer = %self.peer, "rtmp request refused by the protocol layer (bad publish arguments or publish type); closing");
            crate::metrics::rtmp_publish(false);
            return Ok(Step::Close);
        }
        self.events.extend(events);
        Ok(Step::Read)
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

    fn event(&mut self, event: ServerSessionEvent) -> Result<Step, SessionError> {
        let Phase::Messages { rtmp, .. } = &mut self.phase else {
            return Ok(Step::Close);
        };
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                self.connects += 1;
                if self.connects > 1 {
                    return Err(SessionError::SecondConnect);
                }
                // The app is checked at publish time, so that a wrong app
                // and a wrong key give the client the same BadName status.
                self.app = Some(app_name);
                let r = rtmp.accept_request(request_id)?;
                self.queue_results(r);
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => return self.publish_requested(request_id, &app_name, &stream_key),
            ServerSessionEvent::PlayStreamRequested {
                request_id,
                stream_key,
                stream_id,
                ..
            } => {
                let why = "RTMP playback is not offered; watch over WebRTC (WHEP) or HLS";
                let r = rtmp.reject_request(request_id, "NetStream.Play.Failed", why)?;
                self.queue_results(r);
                self.queue_status(stream_id, "NetStream.Play.Failed", why);
                // The name may be a stream key (a player given the publish URL):
                // only its length is logged.
                warn_limited!(peer = %self.peer, name_len = stream_key.len(), "rtmp play refused: {why}");
                return Ok(Step::Close);
            }
            ServerSessionEvent::PublishStreamFinished { .. } => return Ok(Step::Close),
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
        Ok(Step::Read)
    }

    fn publish_requested(
        &mut self,
        request_id: u32,
        app_name: &str,
        stream_name: &str,
    ) -> Result<Step, SessionError> {
        let connected_app = self.app.clone().unwrap_or_else(|| app_name.to_string());
        let app = normalize_app(&connected_app);
        // OBS and others may append `?query` (e.g. tokens from a tcUrl) to
        // the stream name; the key is what comes before.
        let key = stream_name.split('?').next().unwrap_or_default();
        let why = if self.ingest.is_some() {
            "a second publish on the same connection".to_string()
        } else if app != APP {
            format!(
                "unknown app {:?} (publish to rtmp://HOST/{APP})",
                truncate(app)
            )
        } else if key.is_empty() {
            "empty stream key".to_string()
        } else {
            self.pending = Some(PendingPublish {
                request_id,
                key: key.to_string(),
            });
            return Ok(Step::Authorize {
                key: key.to_string(),
            });
        };
        self.refuse(request_id, &why)
    }

    fn refuse(&mut self, request_id: u32, why: &str) -> Result<Step, SessionError> {
        let Phase::Messages { rtmp, .. } = &mut self.phase else {
            return Ok(Step::Close);
        };
        let r = rtmp.reject_request(request_id, BAD_NAME, why)?;
        self.queue_results(r);
        // rml_rtmp sends the code in an `_error` command; clients that
        // follow nginx-rtmp/FMS wait for an onStatus instead. Publish
        // requests arrive on stream 1 (the first and only stream id
        // rml_rtmp hands out before a publish).
        self.queue_status(1, BAD_NAME, why);
        crate::metrics::rtmp_publish(false);
        let app = self.app.as_deref().map(normalize_app).unwrap_or_default();
        warn_limited!(peer = %self.peer, app = %truncate(app), "rtmp publish refused: {why}");
        Ok(Step::Close)
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

/// A type 0 chunk header for `m` on [`INNER_CSID`] (RTMP 1.0 5.3.1.2.1),
/// with the extended timestamp when it needs one; returns it and its length.
fn inner_header(m: &Message) -> ([u8; 16], usize) {
    let mut h = [0u8; 16];
    let field = m.timestamp.min(0xFF_FFFF);
    let len = m.payload.len() as u32;
    h[0] = INNER_CSID;
    h[1..4].copy_from_slice(&field.to_be_bytes()[1..]);
    h[4..7].copy_from_slice(&len.to_be_bytes()[1..]);
    h[7] = m.type_id;
    h[8..12].copy_from_slice(&m.stream_id.to_le_bytes());
    if field == 0xFF_FFFF {
        h[12..16].copy_from_slice(&m.timestamp.to_be_bytes());
        (h, 16)
    } else {
        (h, 12)
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
/// rml_rtmp 0.8 refuses anything else. Rewrites an AMF0 string `LIVE` (any
/// case) in a publish command's body to `live` in place.
fn lowercase_publish_mode(body: &mut [u8]) {
    const PREFIX: [u8; 3] = [0x02, 0x00, 0x04];
    let mut i = 0;
    while i + 7 <= body.len() {
        if body.get(i..i + 3) == Some(&PREFIX[..]) {
            if let Some(word) = body.get_mut(i + 3..i + 7) {
                if word.eq_ignore_ascii_case(b"live") && word != b"live" {
                    word.make_ascii_lowercase();
                    tracing::debug!("publish type rewritten to lower-case 'live'");
                }
            }
        }
        i += 1;
    }
}

/// Client-chosen strings in logs are cut short so one line stays one line.
fn truncate(s: &str) -> String {
    s.chars().take(64).flat_map(char::escape_debug).collect()
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
