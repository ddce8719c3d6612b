//! What an HLS request names: the file under `/hls/CHANNEL/` or
//! `/vod/ID/`, and the blocking-reload directives in its query. Pure
//! functions of the request text (no HTTP types), so the fuzz target
//! `hls_query` calls exactly what the handlers call.
//!
//! File names are parsed into numbers, never joined into paths as given,
//! so no request can reach outside a recording's folder.

use super::live::Want;

/// The longest number accepted in a name or a query: 19 digits fit an
/// `i64`/`u64`, and a longer one is never a sequence number we made.
const MAX_DIGITS: usize = 19;

/// What a live or VOD file name asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum File {
    Playlist,
    Init(u32),
    Segment(u64),
    Part(u64, u32),
    Poster,
}

impl File {
    /// The file name that parses to this (what the playlists write).
    pub fn name(&self) -> String {
        match self {
            File::Playlist => "index.m3u8".into(),
            File::Poster => "poster.jpg".into(),
            File::Init(n) => format!("init{n}.mp4"),
            File::Segment(m) => format!("s{m}.m4s"),
            File::Part(m, p) => format!("s{m}.{p}.m4s"),
        }
    }
}

/// Digits only, as the playlists write them: no signs, spaces or dots,
/// and no leading zeros, so every file has one name (and one cache key).
fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || s.len() > MAX_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

pub fn parse_file(name: &str) -> Option<File> {
    if name == "index.m3u8" {
        return Some(File::Playlist);
    }
    if name == "poster.jpg" {
        return Some(File::Poster);
    }
    if let Some(n) = name
        .strip_prefix("init")
        .and_then(|n| n.strip_suffix(".mp4"))
    {
        return num(n).map(File::Init);
    }
    let stem = name.strip_prefix('s')?.strip_suffix(".m4s")?;
    match stem.split_once('.') {
        Some((m, p)) => Some(File::Part(num(m)?, num(p)?)),
        None => num(stem).map(File::Segment),
    }
}

