//! Audio transcoders for egress that needs a different codec than the
//! publisher sent: AAC (RTMP) to Opus (WebRTC), Opus (WHIP) to AAC (HLS),
//! and MP3 (Icecast) to both, decoded once. One transcoder per stream,
//! created on demand by the egress, so its cost is paid once however many
//! viewers watch.
//!
//! Everything here is sync and sans-I/O: frames and timestamps in, frames
//! and timestamps out. Callers run it on whatever thread suits them.

mod aac_to_opus;
mod asc;
pub mod encode;
mod mp3;
mod opus_to_aac;
pub mod resample;

pub use aac_to_opus::{AacToOpus, OpusFrame, OPUS_FRAME_SAMPLES, OPUS_SAMPLE_RATE, RESYNC_TICKS};
pub use mp3::Mp3Transcoder;
pub use opus_to_aac::OpusToAac;

/// Why a transcoder could not be built, or could not handle one frame.
///
/// Construction errors ([`AudioError::HeAac`], [`AudioError::UnsupportedObjectType`],
/// [`AudioError::Channels`], [`AudioError::SampleRate`], [`AudioError::BadConfig`])
/// mean the stream's audio can't be transcoded at all; their messages are
/// written for the publisher. [`AudioError::CorruptFrame`] concerns one frame
/// only: the transcoder stays usable.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("HE-AAC is not supported, use AAC-LC (audio object type {0})")]
    HeAac(u8),
    #[error("AAC audio object type {0} is not supported, use AAC-LC")]
    UnsupportedObjectType(u8),
    #[error("{0} audio channels are not supported, use mono or stereo")]
    Channels(u8),
    #[error("AAC sample rate {0} Hz is not supported")]
    SampleRate(u32),
    #[error("bad AAC AudioSpecificConfig: {0}")]
    BadConfig(String),
    #[error("corrupt AAC frame: {0}")]
    CorruptFrame(String),
    #[error("AAC encoder: {0}")]
    AacEncoder(String),
    #[error("opus: {0}")]
    Opus(#[from] opus::Error),
}
