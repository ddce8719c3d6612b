//! FLV video and audio tag bodies, then whatever they carry.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use onair::codec::{aac, flv, h264};

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(tag) = flv::parse_video_tag(&bytes) {
        match tag.packet {
            flv::VideoPacket::SequenceHeader(rec) => {
                let _ = h264::parse_avc_decoder_config(&rec);
            }
            flv::VideoPacket::Nalus { data, .. } => {
                let _ = h264::split_avcc(&data, 4);
            }
            _ => {}
        }
    }
    if let Ok(flv::AudioTag {
        packet: flv::AudioPacket::SequenceHeader(asc),
    }) = flv::parse_audio_tag(&bytes)
    {
        let _ = aac::parse_asc(&asc);
    }
});
