//! Crash recovery's readers on whatever a crash (or anyone) left in a
//! recording folder: the playlist, the newest init segment and a segment
//! file, each behind a 4-byte big-endian length (the last takes the rest).
#![no_main]

use libfuzzer_sys::fuzz_target;
use onair::hls::fmp4;
use onair::hls::recovery::{primary_track, read_playlist};

fn take<'a>(data: &mut &'a [u8]) -> &'a [u8] {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return std::mem::take(data);
    };
    let n = (u32::from_be_bytes(*len) as usize).min(rest.len());
    let (part, rest) = rest.split_at(n);
    *data = rest;
    part
}

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let playlist = String::from_utf8_lossy(take(&mut rest));
    let init = take(&mut rest);
    let segment = rest;
    let state = read_playlist(&playlist);
    assert!(state.keep <= playlist.len());
    assert!(playlist.is_char_boundary(state.keep));
    assert!(state.duration.is_finite() && state.duration >= 0.0);
    let (track, timescale) = primary_track(init);
    assert!(timescale > 0);
    for bytes in [segment, data] {
        let scan = fmp4::scan_fragments(bytes, track);
        assert!(scan.complete_len <= bytes.len());
        assert!(scan.fragments <= bytes.len() / 16);
    }
});
