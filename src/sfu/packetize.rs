//! RTP forms of our units, made once per stream and shared by every viewer.

use bytes::{BufMut, Bytes, BytesMut};
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;

/// RTP payload budget: 1200 bytes keeps the whole SRTP datagram under the
/// 1280-byte IPv6 minimum MTU with room for TURN and header extensions.
pub const RTP_PAYLOAD_MTU: usize = 1200;

const NAL_STAP_A: u8 = 24;
const NAL_FU_A: u8 = 28;
const NAL_AUD: u8 = 9;
const NAL_FILLER: u8 = 12;

/// Numbers packets of one outgoing track: the sequence continues across
/// access units and across publisher reconnects, because a viewer's SRTP
/// replay window drops every packet after a jump.
#[derive(Debug)]
pub struct Sequencer {
    next: u16,
}

impl Sequencer {
    pub fn new(start: u16) -> Self {
        Sequencer { next: start }
    }

    /// Gives back the last `n` numbers, for packets that were never sent:
    /// a gap would read as loss to every viewer.
    pub fn rewind(&mut self, n: usize) {
        self.next = self.next.wrapping_sub(n as u16);
    }

    fn take(&mut self) -> u16 {
        let s = self.next;
        self.next = self.next.wrapping_add(1);
        s
    }
}

fn packet(seq: &mut Sequencer, timestamp: u32, payload: Bytes) -> Packet {
    Packet {
        header: Header {
            version: 2,
            sequence_number: seq.take(),
            timestamp,
            ..Default::default()
        },
        payload,
    }
}

/// One H.264 access unit as RTP (RFC 6184, packetization-mode 1). Small NAL
/// units are aggregated into STAP-A packets (so SPS+PPS+SEI travel
/// together); NAL units larger than the budget become FU-A fragments.
/// Payload bytes of large NAL units are sliced, never copied, except for the
/// two-byte FU header.
pub fn h264(nalus: &[Bytes], timestamp: u32, seq: &mut Sequencer, out: &mut Vec<Packet>) {
    let first = out.len();
    let mut stap: Vec<&Bytes> = Vec::new();
    let mut stap_len = 1;
    let flush_stap = |stap: &mut Vec<&Bytes>,
                      stap_len: &mut usize,
                      seq: &mut Sequencer,
                      out: &mut Vec<Packet>| {
        match stap.len() {
            0 => {}
            1 => out.push(packet(seq, timestamp, stap[0].clone())),
            _ => {
                let mut b = BytesMut::with_capacity(*stap_len);
                // F=0, NRI = the highest of the aggregated units (RFC 6184 5.7.1).
                let nri = stap.iter().map(|n| n[0] & 0x60).max().unwrap_or(0);
                b.put_u8(nri | NAL_STAP_A);
                for n in stap.iter() {
                    b.put_u16(n.len() as u16);
                    b.put_slice(n);
                }
                out.push(packet(seq, timestamp, b.freeze()));
            }
        }
        stap.clear();
        *stap_len = 1;
    };
    for nalu in nalus {
        let Some(&hdr) = nalu.first() else { continue };
        let nal_type = hdr & 0x1f;
        if nal_type == NAL_AUD || nal_type == NAL_FILLER {
            continue;
        }
        if nalu.len() + 2 + stap_len <= RTP_PAYLOAD_MTU {
            stap_len += nalu.len() + 2;
            stap.push(nalu);
            continue;
        }
        flush_stap(&mut stap, &mut stap_len, seq, out);
        if nalu.len() <= RTP_PAYLOAD_MTU {
            out.push(packet(seq, timestamp, nalu.clone()));
            continue;
        }
        // FU-A: the NAL header is carried in the FU indicator and header.
        let body = nalu.slice(1..);
        let chunk = RTP_PAYLOAD_MTU - 2;
        let count = body.len().div_ceil(chunk);
        for i in 0..count {
            let part = body.slice(i * chunk..((i + 1) * chunk).min(body.len()));
            let mut b = BytesMut::with_capacity(2 + part.len());
            b.put_u8((hdr & 0xe0) | NAL_FU_A);
            let mut fu = nal_type;
            if i == 0 {
                fu |= 0x80;
            }
            if i + 1 == count {
                fu |= 0x40;
            }
            b.put_u8(fu);
            b.put_slice(&part);
            out.push(packet(seq, timestamp, b.freeze()));
        }
    }
    flush_stap(&mut stap, &mut stap_len, seq, out);
    if out.len() > first {
        if let Some(last) = out.last_mut() {
            last.header.marker = true;
        }
    }
}

/// One Opus packet per RTP packet (RFC 7587 4.2).
pub fn opus(frame: Bytes, timestamp: u32, seq: &mut Sequencer) -> Packet {
    packet(seq, timestamp, frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reassembles what [`h264`] made, the way a receiver would.
    fn depacketize(packets: &[Packet]) -> Vec<Vec<u8>> {
        let mut nalus = Vec::new();
        let mut fu: Vec<u8> = Vec::new();
        for p in packets {
            let b = &p.payload;
            match b[0] & 0x1f {
                NAL_STAP_A => {
                    let mut i = 1;
                    while i + 2 <= b.len() {
                        let n = u16::from_be_bytes([b[i], b[i + 1]]) as usize;
                        nalus.push(b[i + 2..i + 2 + n].to_vec());
                        i += 2 + n;
                    }
                }
                NAL_FU_A => {
                    if b[1] & 0x80 != 0 {
                        fu = vec![(b[0] & 0xe0) | (b[1] & 0x1f)];
                    }
                    fu.extend_from_slice(&b[2..]);
                    if b[1] & 0x40 != 0 {
                        nalus.push(std::mem::take(&mut fu));
                    }
                }
                _ => nalus.push(b.to_vec()),
            }
        }
        nalus
    }

    #[test]
    fn round_trips_every_shape() {
        let sps = Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f, 0xda]);
        let pps = Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]);
        let aud = Bytes::from_static(&[0x09, 0xf0]);
        let big: Bytes = std::iter::once(0x65u8)
            .chain((0..5000u32).map(|i| i as u8))
            .collect::<Vec<_>>()
            .into();
        let exact: Bytes = std::iter::once(0x41u8)
            .chain(std::iter::repeat_n(7u8, RTP_PAYLOAD_MTU - 1))
            .collect::<Vec<_>>()
            .into();
        let cases: Vec<(Vec<Bytes>, usize)> = vec![
            (vec![sps.clone(), pps.clone(), big.clone()], 1 + 5),
            (vec![aud, exact.clone()], 1),
            (vec![sps, pps, exact], 2),
        ];
        for (au, want_packets) in cases {
            let mut seq = Sequencer::new(65534);
            let mut out = Vec::new();
            h264(&au, 1234, &mut seq, &mut out);
            assert_eq!(out.len(), want_packets);
            assert!(out
                .iter()
                .all(|p| p.payload.len() <= RTP_PAYLOAD_MTU && p.header.timestamp == 1234));
            assert!(out.last().unwrap().header.marker);
            assert_eq!(out.iter().filter(|p| p.header.marker).count(), 1);
            let seqs: Vec<u16> = out.iter().map(|p| p.header.sequence_number).collect();
            for w in seqs.windows(2) {
                assert_eq!(w[1], w[0].wrapping_add(1));
            }
            let want: Vec<Vec<u8>> = au
                .iter()
                .filter(|n| n[0] & 0x1f != NAL_AUD)
                .map(|n| n.to_vec())
                .collect();
            assert_eq!(depacketize(&out), want);
        }
    }
}
