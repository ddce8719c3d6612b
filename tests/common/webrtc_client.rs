//! The tests' WebRTC viewer is the load tool's (one piece serves both);
//! this adds what only tests need.

#[allow(unused_imports)]
pub use onair_loadtest::whep::*;

/// Reassembles H.264 access units (Annex B) from RTP, by timestamp and marker.
pub fn access_units(packets: &[rtc::rtp::packet::Packet]) -> Vec<(u32, Vec<u8>)> {
    use rtc::rtp::codec::h264::H264Packet;
    use rtc::rtp::packetizer::Depacketizer;
    let mut depack = H264Packet::default();
    let mut aus = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut sorted: Vec<&rtc::rtp::packet::Packet> = packets.iter().collect();
    // Arrival order is sequence order on loopback except across wraps; keep it.
    sorted.dedup_by_key(|p| p.header.sequence_number);
    for p in sorted {
        if let Ok(b) = depack.depacketize(&p.payload) {
            cur.extend_from_slice(&b);
        }
        if p.header.marker {
            aus.push((p.header.timestamp, std::mem::take(&mut cur)));
        }
    }
    aus
}
