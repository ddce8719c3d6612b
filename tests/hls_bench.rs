//! Segmenter cost per 2.5 Mbps channel (docs/BENCHMARKS.md, `## LL-HLS`).
//! Ignored by default; run in release:
//!
//!   cargo test --release --test hls_bench -- --ignored --nocapture
//!
//! Feeds 120 s of a synthetic 2.5 Mbps stream (30 fps H.264 access units,
//! keyframe every 2 s, 48 kHz AAC at 128 kb/s) through the segmenter and
//! the live playlist (fMP4 parts, segment assembly, playlist rendering),
//! and reports CPU time as a share of one core in real time.

use bytes::Bytes;
use onair::hls::live::LiveChannel;
use onair::hls::segmenter::{Segmenter, SegmenterConfig};
use onair::media::{AacConfig, H264Config, Payload, TrackConfig, Unit};
use std::sync::Arc;
use std::time::Instant;

fn cpu_time() -> f64 {
    // utime + stime of this process, from /proc (ticks of 1/100 s).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let f: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

#[test]
#[ignore]
fn segmenter_cpu_per_2_5_mbps_channel() {
    const SECS: i64 = 120;
    let v = Arc::new(TrackConfig::H264(H264Config {
        sps: Bytes::from_static(&[0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50]),
        pps: Bytes::from_static(&[0x68, 0xeb, 0xe3, 0xcb]),
        width: 1280,
        height: 720,
        profile_idc: 0x64,
        constraint_flags: 0,
        level_idc: 0x1f,
    }));
    let a = Arc::new(TrackConfig::Aac(AacConfig {
        asc: Bytes::from_static(&[0x11, 0x90]),
        object_type: 2,
        sample_rate: 48_000,
        channels: 2,
    }));
    // 2.5 Mbps total: 128 kb/s audio, the rest video; keyframes 8x a P frame.
    let video_bps = 2_500_000 - 128_000;
    let per_gop = video_bps / 8 * 2; // bytes per 2 s GOP
    let p_size = per_gop / (59 + 8);
    let key = Bytes::from(vec![0x65u8; p_size * 8]);
    let p = Bytes::from(vec![0x41u8; p_size]);
    let aac = Bytes::from(vec![0x21u8; 128_000 / 8 * 1024 / 48_000]);
    let mut units = Vec::new();
    let (mut f, mut af) = (0i64, 0i64);
    loop {
        let vt = f * 3000;
        let at = af * 1024 * 90_000 / 48_000;
        if vt.min(at) > SECS * 90_000 {
            break;
        }
        if vt <= at {
            let k = f % 60 == 0;
            units.push(Arc::new(Unit {
                flv_body: Default::default(),
                config: v.clone(),
                pts: vt,
                dts: vt,
                keyframe: k,
                payload: Payload::H264(vec![if k { key.clone() } else { p.clone() }]),
            }));
            f += 1;
        } else {
            units.push(Arc::new(Unit {
                flv_body: Default::default(),
                config: a.clone(),
                pts: at,
                dts: at,
                keyframe: true,
                payload: Payload::Aac(aac.clone()),
            }));
            af += 1;
        }
    }
    let bytes: usize = units.iter().map(|u| u.payload.len()).sum();
    let cfg = SegmenterConfig::new(200, 2000);
    let live = LiveChannel::new("bench".into(), cfg);
    live.begin_stream();
    let mut seg = Segmenter::new(cfg, 0, 0, false);
    let (wall, cpu) = (Instant::now(), cpu_time());
    let mut parts = 0;
    for u in units {
        let ev = seg.push(u);
        parts += ev
            .iter()
            .filter(|e| matches!(e, onair::hls::segmenter::Event::Part(_)))
            .count();
        live.apply(&ev);
    }
    let cpu = cpu_time() - cpu;
    let wall = wall.elapsed().as_secs_f64();
    let share = wall / SECS as f64 * 100.0;
    println!(
        "segmenter + live playlist: {SECS} s of {:.2} Mbps in {wall:.3} s wall ({cpu:.2} s CPU by /proc), {parts} parts: {share:.3} % of one core",
        bytes as f64 * 8.0 / SECS as f64 / 1e6
    );
    assert!(share < 0.5, "{share} % of a core");
}
