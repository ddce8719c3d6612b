//! Every H.264 parser on the same input: none may panic, and what the
//! splitters return must lie inside the input.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use onair::codec::h264;

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    let _ = h264::parse_sps(data);
    if let Ok(rec) = h264::parse_avc_decoder_config(&bytes) {
        for sps in &rec.sps {
            let _ = h264::parse_sps(sps);
        }
    }
    for size in [1u8, 2, 4] {
        if let Ok(nalus) = h264::split_avcc(&bytes, size) {
            assert!(nalus.iter().map(|n| n.len()).sum::<usize>() <= data.len());
        }
    }
    if let Ok(nalus) = h264::split_annexb(&bytes) {
        assert!(nalus.iter().map(|n| n.len()).sum::<usize>() <= data.len());
    }
    assert!(h264::nal_to_rbsp(data).len() <= data.len());
});
