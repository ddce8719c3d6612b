//! The segmenter's tests: the rules on well-behaved streams, then the
//! table of adversarial timestamp sequences (also the fuzz seeds).

use super::*;
use crate::media::{AacConfig, H264Config};

fn h264(width: u32) -> Arc<TrackConfig> {
    Arc::new(TrackConfig::H264(H264Config {
        sps: Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f]),
        pps: Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80]),
        width,
        height: 720,
        profile_idc: 0x42,
        constraint_flags: 0xc0,
        level_idc: 0x1f,
    }))
}

fn aac() -> Arc<TrackConfig> {
    Arc::new(TrackConfig::Aac(AacConfig {
        asc: Bytes::from_static(&[0x11, 0x90]),
        object_type: 2,
        sample_rate: 48_000,
        channels: 2,
    }))
}

fn video(cfg: &Arc<TrackConfig>, ms: i64, key: bool) -> Arc<Unit> {
    Arc::new(Unit {
        flv_body: Default::default(),
        config: cfg.clone(),
        pts: ms * 90,
        dts: ms * 90,
        keyframe: key,
        payload: Payload::H264(vec![Bytes::from_static(if key {
            &[0x65, 0x88, 0x80]
        } else {
            &[0x41, 0x9a]
        })]),
    })
}

fn audio(cfg: &Arc<TrackConfig>, ms: i64) -> Arc<Unit> {
    Arc::new(Unit {
        flv_body: Default::default(),
        config: cfg.clone(),
        pts: ms * 90,
        dts: ms * 90,
        keyframe: true,
        payload: Payload::Aac(Bytes::from_static(&[0x21, 0x10])),
    })
}

/// 30 fps video with a keyframe every `gop` frames and 48 kHz AAC,
/// interleaved in time order as RTMP delivers them (ms timestamps).
fn av_stream(secs: i64, gop: i64, v: &Arc<TrackConfig>, a: &Arc<TrackConfig>) -> Vec<Arc<Unit>> {
    let mut units = Vec::new();
    let (mut f, mut af) = (0i64, 0i64);
    loop {
        let vt = f * 1000 / 30;
        let at = af * 1024 * 1000 / 48_000;
        if vt.min(at) > secs * 1000 {
            break;
        }
        if vt <= at {
            units.push(video(v, vt, f % gop == 0));
            f += 1;
        } else {
            units.push(audio(a, at));
            af += 1;
        }
    }
    units
}

fn run(seg: &mut Segmenter, units: Vec<Arc<Unit>>) -> Vec<Event> {
    let mut ev: Vec<Event> = units.into_iter().flat_map(|u| seg.push(u)).collect();
    ev.extend(seg.finish());
    ev
}

fn check_rules(cfg: &SegmenterConfig, ev: &[Event]) -> (usize, usize) {
    let (mut segs, mut parts) = (0, 0);
    let mut last_msn = None;
    let mut open = None;
    for e in ev {
        match e {
            Event::SegmentStart { msn, .. } => {
                assert!(last_msn.is_none_or(|l| *msn == l + 1), "msn goes up by one");
                last_msn = Some(*msn);
                open = Some((*msn, 0u32));
            }
            Event::Part(p) => {
                let (msn, idx) = open.expect("part inside a segment");
                assert_eq!((p.msn, p.index), (msn, idx));
                open = Some((msn, idx + 1));
                assert!(
                    p.duration <= cfg.part_target_secs() + 1e-9,
                    "part {}.{} lasts {} > {}",
                    p.msn,
                    p.index,
                    p.duration,
                    cfg.part_target_secs()
                );
                parts += 1;
            }
            Event::SegmentEnd { duration, .. } => {
                assert!(
                    duration.round() <= cfg.target_duration as f64,
                    "segment {duration}"
                );
                segs += 1;
            }
            Event::Init(_) => {}
        }
    }
    (segs, parts)
}

#[test]
fn av_stream_makes_two_second_segments_of_short_parts() {
    let cfg = SegmenterConfig::new(200, 2000);
    let (v, a) = (h264(1280), aac());
    let mut seg = Segmenter::new(cfg, 0, 0, false);
    let ev = run(&mut seg, av_stream(10, 30, &v, &a));
    let (segs, parts) = check_rules(&cfg, &ev);
    assert_eq!(segs, 6, "10 s in 2 s segments, then the frame at 10.0 s");
    assert!(parts >= 45, "{parts} parts");
    assert!(seg.tracks().video.is_some() && seg.tracks().audio.is_some());
    let durations: Vec<f64> = ev
        .iter()
        .filter_map(|e| match e {
            Event::SegmentEnd { duration, .. } => Some(*duration),
            _ => None,
        })
        .collect();
    for d in &durations[..5] {
        assert!((d - 2.0).abs() < 0.05, "segment {d}");
    }
    // Every segment's first part is independent.
    let mut first = true;
    for e in &ev {
        match e {
            Event::SegmentStart { .. } => first = true,
            Event::Part(p) => {
                if first {
                    assert!(p.independent);
                }
                first = false;
            }
            _ => {}
        }
    }
}

