//! An uploaded profile picture's decoding (PNG, JPEG, WebP, chosen by the
//! bytes): any input is refused or decoded within the side limit. The
//! cropping and re-encoding after it only ever see a decoded picture
//! (src/avatar.rs unit tests).
#![no_main]

use libfuzzer_sys::fuzz_target;
use onair::avatar::probe;

/// The server's bound is 4096 a side; at that size one input takes seconds
/// in a fuzz build, and the decoders' code paths are the same at 512.
const MAX_SIDE: u32 = 512;

fuzz_target!(|data: &[u8]| {
    if let Ok((w, h)) = probe(data, MAX_SIDE) {
        assert!(w <= MAX_SIDE && h <= MAX_SIDE, "{w}x{h}");
    }
});
