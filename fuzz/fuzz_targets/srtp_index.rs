//! See `onair::fuzzing::srtp_index` for what the input is and what is asserted.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    onair::fuzzing::srtp_index(data);
});
