//! One stream packet as one viewer gets it. The stream's packet is made once
//! (`super::egress`, or a WHIP publisher's); a viewer's copy differs only in
//! SSRC, payload type, sequence number and timestamp, so it is written
//! straight into the send batch from those four and the shared payload, and
//! sealed there in place.

use rtc::rtp::packet::Packet;

/// RTP's fixed header (RFC 3550 5.1), all a forwarded packet carries: the
/// source's header extensions are numbered by its own negotiation, not the
/// viewer's.
pub const RTP_HEADER: usize = 12;

/// What a viewer's copy of a packet has of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub ssrc: u32,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
}

/// Writes `pkt` as stamped into `buf` and returns its length; `None` when
/// `buf` is too short.
pub fn write_rtp(buf: &mut [u8], pkt: &Packet, stamp: Stamp) -> Option<usize> {
    let len = RTP_HEADER + pkt.payload.len();
    let buf = buf.get_mut(..len)?;
    buf[0] = 0x80;
    buf[1] = (u8::from(pkt.header.marker) << 7) | (stamp.payload_type & 0x7f);
    buf[2..4].copy_from_slice(&stamp.seq.to_be_bytes());
    buf[4..8].copy_from_slice(&stamp.timestamp.to_be_bytes());
    buf[8..12].copy_from_slice(&stamp.ssrc.to_be_bytes());
    buf[RTP_HEADER..].copy_from_slice(&pkt.payload);
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::shared::marshal::Unmarshal;

    /// What we write reads back, through rtc's parser, as the source packet
    /// with the viewer's four fields and nothing else changed.
    #[test]
    fn a_stamped_packet_reads_back_as_the_viewers_copy() {
        let mut pkt = Packet::default();
        pkt.header.marker = true;
        pkt.header.payload_type = 96;
        pkt.header.sequence_number = 7;
        pkt.header.timestamp = 1234;
        pkt.header.ssrc = 1;
        pkt.payload = bytes::Bytes::from_static(b"\x65payload");
        let stamp = Stamp {
            ssrc: 0xdead_beef,
            payload_type: 102,
            seq: 65_535,
            timestamp: 0xffff_fff0,
        };
        let mut buf = [0u8; 64];
        let n = write_rtp(&mut buf, &pkt, stamp).unwrap();
        assert_eq!(n, RTP_HEADER + 8);
        let back = Packet::unmarshal(&mut &buf[..n]).unwrap();
        assert!(back.header.marker);
        assert_eq!(back.header.payload_type, 102);
        assert_eq!(back.header.sequence_number, 65_535);
        assert_eq!(back.header.timestamp, 0xffff_fff0);
        assert_eq!(back.header.ssrc, 0xdead_beef);
        assert_eq!(back.payload, pkt.payload);
        assert!(write_rtp(&mut buf[..n - 1], &pkt, stamp).is_none());
    }
}
