//! NACK answers from one buffer per stream. The stock responder kept the
//! last 1024 packets per viewer (a cloned header, with its allocations, for
//! every packet sent to every viewer). Here the channel keeps its recent
//! video once ([`History`]), and a viewer keeps only which channel packet
//! each of its recent sequence numbers carried ([`SentLog`], 16 bytes
//! an entry): what a NACK asks for is rebuilt from the two.

use rtc::rtp::packet::Packet;
use std::time::Instant;

/// Channel video packets kept: a power of two, ~3.7 s at 6 Mbit/s
/// (550 packets/s) and ~30 s at 600 kbit/s. A NACK is useful for about
/// one round trip plus the player's jitter buffer, well under a second.
const HISTORY: usize = 2048;

/// A viewer's sent-packet log: ~1.9 s at 6 Mbit/s, at least the window in
/// which a NACK can still repair a frame before the player gives up on it.
const SENT_LOG: usize = 1024;

/// Resends one viewer may cause per second, and in one burst. A viewer
/// that NACKs everything costs at most about one more 4 Mbit/s stream.
const RESEND_RATE: f32 = 400.0;
const RESEND_BURST: f32 = 200.0;

/// At most this many sequence numbers are read from one RTCP compound
/// packet (each NACK item names up to 17).
pub const MAX_NACKED: usize = 256;

/// The channel's recent video packets, by the channel's sequence number.
pub struct History {
    slots: Vec<Option<Packet>>,
}

impl Default for History {
    fn default() -> Self {
        History {
            slots: vec![None; HISTORY],
        }
    }
}

impl History {
    pub fn push(&mut self, pkt: &Packet) {
        let i = usize::from(pkt.header.sequence_number) & (HISTORY - 1);
        self.slots[i] = Some(pkt.clone());
    }

    pub fn get(&self, seq: u16) -> Option<&Packet> {
        self.slots[usize::from(seq) & (HISTORY - 1)]
            .as_ref()
            .filter(|p| p.header.sequence_number == seq)
    }

    /// A new publish numbers its packets anew: old ones must not answer
    /// for them.
    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
    }
}

/// What a viewer's copy of a packet was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entry {
    pub viewer_seq: u16,
    pub channel_seq: u16,
    /// The timestamp the viewer got: a fast start squeezes the GOP's.
    pub timestamp: u32,
    /// Its TWCC extension, so a resend is the same bytes.
    pub twcc: Option<(u8, u16)>,
}

/// Which channel packet each of a viewer's recent video sequence numbers
/// carried, and a budget for resends.
pub struct SentLog {
    entries: Box<[Option<Entry>]>,
    tokens: f32,
    refilled: Instant,
}

impl SentLog {
    pub fn new(now: Instant) -> Self {
        SentLog {
            entries: vec![None; SENT_LOG].into_boxed_slice(),
            tokens: RESEND_BURST,
            refilled: now,
        }
    }

    pub fn record(
        &mut self,
        viewer_seq: u16,
        channel_seq: u16,
        timestamp: u32,
        twcc: Option<(u8, u16)>,
    ) {
        self.entries[usize::from(viewer_seq) & (SENT_LOG - 1)] = Some(Entry {
            viewer_seq,
            channel_seq,
            timestamp,
            twcc,
        });
    }

    /// What went out as `viewer_seq`, if it was sent recently.
    pub fn lookup(&self, viewer_seq: u16) -> Option<Entry> {
        self.entries[usize::from(viewer_seq) & (SENT_LOG - 1)]
            .filter(|e| e.viewer_seq == viewer_seq)
    }

    /// Takes one resend from the budget, if there is one left.
    pub fn allow(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.refilled).as_secs_f32();
        self.refilled = now;
        self.tokens = (self.tokens + dt * RESEND_RATE).min(RESEND_BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The sequence numbers a NACK names (RFC 4585 6.2.1: a packet ID and a
/// bitmask of the 16 after it), at most `MAX_NACKED` of them.
pub fn nacked(
    nack: &rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack,
    out: &mut Vec<u16>,
) {
    for pair in &nack.nacks {
        let seqs = std::iter::once(pair.packet_id).chain(
            (0..16u16)
                .filter(|i| pair.lost_packets & (1 << i) != 0)
                .map(|i| pair.packet_id.wrapping_add(i + 1)),
        );
        for s in seqs {
            if out.len() >= MAX_NACKED {
                return;
            }
            out.push(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
    use std::time::Duration;

    fn pkt(seq: u16) -> Packet {
        let mut p = Packet::default();
        p.header.sequence_number = seq;
        p
    }

    #[test]
    fn history_answers_only_for_the_packet_it_holds() {
        let mut h = History::default();
        h.push(&pkt(5));
        assert!(h.get(5).is_some());
        // Same slot, a lap later: the old packet must not answer.
        assert!(h.get(5 + HISTORY as u16).is_none());
        h.push(&pkt(5 + HISTORY as u16));
        assert!(h.get(5).is_none());
        h.clear();
        assert!(h.get(5 + HISTORY as u16).is_none());
    }

    #[test]
    fn the_log_maps_viewer_numbers_across_wraparound() {
        let mut log = SentLog::new(Instant::now());
        log.record(65535, 100, 9000, Some((3, 7)));
        log.record(0, 101, 9000, None);
        let got = |seq| {
            log.lookup(seq)
                .map(|e| (e.channel_seq, e.timestamp, e.twcc))
        };
        assert_eq!(got(65535), Some((100, 9000, Some((3, 7)))));
        assert_eq!(got(0), Some((101, 9000, None)));
        assert_eq!(log.lookup(1), None);
        assert_eq!(
            std::mem::size_of::<Option<Entry>>(),
            16,
            "the module doc's size"
        );
        assert_eq!(log.lookup(SENT_LOG as u16), None, "a lap later");
    }

    #[test]
    fn the_resend_budget_is_bounded_and_refills() {
        let t0 = Instant::now();
        let mut log = SentLog::new(t0);
        let burst = (0..1000).filter(|_| log.allow(t0)).count();
        assert_eq!(burst, RESEND_BURST as usize);
        let later = t0 + Duration::from_millis(100);
        let refill = (0..1000).filter(|_| log.allow(later)).count();
        assert_eq!(refill, (RESEND_RATE / 10.0) as usize);
    }

    #[test]
    fn a_nack_names_its_packet_and_bitmask_and_no_more_than_the_cap() {
        let nack = TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: 2,
            nacks: vec![NackPair {
                packet_id: 65534,
                lost_packets: 0b101,
            }],
        };
        let mut out = Vec::new();
        nacked(&nack, &mut out);
        assert_eq!(out, vec![65534, 65535, 1]);
        let flood = TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: 2,
            nacks: vec![
                NackPair {
                    packet_id: 0,
                    lost_packets: 0xffff,
                };
                100
            ],
        };
        out.clear();
        nacked(&flood, &mut out);
        assert_eq!(out.len(), MAX_NACKED);
    }
}
