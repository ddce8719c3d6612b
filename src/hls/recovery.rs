//! Crash recovery of a recording folder (see [`super::recorder`]): the
//! playlist is cut after its last whole line, every segment file it does
//! not list yet is cut after its last complete fMP4 fragment and appended,
//! and `EXT-X-ENDLIST` closes it.
//!
//! The parts that read untrusted bytes (whatever a crash, a full disk or a
//! meddling operator left in the folder) are pure functions,
//! [`read_playlist`], [`primary_track`] and [`fmp4::scan_fragments`]: the
//! `hls_recovery` fuzz target calls them.

use super::fmp4::{self, AUDIO_TRACK_ID, VIDEO_TRACK_ID};
use super::recorder::{sync_dir, vod_header};
use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

/// The longest EXTINF believed, in seconds: far above any segment we write
/// (TARGETDURATION is a few seconds); a larger or non-finite value is
/// garbage and counts as zero.
const MAX_EXTINF_SECS: f64 = 3600.0;

/// What a recording's playlist already says.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PlaylistState {
    /// Bytes up to the end of the last whole line: a crash in the middle
    /// of an append leaves a torn line, which is cut.
    pub keep: usize,
    /// Segment URIs listed.
    pub listed: HashSet<String>,
    /// Sum of the EXTINF durations, seconds.
    pub duration: f64,
    /// The last EXT-X-MAP's init segment id.
    pub last_map: Option<u32>,
}

pub fn read_playlist(text: &str) -> PlaylistState {
    let keep = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let text = &text[..keep];
    let listed = text
        .lines()
        .filter(|l| l.ends_with(".m4s"))
        .map(str::to_string)
        .collect();
    let duration = text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|l| l.split(',').next()?.trim().parse::<f64>().ok())
        .filter(|d| d.is_finite() && (0.0..=MAX_EXTINF_SECS).contains(d))
        .sum();
    let last_map = text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\"init"))
        .filter_map(|l| l.strip_suffix(".mp4\"")?.parse().ok())
        .next_back();
    PlaylistState {
        keep,
        listed,
        duration,
        last_map,
    }
}

/// The track whose durations make the timeline (video when there is one),
/// and its timescale, read from an init segment we wrote: the video track's
/// `mdhd` comes first, the audio one (timescale = sample rate) last.
pub fn primary_track(init: &[u8]) -> (u32, u32) {
    let has_video = init.windows(4).any(|w| w == b"avc1");
    let timescales: Vec<u32> = init
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"mdhd")
        .filter_map(|(i, _)| {
            // size+type, then version/flags, creation, modification, timescale
            let at = i + 4 + 4 + 8;
            Some(u32::from_be_bytes(init.get(at..at + 4)?.try_into().ok()?))
        })
        .collect();
    if has_video {
        (VIDEO_TRACK_ID, crate::media::CLOCK_RATE as u32)
    } else {
        (
            AUDIO_TRACK_ID,
            timescales
                .last()
                .copied()
                .filter(|t| *t > 0)
                .unwrap_or(48_000),
        )
    }
}

/// `s<MSN>.m4s` -> MSN, `init<N>.mp4` -> N (the names the recorder writes).
fn numbered<T: std::str::FromStr>(name: &str, prefix: &str, suffix: &str) -> Option<T> {
    name.strip_prefix(prefix)?
        .strip_suffix(suffix)?
        .parse()
        .ok()
}

