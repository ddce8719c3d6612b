//! Decode checks that rotate over the viewers: in each slot of
//! [`SLOT`] one viewer (by index) reassembles its H.264 access units and
//! decodes them with openh264, from the first keyframe in its slot. One
//! decoder runs at a time, so the load generator's cost stays flat however
//! many viewers there are, and over a run many viewers are checked.

use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::packetizer::Depacketizer;
use std::time::{Duration, Instant};

pub const SLOT: Duration = Duration::from_secs(3);

/// Which viewer decodes when: shared by all viewers of one run.
#[derive(Clone, Copy, Debug)]
pub struct Rotation {
    pub start: Instant,
    pub viewers: usize,
}

impl Rotation {
    fn holder(&self, now: Instant) -> (usize, u64) {
        let slot = now.saturating_duration_since(self.start).as_millis() / SLOT.as_millis();
        ((slot % self.viewers.max(1) as u128) as usize, slot as u64)
    }
}

#[derive(Default, Debug, Clone, serde::Serialize)]
pub struct DecodeStats {
    /// Slots in which this viewer decoded at least one frame.
    pub checks: u64,
    pub frames: u64,
    pub errors: u64,
    /// When the first frame was decoded.
    #[serde(skip)]
    pub first_frame_at: Option<Instant>,
}

/// One viewer's side of the rotation.
pub struct Checker {
    rotation: Rotation,
    me: usize,
    slot: Option<u64>,
    decoder: Option<openh264::decoder::Decoder>,
    depack: H264Packet,
    au: Vec<u8>,
    keyed: bool,
    counted_slot: bool,
    pub stats: DecodeStats,
}

fn has_idr(annexb: &[u8]) -> bool {
    crate::stamp::split_annexb(annexb)
        .iter()
        .any(|n| n[0] & 0x1f == 5)
}

impl Checker {
    pub fn new(rotation: Rotation, me: usize) -> Checker {
        Checker {
            rotation,
            me,
            slot: None,
            decoder: None,
            depack: H264Packet::default(),
            au: Vec::new(),
            keyed: false,
            counted_slot: false,
            stats: DecodeStats::default(),
        }
    }

    /// Feeds one video RTP payload (when it is this viewer's turn).
    pub fn packet(&mut self, now: Instant, payload: &bytes::Bytes, marker: bool) {
        let (holder, slot) = self.rotation.holder(now);
        if holder != self.me {
            if self.decoder.is_some() {
                self.decoder = None;
                self.au.clear();
            }
            return;
        }
        // A lone viewer (a victim) keeps its decoder: it decodes every frame.
        let new_turn = match self.slot {
            None => true,
            Some(s) => s != slot && self.rotation.viewers > 1,
        };
        if new_turn {
            // A fresh decoder per turn: it must start from a keyframe.
            self.slot = Some(slot);
            self.decoder = openh264::decoder::Decoder::new().ok();
            self.depack = H264Packet::default();
            self.au.clear();
            self.keyed = false;
            self.counted_slot = false;
        }
        match self.depack.depacketize(payload) {
            Ok(b) => self.au.extend_from_slice(&b),
            Err(_) => self.stats.errors += 1,
        }
        if !marker {
            return;
        }
        let au = std::mem::take(&mut self.au);
        self.keyed |= has_idr(&au);
        let Some(dec) = self.decoder.as_mut() else {
            return;
        };
        if !self.keyed || au.is_empty() {
            return;
        }
        match dec.decode(&au) {
            Ok(Some(_)) => {
                self.stats.frames += 1;
                self.stats.first_frame_at.get_or_insert(now);
                if !self.counted_slot {
                    self.counted_slot = true;
                    self.stats.checks += 1;
                }
            }
            Ok(None) => {}
            Err(_) => self.stats.errors += 1,
        }
    }
}
