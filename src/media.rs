//! The vocabulary every module shares: what a unit of media is, and what a
//! track carries. Ingest produces [`Unit`]s; every egress consumes them.
//!
//! Times are in [`CLOCK_RATE`] ticks (90 kHz, the RTP video clock and the
//! MPEG clock) for every track, so audio and video compare without
//! conversion. Audio egress converts to its own sample clock when it needs to.

use bytes::Bytes;
use std::sync::Arc;

/// 90 kHz: exact for every common frame rate and for millisecond RTMP times.
pub const CLOCK_RATE: i64 = 90_000;

/// Converts RTMP milliseconds to [`CLOCK_RATE`] ticks.
pub fn ms_to_ticks(ms: i64) -> i64 {
    ms * (CLOCK_RATE / 1000)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Video,
    Audio,
}

/// H.264 decoder configuration, from an AVC sequence header (RTMP) or from
/// in-band SPS/PPS (WHIP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H264Config {
    pub sps: Bytes,
    pub pps: Bytes,
    pub width: u32,
    pub height: u32,
    /// profile_idc, constraint flags and level_idc: the three bytes of
    /// `profile-level-id` (RFC 6184 8.1).
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
}

impl H264Config {
    /// `profile-level-id` as it appears in SDP, e.g. `42e01f`.
    pub fn profile_level_id(&self) -> String {
        format!(
            "{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraint_flags, self.level_idc
        )
    }
}

/// AAC configuration from an AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacConfig {
    pub asc: Bytes,
    pub object_type: u8,
    pub sample_rate: u32,
    pub channels: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusConfig {
    pub channels: u8,
}

/// What a decoder needs before the first unit of a track. Shared by every unit
/// of the track through an `Arc`, so a change (a new SPS when OBS changes
/// resolution) is visible on the unit that brings it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackConfig {
    H264(H264Config),
    Aac(AacConfig),
    Opus(OpusConfig),
}

impl TrackConfig {
    pub fn kind(&self) -> MediaKind {
        match self {
            TrackConfig::H264(_) => MediaKind::Video,
            TrackConfig::Aac(_) | TrackConfig::Opus(_) => MediaKind::Audio,
        }
    }
}

/// The codec form of one unit of media: for video one access unit, for audio
/// one raw frame.
#[derive(Debug, Clone)]
pub enum Payload {
    /// NAL units without start codes or length prefixes. A keyframe's access
    /// unit starts with its SPS and PPS, so a reader that joins on it needs
    /// nothing else.
    H264(Vec<Bytes>),
    /// One raw AAC frame (no ADTS header).
    Aac(Bytes),
    /// One Opus packet.
    Opus(Bytes),
}

impl Payload {
    pub fn len(&self) -> usize {
        match self {
            Payload::H264(nalus) => nalus.iter().map(|n| n.len()).sum(),
            Payload::Aac(b) | Payload::Opus(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One access unit or audio frame, shared by every reader through `Arc`.
#[derive(Debug, Clone)]
pub struct Unit {
    pub config: Arc<TrackConfig>,
    /// Presentation time, [`CLOCK_RATE`] ticks from the stream's start.
    pub pts: i64,
    /// Decode time; differs from `pts` only when the encoder uses B-frames.
    pub dts: i64,
    /// A video IDR, or any audio frame (every audio frame is a random access
    /// point).
    pub keyframe: bool,
    pub payload: Payload,
    /// This unit as an FLV tag body, made by the first HTTP-FLV reader to
    /// send it and shared by the rest: no reader copies the payload.
    pub flv_body: std::sync::OnceLock<bytes::Bytes>,
}

impl Unit {
    pub fn kind(&self) -> MediaKind {
        self.config.kind()
    }
}

/// What a reader that joins between two keyframes starts from: the media
/// since the latest one, so it need not wait up to a whole GOP for a
/// picture. Bounded in items and in weight (bytes, packets: whatever the
/// holder counts); past either bound it empties and stays empty until the
/// next keyframe, and such a publisher's new readers simply wait for it.
#[derive(Debug)]
pub struct Gop<T> {
    items: Vec<T>,
    weight: usize,
    /// Changes whenever the GOP starts over or empties: a reader part-way
    /// through it knows its place no longer holds.
    epoch: u64,
    max_items: usize,
    max_weight: usize,
}

impl<T> Gop<T> {
    pub const fn new(max_items: usize, max_weight: usize) -> Gop<T> {
        Gop {
            items: Vec::new(),
            weight: 0,
            epoch: 0,
            max_items,
            max_weight,
        }
    }

    /// `items`, of `weight` together: a keyframe starts the GOP over;
    /// anything else goes on the GOP under way, if there is one.
    pub fn push(&mut self, keyframe: bool, weight: usize, items: impl IntoIterator<Item = T>) {
        if keyframe {
            self.clear();
        } else if self.items.is_empty() {
            return;
        }
        self.items.extend(items);
        self.weight += weight;
        if self.items.len() > self.max_items || self.weight > self.max_weight {
            self.items.clear();
            self.epoch += 1;
        }
        if self.items.is_empty() {
            self.weight = 0;
        }
    }

    /// Empties it: a new source, an ended publish, a batch a reader missed.
    pub fn clear(&mut self) {
        self.items.clear();
        self.weight = 0;
        self.epoch += 1;
    }

    pub fn items(&self) -> &[T] {
        &self.items
    }

    pub fn weight(&self) -> usize {
        self.weight
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether a reader can start from it (it begins at a keyframe).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::Gop;

    #[test]
    fn a_gop_starts_at_a_keyframe_and_empties_past_its_bounds() {
        let mut g = Gop::new(4, 100);
        g.push(false, 10, [1]);
        assert!(g.is_empty(), "nothing before the first keyframe");
        let e = g.epoch();
        g.push(true, 10, [2]);
        g.push(false, 10, [3, 4]);
        assert_eq!((g.items(), g.weight()), (&[2, 3, 4][..], 20));
        assert!(g.epoch() > e);
        let e = g.epoch();
        g.push(false, 10, [5, 6]);
        assert!(g.is_empty() && g.weight() == 0, "past the item bound");
        assert!(g.epoch() > e, "a reader part-way through notices");
        let e = g.epoch();
        g.push(false, 10, [7]);
        assert!(g.is_empty() && g.epoch() == e, "empty until a keyframe");
        g.push(true, 60, [8]);
        g.push(false, 50, [9]);
        assert!(g.is_empty(), "past the weight bound");
        g.push(true, 101, [10]);
        assert!(g.is_empty(), "a keyframe too heavy alone is not kept");
        g.push(true, 1, [11]);
        let e = g.epoch();
        g.clear();
        assert!(g.is_empty() && g.epoch() > e);
    }
}