/// Recovers one folder; returns (duration in seconds, bytes on disk).
pub fn recover_dir(dir: &Path, target_duration: u32) -> std::io::Result<(f64, u64)> {
    let playlist_path = dir.join("index.m3u8");
    let mut text = match std::fs::read_to_string(&playlist_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0.0, 0)),
        Err(e) => return Err(e),
    };
    if text.is_empty() {
        text = vod_header(target_duration);
        std::fs::write(&playlist_path, &text)?;
    }
    let state = read_playlist(&text);
    if state.keep < text.len() {
        // Parsers skip a stray fragment only if it is a whole line, so a
        // torn last line is cut rather than ended with a newline.
        let f = OpenOptions::new().write(true).open(&playlist_path)?;
        f.set_len(state.keep as u64)?;
    }
    let mut duration = state.duration;
    let mut segs: Vec<u64> = Vec::new();
    let mut inits: Vec<u32> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(msn) = numbered::<u64>(&name, "s", ".m4s") {
            if !state.listed.contains(&name) {
                segs.push(msn);
            }
        } else if let Some(id) = numbered::<u32>(&name, "init", ".mp4") {
            inits.push(id);
        }
    }
    segs.sort_unstable();
    let init_id = inits.iter().copied().max();
    let (track, timescale) = match init_id {
        Some(id) => primary_track(&std::fs::read(dir.join(format!("init{id}.mp4")))?),
        None => (VIDEO_TRACK_ID, crate::media::CLOCK_RATE as u32),
    };
    let mut lines = String::new();
    let mut map = state.last_map;
    for msn in segs {
        let path = dir.join(format!("s{msn}.m4s"));
        let data = std::fs::read(&path)?;
        let scan = fmp4::scan_fragments(&data, track);
        if scan.fragments == 0 {
            std::fs::remove_file(&path)?;
            continue;
        }
        if scan.complete_len < data.len() {
            OpenOptions::new()
                .write(true)
                .open(&path)?
                .set_len(scan.complete_len as u64)?;
        }
        let d = scan.duration as f64 / timescale.max(1) as f64;
        if let Some(id) = init_id {
            if map != Some(id) {
                if map.is_some() {
                    lines.push_str("#EXT-X-DISCONTINUITY\n");
                }
                lines.push_str(&format!("#EXT-X-MAP:URI=\"init{id}.mp4\"\n"));
                map = Some(id);
            }
        }
        lines.push_str(&format!("#EXTINF:{d:.5},\ns{msn}.m4s\n"));
        duration += d;
    }
    lines.push_str("#EXT-X-ENDLIST\n");
    let mut f = OpenOptions::new().append(true).open(&playlist_path)?;
    f.write_all(lines.as_bytes())?;
    f.sync_data()?;
    sync_dir(dir)?;
    let mut size = 0;
    for entry in std::fs::read_dir(dir)? {
        size += entry?.metadata()?.len();
    }
    Ok((duration, size))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::hls::script::{self, Step};
    use crate::hls::segmenter::{Event, Segmenter, SegmenterConfig};

    /// A recording's pieces as the fuzz target reads them: a playlist, an
    /// init segment and a segment file, each behind a 4-byte length (the
    /// last one takes the rest).
    pub fn fuzz_input(playlist: &str, init: &[u8], segment: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for part in [playlist.as_bytes(), init] {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part);
        }
        out.extend_from_slice(segment);
        out
    }

    /// Two seconds of the segmenter's real output: (init, one segment).
    fn recorded() -> (Vec<u8>, Vec<u8>) {
        let mut steps = vec![Step::video(0, true), Step::audio(0)];
        for i in 1..60 {
            steps.push(Step::video(3000, i % 30 == 0));
            steps.push(Step::audio(1920));
        }
        let mut seg = Segmenter::new(SegmenterConfig::new(200, 2000), 0, 0, false);
        let mut events = Vec::new();
        for u in script::decode(&script::encode(&steps)) {
            events.extend(seg.push(u));
        }
        events.extend(seg.finish());
        let mut init = Vec::new();
        let mut segment = Vec::new();
        for e in &events {
            match e {
                Event::Init(i) if init.is_empty() => init = i.bytes.to_vec(),
                Event::Part(p) if p.msn == 0 => segment.extend_from_slice(&p.bytes),
                _ => {}
            }
        }
        (init, segment)
    }

    /// (name, playlist, init, segment, expected playlist duration,
    /// expected fragments in the segment).
    type Case = (&'static str, String, Vec<u8>, Vec<u8>, f64, usize);

    pub fn cases() -> Vec<Case> {
        let (init, seg) = recorded();
        let header = vod_header(2);
        let listed = format!("{header}#EXT-X-MAP:URI=\"init0.mp4\"\n#EXTINF:2.00000,\ns0.m4s\n");
        let whole = fmp4::scan_fragments(&seg, VIDEO_TRACK_ID).fragments;
        let mut torn_seg = seg.clone();
        torn_seg.truncate(seg.len() - 7);
        let mut garbage = seg.clone();
        garbage.extend_from_slice(&[0xff; 64]);
        let mut huge_count = seg.clone();
        // The first trun's sample count, made enormous.
        if let Some(at) = huge_count.windows(4).position(|w| w == b"trun") {
            huge_count[at + 8..at + 12].copy_from_slice(&u32::MAX.to_be_bytes());
        }
        vec![
            ("clean", listed.clone(), init.clone(), seg.clone(), 2.0, whole),
            ("header_only", header.clone(), init.clone(), seg.clone(), 0.0, whole),
            (
                "torn_line",
                format!("{listed}#EXTINF:2.0"),
                init.clone(),
                torn_seg,
                2.0,
                whole - 1,
            ),
            ("garbage_tail", header.clone(), init.clone(), garbage, 0.0, whole),
            (
                "bad_extinf",
                format!("{header}#EXTINF:nan,\ns1.m4s\n#EXTINF:inf,\ns2.m4s\n#EXTINF:-3,\ns3.m4s\n#EXTINF:1e308,\ns4.m4s\n"),
                init.clone(),
                Vec::new(),
                0.0,
                0,
            ),
            ("huge_sample_count", header.clone(), init.clone(), huge_count, 0.0, whole),
            ("audio_only_init", header.clone(), b"mdhd\0\0\0\0\0\0\0\0\0\0\0\0".to_vec(), seg, 0.0, whole),
            ("empty", String::new(), Vec::new(), Vec::new(), 0.0, 0),
        ]
    }

    #[test]
    fn recovery_reads_what_a_crash_leaves() {
        for (name, playlist, init, seg, duration, fragments) in cases() {
            let state = read_playlist(&playlist);
            assert!(state.keep <= playlist.len(), "{name}");
            assert!(
                (state.duration - duration).abs() < 1e-9,
                "{name}: {state:?}"
            );
            let (track, timescale) = primary_track(&init);
            assert!(timescale > 0, "{name}");
            let scan = fmp4::scan_fragments(&seg, track);
            assert!(scan.complete_len <= seg.len(), "{name}");
            assert_eq!(scan.fragments, fragments, "{name}: {scan:?}");
        }
    }

    #[test]
    fn a_crashed_folder_becomes_a_closed_playlist() {
        let (init, seg) = recorded();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("index.m3u8"),
            format!("{}#EXT-X-MAP:URI", vod_header(2)),
        )
        .unwrap();
        std::fs::write(dir.path().join("init0.mp4"), &init).unwrap();
        let mut torn = seg.clone();
        torn.truncate(seg.len() - 5);
        std::fs::write(dir.path().join("s0.m4s"), &torn).unwrap();
        std::fs::write(dir.path().join("s1.m4s"), b"junk").unwrap();
        let (duration, _) = recover_dir(dir.path(), 2).unwrap();
        assert!(duration > 1.0 && duration < 2.0, "{duration}");
        let text = std::fs::read_to_string(dir.path().join("index.m3u8")).unwrap();
        assert!(text.ends_with("s0.m4s\n#EXT-X-ENDLIST\n"), "{text}");
        assert!(!text.contains("#EXT-X-MAP:URI\n"), "torn line cut: {text}");
        assert!(!dir.path().join("s1.m4s").exists(), "no fragment: removed");
    }

    /// `ONAIR_WRITE_FUZZ_SEEDS=1` rewrites the `hls_recovery` seeds from
    /// the cases; otherwise they must match.
    #[test]
    fn fuzz_seeds_are_the_table() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/hls_recovery");
        let write = std::env::var_os("ONAIR_WRITE_FUZZ_SEEDS").is_some();
        for (name, playlist, init, seg, _, _) in cases() {
            let data = fuzz_input(&playlist, &init, &seg);
            let path = dir.join(name);
            if write {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &data).unwrap();
            } else {
                let seed = std::fs::read(&path).unwrap_or_else(|e| {
                    panic!(
                        "{}: {e} (run with ONAIR_WRITE_FUZZ_SEEDS=1)",
                        path.display()
                    )
                });
                assert!(
                    seed == data,
                    "{} is stale (ONAIR_WRITE_FUZZ_SEEDS=1)",
                    path.display()
                );
            }
        }
    }
}
