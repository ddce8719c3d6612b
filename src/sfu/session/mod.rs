//! A lean WebRTC viewer session, built from webrtc-rs's component crates
//! rather than its generic peer connection: the offer and answer, ICE-lite,
//! DTLS with SRTP keys of our own, the data channel, and the RTCP a viewer
//! sends. Sans-I/O: datagrams and `now` in, datagrams and deadlines out.

pub mod channel;
pub mod dtls;
mod hello;
pub mod ice;
pub mod sdp;
