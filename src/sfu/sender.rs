//! One stream packet as one viewer gets it. The stream's packet is made once
//! (`super::egress`, or a WHIP publisher's); a viewer's copy differs only in
//! SSRC, payload type, sequence number and timestamp, so it is written
//! straight into the send batch from those four and the shared payload, and
//! sealed there in place.

use rtc::rtp::packet::Packet;

/// RTP's fixed header (RFC 3550 5.1). The source's header extensions are
/// numbered by its own negotiation, not the viewer's, so none is copied.
pub const RTP_HEADER: usize = 12;

/// The one header extension a viewer's copy may carry: the transport-wide
/// sequence number (draft-holmer-rmcat-transport-wide-cc-extensions-01),
/// in the one-byte form (RFC 8285 4.2): the 0xBEDE profile and a length of
/// one word, then the element (ID, length 2 - 1, the number) and a pad.
pub const TWCC_EXTENSION: usize = 8;

/// What a viewer's copy of a packet has of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub ssrc: u32,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    /// The viewer's TWCC extension ID and this copy's transport-wide
    /// sequence number, when it negotiated TWCC.
    pub twcc: Option<(u8, u16)>,
}

impl Stamp {
    /// The header's length, extension included.
    pub fn header_len(&self) -> usize {
        RTP_HEADER
            + if self.twcc.is_some() {
                TWCC_EXTENSION
            } else {
                0
            }
    }
}

/// Writes `pkt` as stamped into `buf` and returns its length; `None` when
/// `buf` is too short.
pub fn write_rtp(buf: &mut [u8], pkt: &Packet, stamp: Stamp) -> Option<usize> {
    let header = stamp.header_len();
    let len = header + pkt.payload.len();
    let buf = buf.get_mut(..len)?;
    buf[0] = 0x80 | if stamp.twcc.is_some() { 0x10 } else { 0 };
    buf[1] = (u8::from(pkt.header.marker) << 7) | (stamp.payload_type & 0x7f);
    buf[2..4].copy_from_slice(&stamp.seq.to_be_bytes());
    buf[4..8].copy_from_slice(&stamp.timestamp.to_be_bytes());
    buf[8..12].copy_from_slice(&stamp.ssrc.to_be_bytes());
    if let Some((id, seq)) = stamp.twcc {
        let [hi, lo] = seq.to_be_bytes();
        buf[RTP_HEADER..header].copy_from_slice(&[0xbe, 0xde, 0, 1, (id << 4) | 1, hi, lo, 0]);
    }
    buf[header..].copy_from_slice(&pkt.payload);
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
            twcc: None,
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
        assert!(!back.header.extension);
        assert_eq!(back.payload, pkt.payload);
        assert!(write_rtp(&mut buf[..n - 1], &pkt, stamp).is_none());

        // With the transport-wide sequence number: one extension, under
        // the viewer's ID, and the same payload after it.
        let stamp = Stamp {
            twcc: Some((5, 0xabcd)),
            ..stamp
        };
        let n = write_rtp(&mut buf, &pkt, stamp).unwrap();
        assert_eq!(n, RTP_HEADER + TWCC_EXTENSION + 8);
        let back = Packet::unmarshal(&mut &buf[..n]).unwrap();
        assert_eq!(back.header.sequence_number, 65_535);
        assert_eq!(back.header.ssrc, 0xdead_beef);
        assert_eq!(back.header.extension_profile, 0xbede);
        assert_eq!(back.header.get_extension_ids(), vec![5]);
        assert_eq!(
            back.header.get_extension(5).unwrap().as_ref(),
            &[0xab, 0xcd]
        );
        assert_eq!(back.payload, pkt.payload);
        assert!(write_rtp(&mut buf[..n - 1], &pkt, stamp).is_none());
    }
}
