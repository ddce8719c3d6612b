//! Packet indices: the SRTP index estimate (RFC 3711 3.3.1 and Appendix A),
//! the SRTCP index (3.4), and replay windows (3.3.2). Pure arithmetic on
//! small `Copy` state, fuzzed by `fuzz/fuzz_targets/srtp_index.rs`.

use super::SrtpError;

/// Largest SRTP packet index: 32-bit rollover counter, 16-bit sequence
/// number (RFC 3711 3.3.1). Past it, an index would repeat.
pub(super) const MAX_INDEX: u64 = (1 << 48) - 1;

/// Largest SRTCP index (31 bits, RFC 3711 3.4).
pub(super) const MAX_SRTCP_INDEX: u32 = (1 << 31) - 1;

/// Packets a replay window remembers behind the highest index received.
/// RFC 3711 3.3.2 asks for at least 64; 128 (what libsrtp uses) lets a
/// video burst arrive reordered without a packet being refused as too old,
/// and is one `u128`.
pub const REPLAY_WINDOW: u64 = 128;

/// The index of a packet with sequence number `seq`, given the highest
/// index seen so far on its SSRC (RFC 3711 Appendix A): the candidate for
/// `seq` with the rollover counter at, one below or one above the current
/// one, whichever is nearest: the result is within -2^15 + 1 ..= 2^15 of
/// `highest`. Outside the index space it is an error: before index 0 (a
/// sequence number far behind the first one ever seen) is
/// [`SrtpError::Replay`], past [`MAX_INDEX`] is [`SrtpError::Exhausted`].
pub(super) fn estimate(highest: u64, seq: u16) -> Result<u64, SrtpError> {
    let roc = highest >> 16;
    let s_l = highest as u16;
    let v = if s_l < 0x8000 {
        if seq > s_l && seq - s_l > 0x8000 {
            roc.checked_sub(1).ok_or(SrtpError::Replay)?
        } else {
            roc
        }
    } else if s_l - 0x8000 > seq {
        roc + 1
    } else {
        roc
    };
    let index = v << 16 | u64::from(seq);
    if index > MAX_INDEX {
        return Err(SrtpError::Exhausted);
    }
    Ok(index)
}

/// Marks "nothing sent or received yet" in an index field.
pub(super) const NONE: u64 = u64::MAX;

/// What we have sent on one SSRC: the highest SRTP index and the next
/// SRTCP index. 16 bytes.
#[derive(Clone, Copy, Debug)]
pub struct SendStream {
    ssrc: u32,
    pub(super) next_rtcp: u32,
    pub(super) highest: u64,
}

impl SendStream {
    /// A stream that has sent nothing: its first RTP packet gets rollover
    /// counter 0 (RFC 3711 3.3.1) and its first RTCP packet SRTCP index 0
    /// (3.4).
    pub const fn new(ssrc: u32) -> Self {
        SendStream {
            ssrc,
            next_rtcp: 0,
            highest: NONE,
        }
    }

    pub const fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The rollover counter of the highest index sent (0 before any).
    pub const fn roc(&self) -> u32 {
        if self.highest == NONE {
            0
        } else {
            (self.highest >> 16) as u32
        }
    }

    /// The index for sending a packet with `seq`, recorded as sent. A
    /// sequence number behind the highest gets the index it had (a resend);
    /// the counter never goes down.
    pub(super) fn rtp_index(&mut self, ssrc: u32, seq: u16) -> Result<u64, SrtpError> {
        if ssrc != self.ssrc {
            return Err(SrtpError::WrongSsrc);
        }
        let index = if self.highest == NONE {
            u64::from(seq)
        } else {
            estimate(self.highest, seq)?
        };
        if self.highest == NONE || index > self.highest {
            self.highest = index;
        }
        Ok(index)
    }

