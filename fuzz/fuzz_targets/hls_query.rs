//! What an HLS request names: `NAME?QUERY` split at the first `?`, the
//! name through `parse_file` and the query through `parse_want`, as the
//! `/hls/` and `/vod/` handlers call them. A name that parses never
//! reaches outside its folder and prints back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onair::hls::request::{parse_file, parse_want};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (name, query) = match text.split_once('?') {
        Some((n, q)) => (n, Some(q)),
        None => (text, None),
    };
    if let Some(file) = parse_file(name) {
        assert!(!name.contains('/') && !name.contains(".."), "{name:?}");
        assert_eq!(file.name(), name);
        assert_eq!(parse_file(&file.name()), Some(file));
    }
    if let Ok(Some(want)) = parse_want(query) {
        assert!(query.is_some_and(|q| q.contains("_HLS_msn=")));
        let _ = want;
    }
});
