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
//! - [`sfu`]: WebRTC on one UDP socket, driving webrtc-rs's sans-I/O `rtc`
//!   core; WHEP viewers read from the hub.
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