    /// The SRTCP index for the next RTCP packet, consumed.
    pub(super) fn rtcp_index(&mut self, ssrc: u32) -> Result<u32, SrtpError> {
        if ssrc != self.ssrc {
            return Err(SrtpError::WrongSsrc);
        }
        if self.next_rtcp > MAX_SRTCP_INDEX {
            return Err(SrtpError::Exhausted);
        }
        let index = self.next_rtcp;
        self.next_rtcp += 1;
        Ok(index)
    }
}

/// A replay window (RFC 3711 3.3.2): the highest index received and which
/// of the [`REPLAY_WINDOW`] indices below it were received.
#[derive(Clone, Copy, Debug)]
pub(super) struct ReplayWindow {
    highest: u64,
    /// Bit `d` set: index `highest - d` was received.
    seen: u128,
}

impl ReplayWindow {
    pub(super) const fn new() -> Self {
        ReplayWindow {
            highest: NONE,
            seen: 0,
        }
    }

    /// The highest index received, if any.
    pub(super) fn highest(&self) -> Option<u64> {
        (self.highest != NONE).then_some(self.highest)
    }

    /// Whether `index` may be accepted: newer than the highest, or inside
    /// the window and not yet received.
    pub(super) fn check(&self, index: u64) -> Result<(), SrtpError> {
        if self.highest == NONE || index > self.highest {
            return Ok(());
        }
        let behind = self.highest - index;
        if behind >= REPLAY_WINDOW || self.seen & (1 << behind) != 0 {
            return Err(SrtpError::Replay);
        }
        Ok(())
    }

    /// Records `index` as received. Only after it authenticated.
    pub(super) fn accept(&mut self, index: u64) {
        if self.highest == NONE {
            self.highest = index;
            self.seen = 1;
        } else if index > self.highest {
            let ahead = index - self.highest;
            self.seen = if ahead >= REPLAY_WINDOW {
                0
            } else {
                self.seen << ahead
            } | 1;
            self.highest = index;
        } else {
            let behind = self.highest - index;
            if behind < REPLAY_WINDOW {
                self.seen |= 1 << behind;
            }
        }
    }
}

/// What we have received on one of the peer's SSRCs: a replay window for
/// SRTP (whose highest index also drives the rollover estimate) and one for
/// SRTCP. 80 bytes.
#[derive(Clone, Copy, Debug)]
pub struct RecvStream {
    ssrc: u32,
    pub(super) rtp: ReplayWindow,
    pub(super) rtcp: ReplayWindow,
}

impl RecvStream {
    /// A stream that has received nothing: its first authenticated RTP
    /// packet fixes the rollover counter at 0 (RFC 3711 3.3.1).
    pub const fn new(ssrc: u32) -> Self {
        RecvStream {
            ssrc,
            rtp: ReplayWindow::new(),
            rtcp: ReplayWindow::new(),
        }
    }

    pub const fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The rollover counter of the highest RTP index received (0 before any).
    pub fn roc(&self) -> u32 {
        self.rtp.highest().map_or(0, |h| (h >> 16) as u32)
    }

    /// The index a received RTP packet with `seq` would have, after checking
    /// it is not a replay. Nothing is recorded: call
    /// `self.rtp.accept(index)` once the packet authenticated.
    pub(super) fn rtp_index(&self, ssrc: u32, seq: u16) -> Result<u64, SrtpError> {
        if ssrc != self.ssrc {
            return Err(SrtpError::WrongSsrc);
        }
        let index = match self.rtp.highest() {
            None => u64::from(seq),
            Some(highest) => estimate(highest, seq)?,
        };
        self.rtp.check(index)?;
        Ok(index)
    }

    /// Checks a received SRTCP index (explicit in the packet) for replay.
    pub(super) fn rtcp_index(&self, ssrc: u32, index: u32) -> Result<u64, SrtpError> {
        if ssrc != self.ssrc {
            return Err(SrtpError::WrongSsrc);
        }
        let index = u64::from(index);
        self.rtcp.check(index)?;
        Ok(index)
    }
}
