//! What an Icecast client controls: the request head (and the credentials,
//! mount and query in it), and a source's body through each framer (MP3
//! with ID3 tags, ADTS, Ogg pages with Opus). The first byte picks the
//! framer and how the body is split into reads; no input may panic, and a
//! framer never holds more than one frame or page plus the last read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onair::codec::{mp3, ogg};
use onair::icecast::demux::{Demuxer, Format};
use onair::icecast::head;
use onair::icecast::listener::{icy_block, IcyWriter, MAX_ICY_BLOCK};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    if let Ok(Some((h, len))) = head::parse_head(rest) {
        assert!(len <= rest.len() && len <= head::MAX_HEAD_BYTES + 4);
        let _ = h.header("authorization").and_then(head::basic_auth);
        let _ = head::mount_channel(h.path());
        if let Some(song) = head::query_value(h.query(), "song") {
            let title = head::clean_text(&song);
            let block = icy_block(&title);
            assert!(block.len() <= 1 + MAX_ICY_BLOCK);
            assert_eq!(block.len(), 1 + usize::from(block[0]) * 16);
            let mut w = IcyWriter::new(usize::from(pick) + 1);
            let mut out = Vec::new();
            w.write(bytes::Bytes::copy_from_slice(rest), &title.into(), &mut out);
        }
    }
    let _ = mp3::parse_header(rest);
    let _ = ogg::parse_page(rest);
    let _ = ogg::parse_opus_head(rest);
    let _ = ogg::opus_packet_samples(rest);
    let format = match pick % 3 {
        0 => Format::Mp3,
        1 => Format::Adts,
        _ => Format::OggOpus,
    };
    let mut d = Demuxer::new(format);
    let mut frames = Vec::new();
    let step = usize::from(pick / 3) + 1;
    for piece in rest.chunks(step) {
        if d.push(piece, &mut frames).is_err() {
            break;
        }
        assert!(d.buffered() <= ogg::MAX_OGG_PAGE + step);
    }
});
