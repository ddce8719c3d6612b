//! onair: a live-streaming server. RTMP and WHIP in; WebRTC (WHEP) and
//! LL-HLS out; chat beside the video.
//!
//! # Layout
//! - [`media`]: `Unit`, `TrackConfig`: the vocabulary every module shares.
//! - [`codec`]: pure parsers (H.264, AAC, FLV); no I/O, no tokio.
//! - [`hub`]: channel -> live `Stream`; publishers write units, readers
//!   consume them through bounded queues.
//! - [`rtmp`]: RTMP ingest -> hub: a sans-I/O session (our bounded chunk
//!   reader, rml_rtmp's handshake and commands) driven from a socket.
//! - [`sfu`]: WebRTC on one UDP port. WHEP viewers run on our lean
//!   sans-I/O session (webrtc-rs's component crates for STUN, DTLS and
//!   SCTP; our own SRTP); WHIP publishers on webrtc-rs's `rtc` peer
//!   connection.
//! - [`audio`]: AAC -> Opus, once per stream.
//! - [`hls`]: LL-HLS segmenter and live playlists, recordings (with crash
//!   recovery and the free-space floor), thumbnails.
//! - [`flv`]: HTTP-FLV playback: hub units to FLV tags, one bounded reader
//!   per player.
//! - [`icecast`]: Icecast source ingest (MP3, AAC, Ogg/Opus), plain
//!   listeners with ICY metadata, now-playing.
//! - [`http`]: axum routes; no media logic.
//! - [`db`]: sqlx queries (SQLite by default, Postgres by URL).
//! - [`config`]: flags, env and TOML.
//! - [`auth`]: passwords (argon2id), session tokens, username rules.
//! - [`avatar`]: profile pictures, decoded under limits and re-encoded.
//! - [`store`]: named blobs written whole (avatars), in the data directory.
//! - [`chat`]: rooms per channel, joined by WebSocket and WHEP data channel.
//! - [`net`]: client addresses (IPv6 /64, trusted proxies) and connection caps.
//! - [`node`]: this server's identity among several sharing a database.
//! - [`isolate`]: a panic drops one peer or connection; engines are supervised.
//!
//! # The life of a packet
//! One RTMP video frame on its way to a WebRTC viewer's socket:
//! 1. [`rtmp`] reads the FLV tag, bounded, and [`codec`] turns it into a
//!    `media::Unit` (an H.264 access unit), published into the channel's
//!    [`hub`] stream.
//! 2. The channel's WebRTC egress (`sfu::egress`, one task per watched
//!    channel) reads the unit once and packetizes it once
//!    ([`sfu::packetize`]) into RTP packets whose payloads are shared
//!    `Bytes`; AAC becomes Opus once here too. A WHIP publisher's packets
//!    skip this step: the ingest driver checks them instead.
//! 3. The channel's feed (`sfu::feed`) renumbers them once into the
//!    channel's sequence and hands the one `Arc` of them to every fan-out
//!    shard ([`sfu::shard`], a thread each) with viewers of the channel. It
//!    keeps the batches since the latest keyframe, so a shard that takes
//!    its first viewer of the channel later starts that viewer at once.
//! 4. The shard's driver (`sfu::driver`) fans the packets out: per viewer it maps
//!    the channel's sequence number to the viewer's own (no gap where it
//!    chose not to send), checks its congestion level and keyframe gate,
//!    and stamps SSRC, payload type, sequence number and timestamp
//!    ([`sfu::sender`]) straight into the UDP send batch, where the
//!    viewer's SRTP context ([`sfu::srtp`], keyed by its lean
//!    [`sfu::session`]) seals it in place: no allocation, no queue, no
//!    copy but the one into the batch. A few viewers ahead, it has the CPU
//!    start loading the next viewers' state, which no cache holds for
//!    thousands of them.
//! 5. The batch ([`sfu::udp`]) goes to the kernel in `sendmmsg` calls,
//!    equal-size runs to one address as one UDP GSO message. A viewer on
//!    ICE-TCP gets the same bytes framed on its connection
//!    ([`sfu::transport`]).
//! 6. The viewer's NACKs come back as SRTCP on the shared port. The port's
//!    reader thread (`sfu::inbound`) reads them in batches, gathering for a
//!    millisecond between reads when the port is busy, and routes them to
//!    the viewer's shard by address ([`sfu::shard`]). Its session opens
//!    them, and the shard answers from its history of the channel,
//!    resealed byte for byte under their original SRTP index.

pub mod audio;
pub mod auth;
pub mod avatar;
pub mod bus;
pub mod chat;
pub mod codec;
pub mod config;
pub mod db;
pub mod edge;
pub mod flv;
#[doc(hidden)]
pub mod fuzzing;
pub mod hls;
pub mod hooks;
pub mod http;
pub mod hub;
pub mod icecast;
pub mod isolate;
pub mod logs;
pub mod media;
pub mod metrics;
pub mod net;
pub mod node;
pub mod rtmp;
pub mod server;
pub mod sfu;
pub mod store;
pub mod tls;

pub use server::{run, Listeners};