/// Why a blocking-reload query was refused (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadQuery {
    #[error("{0} must be a non-negative integer")]
    NotANumber(&'static str),
    #[error("{0} out of range")]
    OutOfRange(&'static str),
    #[error("_HLS_part without _HLS_msn")]
    PartWithoutMsn,
}

/// `_HLS_msn` / `_HLS_part` (RFC 8216bis 6.2.5.2). Anything else in the
/// query is ignored, as the spec asks for unknown parameters; a repeated
/// directive counts by its last value.
pub fn parse_want(query: Option<&str>) -> Result<Option<Want>, BadQuery> {
    fn number(name: &'static str, v: &str) -> Result<u64, BadQuery> {
        if v.is_empty() || v.len() > MAX_DIGITS || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadQuery::NotANumber(name));
        }
        v.parse().map_err(|_| BadQuery::OutOfRange(name))
    }
    let (mut msn, mut part) = (None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "_HLS_msn" => msn = Some(number("_HLS_msn", v)?),
            "_HLS_part" => {
                let p = number("_HLS_part", v)?;
                part = Some(u32::try_from(p).map_err(|_| BadQuery::OutOfRange("_HLS_part"))?);
            }
            _ => {}
        }
    }
    match (msn, part) {
        (None, Some(_)) => Err(BadQuery::PartWithoutMsn),
        (None, None) => Ok(None),
        (Some(msn), part) => Ok(Some(Want { msn, part })),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// File names and what they parse to: the unit test's table and the
    /// `hls_query` fuzz target's seeds.
    pub const FILE_CASES: &[(&str, Option<File>)] = &[
        ("index.m3u8", Some(File::Playlist)),
        ("poster.jpg", Some(File::Poster)),
        ("init3.mp4", Some(File::Init(3))),
        ("init4294967295.mp4", Some(File::Init(u32::MAX))),
        ("init4294967296.mp4", None),
        ("s12.m4s", Some(File::Segment(12))),
        ("s12.4.m4s", Some(File::Part(12, 4))),
        ("s0.0.m4s", Some(File::Part(0, 0))),
        ("s01.m4s", None),
        ("init00.mp4", None),
        ("s1.00.m4s", None),
        ("..", None),
        ("../index.m3u8", None),
        ("s-1.m4s", None),
        ("s+1.m4s", None),
        ("s1.2.3.m4s", None),
        ("init.mp4", None),
        ("s.m4s", None),
        ("s..m4s", None),
        ("s99999999999999999999.m4s", None),
        ("index.m3u8 ", None),
        ("s1 .m4s", None),
        ("%2e%2e", None),
        ("s\u{0661}.m4s", None),
    ];

    /// What a query parses to: `Ok(Some((msn, part)))`, `Ok(None)` (no
    /// directive), or an error.
    type Parsed = Result<Option<(u64, Option<u32>)>, ()>;

    /// Queries and what they parse to.
    pub const QUERY_CASES: &[(&str, Parsed)] = &[
        ("", Ok(None)),
        ("foo=bar", Ok(None)),
        ("_HLS_msn=5&_HLS_part=2", Ok(Some((5, Some(2))))),
        ("_HLS_msn=5&foo=bar", Ok(Some((5, None)))),
        ("&&_HLS_msn=7&", Ok(Some((7, None)))),
        ("_HLS_msn=1&_HLS_msn=9", Ok(Some((9, None)))),
        ("_HLS_skip=YES&_HLS_msn=3", Ok(Some((3, None)))),
        (
            "_HLS_msn=9999999999999999999",
            Ok(Some((9_999_999_999_999_999_999, None))),
        ),
        ("_HLS_msn=18446744073709551615", Err(())),
        ("_HLS_msn=-1", Err(())),
        ("_HLS_msn=abc", Err(())),
        ("_HLS_msn=", Err(())),
        ("_HLS_msn", Err(())),
        ("_HLS_part=1", Err(())),
        ("_HLS_msn=1&_HLS_part=-2", Err(())),
        ("_HLS_msn=99999999999999999999", Err(())),
        ("_HLS_msn=18446744073709551616", Err(())),
        ("_HLS_msn=1&_HLS_part=99999999999", Err(())),
        ("_HLS_msn=1&_HLS_part=4294967296", Err(())),
        ("_HLS_msn=%31", Err(())),
    ];

    #[test]
    fn file_names_parse_strictly() {
        for (name, want) in FILE_CASES {
            assert_eq!(parse_file(name), *want, "{name:?}");
            if let Some(f) = want {
                assert_eq!(parse_file(&f.name()), Some(*f), "round trip of {name:?}");
            }
        }
    }

    /// The `hls_query` fuzz target reads `NAME?QUERY`; its seeds are every
    /// name with every query of the tables above.
    /// `ONAIR_WRITE_FUZZ_SEEDS=1` rewrites them, otherwise they must match.
    #[test]
    fn fuzz_seeds_are_the_table() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/hls_query");
        let write = std::env::var_os("ONAIR_WRITE_FUZZ_SEEDS").is_some();
        let mut seeds: Vec<String> = FILE_CASES.iter().map(|(n, _)| n.to_string()).collect();
        seeds.extend(QUERY_CASES.iter().map(|(q, _)| format!("index.m3u8?{q}")));
        for (i, seed) in seeds.iter().enumerate() {
            let path = dir.join(format!("case{i:02}"));
            if write {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, seed).unwrap();
            } else {
                let got = std::fs::read(&path).unwrap_or_else(|e| {
                    panic!(
                        "{}: {e} (run with ONAIR_WRITE_FUZZ_SEEDS=1)",
                        path.display()
                    )
                });
                assert!(
                    got == seed.as_bytes(),
                    "{} is stale (ONAIR_WRITE_FUZZ_SEEDS=1)",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn blocking_query_is_validated() {
        assert_eq!(parse_want(None), Ok(None));
        for (q, want) in QUERY_CASES {
            let got = parse_want(Some(q))
                .map(|w| w.map(|w| (w.msn, w.part)))
                .map_err(|_| ());
            assert_eq!(got, *want, "{q:?}");
        }
    }
}
