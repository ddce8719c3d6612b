//! See `onair::fuzzing::trickle` for what the input is and what is asserted.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        onair::fuzzing::trickle(text);
    }
});
