//! The segmenter fed a script of units (see `onair::hls::script`): any
//! timestamps, sizes, track and config changes. Nothing may panic, the
//! buffering bounds hold after every unit, and the output keeps the rules
//! of `script::Checker` (numbering, size bounds, a timeline that never
//! goes back, parts that are whole fMP4 fragments).
#![no_main]

use libfuzzer_sys::fuzz_target;
use onair::hls::script;
use onair::hls::segmenter::{
    Segmenter, SegmenterConfig, MAX_PART_BYTES, MAX_PART_UNITS, MAX_PROBE_UNITS,
    MAX_SEGMENT_BYTES,
};

fuzz_target!(|data: &[u8]| {
    let cfg = SegmenterConfig::new(200, 2000);
    let mut seg = Segmenter::new(cfg, 0, 0, false);
    let mut checker = script::Checker::new(cfg);
    for unit in script::decode(data) {
        for e in seg.push(unit) {
            checker.check(&e).unwrap();
        }
        let (units, bytes) = seg.buffered();
        assert!(units <= MAX_PROBE_UNITS.max(MAX_PART_UNITS), "{units} units held");
        assert!(bytes <= MAX_SEGMENT_BYTES.max(MAX_PART_BYTES), "{bytes} bytes held");
        seg.drain_limit_hits(|_, _| {});
    }
    for e in seg.finish() {
        checker.check(&e).unwrap();
    }
});