#[test]
fn sparse_keyframes_still_respect_target_duration() {
    let cfg = SegmenterConfig::new(250, 2000);
    let (v, a) = (h264(1280), aac());
    let mut seg = Segmenter::new(cfg, 7, 0, false);
    let ev = run(&mut seg, av_stream(12, 250, &v, &a));
    let (segs, _) = check_rules(&cfg, &ev);
    assert!(segs >= 4);
}

#[test]
fn audio_only_stream() {
    let cfg = SegmenterConfig::new(200, 2000);
    let a = aac();
    let units: Vec<_> = (0..500)
        .map(|i| audio(&a, i * 1024 * 1000 / 48_000))
        .collect();
    let mut seg = Segmenter::new(cfg, 0, 0, false);
    let ev = run(&mut seg, units);
    let (segs, parts) = check_rules(&cfg, &ev);
    assert!(seg.tracks().video.is_none());
    assert_eq!(segs, 6, "10.6 s of audio");
    assert!(parts > 40);
}

#[test]
fn new_sps_makes_new_init_and_discontinuity() {
    let cfg = SegmenterConfig::new(200, 2000);
    let (v1, v2, a) = (h264(1280), h264(640), aac());
    let mut units = av_stream(3, 30, &v1, &a);
    let later: Vec<_> = av_stream(3, 30, &v2, &a)
        .into_iter()
        .map(|u| {
            Arc::new(Unit {
                flv_body: Default::default(),
                pts: u.pts + 3100 * 90,
                dts: u.dts + 3100 * 90,
                ..(*u).clone()
            })
        })
        .collect();
    units.extend(later);
    let mut seg = Segmenter::new(cfg, 0, 0, false);
    let ev = run(&mut seg, units);
    check_rules(&cfg, &ev);
    let inits: Vec<u32> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Init(i) => Some(i.id),
            _ => None,
        })
        .collect();
    assert_eq!(inits, vec![0, 1]);
    let disc: Vec<(u32, bool)> = ev
        .iter()
        .filter_map(|e| match e {
            Event::SegmentStart {
                init_id,
                discontinuity,
                ..
            } => Some((*init_id, *discontinuity)),
            _ => None,
        })
        .collect();
    let switch = disc
        .iter()
        .position(|(id, _)| *id == 1)
        .expect("new init used");
    assert!(disc[switch].1, "discontinuity at the switch: {disc:?}");
    assert_eq!(disc.iter().filter(|(_, d)| *d).count(), 1);
}

// ---- adversarial timestamps: the table is in `script::CASES` ----

use crate::hls::script;

/// Runs `data` (a script) through a fresh segmenter, checking the
/// buffering bounds after every unit; returns the events and the hits.
fn run_script(data: &[u8]) -> (Vec<Event>, Vec<(Limit, u64)>) {
    let cfg = SegmenterConfig::new(200, 2000);
    let mut seg = Segmenter::new(cfg, 0, 0, false);
    let mut events = Vec::new();
    let mut hits: Vec<(Limit, u64)> = Vec::new();
    let mut count = |l: Limit, n: u64| match hits.iter_mut().find(|(k, _)| *k == l) {
        Some((_, m)) => *m += n,
        None => hits.push((l, n)),
    };
    for u in script::decode(data) {
        events.extend(seg.push(u));
        let (units, bytes) = seg.buffered();
        assert!(
            units <= MAX_PROBE_UNITS.max(MAX_PART_UNITS),
            "{units} units held"
        );
        assert!(
            bytes <= MAX_SEGMENT_BYTES.max(MAX_PART_BYTES),
            "{bytes} bytes held"
        );
        seg.drain_limit_hits(&mut count);
    }
    events.extend(seg.finish());
    (events, hits)
}

#[test]
fn adversarial_timestamps_stay_bounded() {
    for case in script::CASES {
        let data = script::encode(&(case.steps)());
        let (events, hits) = run_script(&data);
        let summary = script::check_events(SegmenterConfig::new(200, 2000), &events)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        for want in case.hits {
            assert!(
                hits.iter().any(|(l, _)| l == want),
                "{}: {want:?} never hit; hits {hits:?}",
                case.name
            );
        }
        if case.hits.is_empty() {
            assert!(hits.is_empty(), "{}: unexpected {hits:?}", case.name);
        }
        assert!(
            summary.discontinuities <= case.max_discontinuities,
            "{}: {summary:?}",
            case.name
        );
        assert!(
            summary.parts > 0,
            "{}: nothing came out: {summary:?}",
            case.name
        );
        eprintln!("{}: {summary:?} {hits:?}", case.name);
    }
}

/// The table's inputs are the `hls_segmenter` fuzz target's seeds:
/// `ONAIR_WRITE_FUZZ_SEEDS=1` rewrites them, otherwise they must match.
#[test]
fn fuzz_seeds_are_the_table() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/hls_segmenter");
    let write = std::env::var_os("ONAIR_WRITE_FUZZ_SEEDS").is_some();
    for case in script::CASES {
        let data = script::encode(&(case.steps)());
        let path = dir.join(case.name);
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
