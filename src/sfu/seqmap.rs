//! A viewer's RTP sequence numbers for one track. The viewer must see an
//! unbroken run where we chose not to send (joining, waiting for a
//! keyframe, a lower level), and must never see one number carry two
//! different packets: SRTP would encrypt two payloads under one index
//! (keystream reuse), and a NACK for it would be answered with the wrong
//! packet.
//!
//! Packets are numbered in epochs: within one, viewer = channel - shift.
//! After a skip, the next packet sent opens a new epoch whose shift makes
//! it follow the last number sent. A late packet (a WHIP publisher's
//! reordering) is sent only if it belongs to the current epoch, where its
//! number is a hole the viewer has already noticed; older ones are dropped.

#[derive(Default)]
pub struct SeqMap {
    shift: u16,
    /// Channel sequence number the current epoch starts at.
    epoch: Option<u16>,
    /// The newest channel sequence number sent or skipped.
    highest: Option<u16>,
    /// The viewer's last number, if anything was sent.
    last_sent: Option<u16>,
    /// Something was skipped since the last send.
    gap: bool,
}

/// A packet this far from the newest, either way, is not late or after a
/// loss but numbered afresh (a new source's base): a publisher's
/// reordering is a few packets, and a loss of this many is an outage.
const MAX_REORDER: u16 = 512;

/// `a` comes after `b` in 16-bit sequence space.
fn newer(a: u16, b: u16) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 0x8000
}

impl SeqMap {
    /// `seq` is from a new numbering, far from the newest.
    fn jumped(&self, seq: u16) -> bool {
        self.highest
            .is_some_and(|h| seq.wrapping_sub(h).min(h.wrapping_sub(seq)) > MAX_REORDER)
    }

    /// Channel packet `seq` is not sent to this viewer.
    pub fn skip(&mut self, seq: u16) {
        if self.highest.is_none_or(|h| newer(seq, h)) || self.jumped(seq) {
            self.highest = Some(seq);
        }
        self.gap = true;
    }

    /// The viewer's number for channel packet `seq`, or `None` when it
    /// must not be sent (a late packet from before the current epoch, or
    /// the newest one again).
    pub fn map(&mut self, seq: u16) -> Option<u16> {
        if self.jumped(seq) {
            // A new numbering: it continues the viewer's run as after a skip.
            self.highest = None;
            self.gap = true;
        }
        match self.highest {
            Some(h) if !newer(seq, h) => {
                // Late: its number is free only inside the current epoch.
                let epoch = self.epoch?;
                if self.gap || seq == h || newer(epoch, seq) {
                    return None;
                }
                return Some(seq.wrapping_sub(self.shift));
            }
            _ => {}
        }
        self.highest = Some(seq);
        if self.gap || self.epoch.is_none() {
            if let Some(last) = self.last_sent {
                self.shift = seq.wrapping_sub(last.wrapping_add(1));
            }
            self.epoch = Some(seq);
            self.gap = false;
        }
        let v = seq.wrapping_sub(self.shift);
        self.last_sent = Some(v);
        Some(v)
    }

    /// Nothing sent yet: the next packets (a fast start's GOP, older than
    /// what was skipped while connecting) open the first epoch.
    /// Packets were left unsent that `skip` never saw (a fast start cut
    /// short): the next packet sent continues the viewer's run.
    pub fn interrupt(&mut self) {
        self.gap = true;
    }

    pub fn restart_if_unsent(&mut self) {
        if self.last_sent.is_none() {
            *self = SeqMap::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_close_up_and_numbers_stay_unique() {
        let mut m = SeqMap::default();
        assert_eq!(m.map(100), Some(100));
        assert_eq!(m.map(101), Some(101));
        m.skip(102);
        m.skip(103);
        assert_eq!(m.map(104), Some(102), "the gap closes");
        assert_eq!(m.map(105), Some(103));
    }

    #[test]
    fn a_late_packet_fills_its_hole_only_in_the_same_epoch() {
        let mut m = SeqMap::default();
        assert_eq!(m.map(100), Some(100));
        // 101 is late; 102 arrives first.
        assert_eq!(m.map(102), Some(102));
        assert_eq!(m.map(101), Some(101), "its number is the viewer's hole");
        assert_eq!(m.map(102), None, "the newest again");
        // A skip opens a new epoch: 103 late after it would collide.
        m.skip(104);
        assert_eq!(m.map(103), None);
        assert_eq!(m.map(105), Some(103));
        assert_eq!(m.map(103), None, "before the epoch");
    }

    #[test]
    fn a_numbering_that_jumps_back_continues_the_run() {
        let mut m = SeqMap::default();
        assert_eq!(m.map(40_000), Some(40_000));
        assert_eq!(m.map(40_001), Some(40_001));
        // A new source whose numbering starts far behind: not "late".
        assert_eq!(m.map(1_000), Some(40_002));
        assert_eq!(m.map(1_001), Some(40_003));
        // Or far ahead: no jump for the viewer either.
        assert_eq!(m.map(30_000), Some(40_004));
        assert_eq!(m.map(30_001), Some(40_005));
        // Skipped packets of a new numbering move the newest along too.
        m.skip(20_000);
        assert_eq!(m.map(20_001), Some(40_006));
        // Real reordering stays late.
        assert_eq!(m.map(20_000), None, "skipped, and before the epoch");
    }

    #[test]
    fn wraparound_is_newer() {
        let mut m = SeqMap::default();
        assert_eq!(m.map(65535), Some(65535));
        assert_eq!(m.map(0), Some(0));
        m.skip(1);
        assert_eq!(m.map(2), Some(1));
    }

    #[test]
    fn a_fast_start_goes_back_only_before_the_first_send() {
        let mut m = SeqMap::default();
        m.skip(200); // live packets while connecting
        m.restart_if_unsent();
        assert_eq!(m.map(150), Some(150), "the GOP starts the numbering");
        assert_eq!(m.map(151), Some(151));
        m.restart_if_unsent();
        assert_eq!(m.map(140), None, "after a send, older is late");
    }
}
