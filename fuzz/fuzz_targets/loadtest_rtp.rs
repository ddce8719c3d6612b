//! The load generator's reading of what the server under test sends it:
//! the clear RTP header its non-decrypting viewers count media from (with
//! the one-byte extension walk for the transport-wide number), the GRO
//! split of a read, and the transport-cc id in an answer. The first byte
//! picks the extension id and the segment size; the rest is the datagram.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onair_loadtest::clear;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, d)) = data.split_first() else {
        return;
    };
    let id = (pick & 0x0f).max(1);
    if let Some(h) = clear::rtp_header(d, Some(id)) {
        assert!(h.body <= d.len() - 12, "the body is within the datagram");
        assert!(!(64..96).contains(&h.payload_type), "RTCP is not media");
        assert_eq!(clear::rtp_header(d, None).map(|n| n.body), Some(h.body));
    }
    let segment = usize::from(pick >> 4) * 97;
    let split: usize = clear::datagrams(d, (segment > 0).then_some(segment))
        .map(<[u8]>::len)
        .sum();
    assert_eq!(split, d.len());
    if let Ok(sdp) = std::str::from_utf8(d) {
        if let Some(id) = clear::twcc_id(sdp) {
            assert!((1..15).contains(&id));
        }
    }
});
