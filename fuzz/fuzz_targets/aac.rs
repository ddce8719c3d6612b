//! AudioSpecificConfig and ADTS parsing; a parsed config that ADTS can
//! carry must round-trip through write_adts/parse_adts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onair::codec::aac;

fuzz_target!(|data: &[u8]| {
    let _ = aac::parse_adts(data);
    if let Ok(asc) = aac::parse_asc(data) {
        if let Ok(header) = aac::write_adts(&asc, 100) {
            let back = aac::parse_adts(&header).expect("our own ADTS header");
            assert_eq!(back.sample_rate, asc.sample_rate);
            assert_eq!(back.frame_length, 107);
        }
    }
});
