//! Publishers whose clocks stall, repeat, go backwards or jump: what the
//! segmenter makes of them stays playable.
//!
//! - Every case of the segmenter's adversarial table (`script::CASES`),
//!   with real H.264 and AAC frames in place of the script's placeholders,
//!   is written out as a VOD (init segments, segments, playlist) that
//!   ffprobe reads and ffmpeg decodes without an error.
//! - End to end: an RTMP publisher whose timestamps stall, step back,
//!   jump an hour and flap ±10 s; the live playlist keeps the RFC 8216bis
//!   rules throughout and the recording is a VOD ffmpeg decodes whole.

mod common;
mod hls_util;

use bytes::Bytes;
use common::TestServer;
use hls_util::{
    assert_ffmpeg_decodes, check_rules, check_rules_with, ffprobe, parse, wait_for_playlist,
};
use onair::codec::{aac, h264};
use onair::hls::script;
use onair::hls::segmenter::{Event, Segmenter, SegmenterConfig};
use onair::media::{AacConfig, H264Config, Payload, TrackConfig, Unit};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn ffmpeg(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error"])
        .args(args)
        .output()
        .expect("ffmpeg is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A real stream: its config and its units in order (NAL units and
/// whether it is a keyframe, for video).
type Video = (Arc<TrackConfig>, Vec<(Vec<Bytes>, bool)>);
type Audio = (Arc<TrackConfig>, Vec<Bytes>);

/// 3 s of real H.264 at `size`, 1 s GOP: its config and access units.
fn video(size: &str) -> Video {
    let annexb = ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc2=size={size}:rate=30"),
        "-t",
        "3",
        "-c:v",
        "libx264",
        "-profile:v",
        "baseline",
        "-preset",
        "ultrafast",
        "-g",
        "30",
        "-bf",
        "0",
        "-x264-params",
        "aud=1",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "h264",
        "pipe:1",
    ]);
    let mut config = None;
    let units: Vec<(Vec<Bytes>, bool)> = onair_loadtest::whip::access_units(&annexb)
        .into_iter()
        .map(|au| {
            let nalus = h264::split_annexb(&au).unwrap();
            let sps = nalus.iter().find(|n| h264::nal_type(n) == Some(7));
            let pps = nalus.iter().find(|n| h264::nal_type(n) == Some(8));
            if let (Some(sps), Some(pps), None) = (sps, pps, &config) {
                let s = h264::parse_sps(sps).unwrap();
                config = Some(Arc::new(TrackConfig::H264(H264Config {
                    sps: sps.clone(),
                    pps: pps.clone(),
                    width: s.width,
                    height: s.height,
                    profile_idc: s.profile_idc,
                    constraint_flags: s.constraint_flags,
                    level_idc: s.level_idc,
                })));
            }
            let key = h264::is_keyframe(&nalus);
            (nalus, key)
        })
        .collect();
    (config.expect("an SPS"), units)
}

/// 2 s of real AAC-LC at `rate`: its config and raw frames.
fn audio(rate: u32) -> Audio {
    let adts = ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:sample_rate={rate}"),
        "-t",
        "2",
        "-c:a",
        "aac",
        "-ac",
        "2",
        "-f",
        "adts",
        "pipe:1",
    ]);
    let mut frames = Vec::new();
    let mut at = 0;
    let mut header = None;
    while at < adts.len() {
        let h = aac::parse_adts(&adts[at..]).unwrap();
        frames.push(Bytes::copy_from_slice(
            &adts[at + h.header_length..at + h.frame_length],
        ));
        at += h.frame_length;
        header.get_or_insert(h);
    }
    let h = header.unwrap();
    let asc = [
        (h.object_type << 3) | (h.sampling_index >> 1),
        ((h.sampling_index & 1) << 7) | (h.channel_config << 3),
    ];
    let config = Arc::new(TrackConfig::Aac(AacConfig {
        asc: Bytes::copy_from_slice(&asc),
        object_type: h.object_type,
        sample_rate: h.sample_rate,
        channels: h.channel_config,
    }));
    (config, frames)
}

/// The real media a script's placeholders are swapped for: two video and
/// two audio configs, each a stream played in order from its start.
struct Real {
    video: [Video; 2],
    audio: [Audio; 2],
    next: [usize; 4],
}

impl Real {
    /// `u` with real payload and config; its kind, times and config choice
    /// (the script's second config maps to the second stream) kept.
    fn swap(&mut self, u: &Unit) -> Arc<Unit> {
        let (config, payload, keyframe) = match &*u.config {
            TrackConfig::H264(c) => {
                let which = usize::from(c.width != 1280);
                let (config, units) = &self.video[which];
                let (nalus, key) = &units[self.next[which] % units.len()];
                self.next[which] += 1;
                (config.clone(), Payload::H264(nalus.clone()), *key)
            }
            TrackConfig::Aac(c) => {
                let which = usize::from(c.sample_rate != 48_000);
                let (config, frames) = &self.audio[which];
                let f = frames[self.next[2 + which] % frames.len()].clone();
                self.next[2 + which] += 1;
                (config.clone(), Payload::Aac(f), true)
            }
            TrackConfig::Opus(_) => unreachable!("scripts make no Opus"),
        };
        Arc::new(Unit {
            flv_body: Default::default(),
            config,
            pts: u.pts,
            dts: u.dts,
            keyframe,
            payload,
        })
    }
}

/// Writes segmenter output as the recorder lays it out: init segments,
/// whole segments and a VOD playlist. Returns the playlist's path.
fn write_vod(dir: &Path, events: &[Event], target_duration: u32) -> std::path::PathBuf {
    let mut playlist = format!(
        "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:{target_duration}\n\
         #EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:0\n"
    );
    let mut segments: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut open: Option<(u64, u32, bool)> = None;
    let mut map = None;
    let mut first = true;
    for e in events {
        match e {
            Event::Init(i) => {
                std::fs::write(dir.join(format!("init{}.mp4", i.id)), &i.bytes).unwrap()
            }
            Event::SegmentStart {
                msn,
                init_id,
                discontinuity,
                ..
            } => open = Some((*msn, *init_id, *discontinuity && !first)),
            Event::Part(p) => segments
                .entry(p.msn)
                .or_default()
                .extend_from_slice(&p.bytes),
            Event::SegmentEnd { msn, duration } => {
                let (m, init_id, disc) = open.take().unwrap();
                assert_eq!(m, *msn);
                first = false;
                let Some(bytes) = segments.remove(msn) else {
                    continue;
                };
                std::fs::write(dir.join(format!("s{msn}.m4s")), bytes).unwrap();
                if disc {
                    playlist.push_str("#EXT-X-DISCONTINUITY\n");
                }
                if map != Some(init_id) {
                    let _ = writeln!(playlist, "#EXT-X-MAP:URI=\"init{init_id}.mp4\"");
                    map = Some(init_id);
                }
                let _ = writeln!(playlist, "#EXTINF:{duration:.5},\ns{msn}.m4s");
            }
        }
    }
    playlist.push_str("#EXT-X-ENDLIST\n");
    let path = dir.join("index.m3u8");
    std::fs::write(&path, playlist).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_adversarial_case_decodes_with_ffmpeg() {
    let mut real = Real {
        video: [video("640x360"), video("320x180")],
        audio: [audio(48_000), audio(44_100)],
        next: [0; 4],
    };
    for case in script::CASES {
        real.next = [0; 4];
        let cfg = SegmenterConfig::new(200, 2000);
        let mut seg = Segmenter::new(cfg, 0, 0, false);
        let mut events = Vec::new();
        for u in script::decode(&script::encode(&(case.steps)())) {
            events.extend(seg.push(real.swap(&u)));
        }
        events.extend(seg.finish());
        let summary = script::check_events(cfg, &events).unwrap();
        if summary.segments == 0 {
            // Real frames are smaller than the script's: this case's few
            // units never leave the probe.
            println!("{}: nothing to play ({summary:?})", case.name);
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = write_vod(dir.path(), &events, cfg.target_duration);
        let text = std::fs::read_to_string(&path).unwrap();
        check_rules(&parse(&text));
        let url = path.to_str().unwrap();
        let (streams, duration) = ffprobe(url).await;
        assert!(
            streams.iter().any(|s| s.1 == "h264" || s.1 == "aac"),
            "{}: {streams:?}",
            case.name
        );
        assert_ffmpeg_decodes(url, None, None).await;
        println!(
            "{}: {} segments, {} parts, {} discontinuities, ffprobe {:?} s, decoded",
            case.name, summary.segments, summary.parts, summary.discontinuities, duration
        );
    }
}

/// RTMP milliseconds for frame `i` of the end-to-end publisher: 3 s
/// steady, 2 s stalled, 2 s a second behind, a jump an hour ahead, 2 s
/// flapping ±10 s on every frame, then steady again.
fn hostile_clock(i: u64) -> u32 {
    let steady = |i: u64| i * 1000 / 30;
    let ms = match i {
        0..90 => steady(i),
        90..150 => steady(90),
        150..210 => steady(i) - 1000,
        210..240 => steady(i) + 3_600_000,
        240..300 if i % 2 == 0 => steady(i) + 3_600_000 + 10_000,
        240..300 => steady(i) + 3_600_000 - 10_000,
        _ => steady(i) + 3_600_000,
    };
    ms as u32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_with_a_hostile_clock_is_still_recorded_playably() {
    let srv = TestServer::start().await;
    let frames = onair_loadtest::pattern::encode(&Default::default()).unwrap();
    let url = srv.rtmp_url(&srv.key);
    let publisher = tokio::spawn(async move {
        onair_loadtest::rtmp::publish_timed(
            &url,
            &frames,
            30,
            Duration::from_secs(13),
            hostile_clock,
        )
        .await
    });
    wait_for_playlist(srv.http, "demo").await;
    // The live playlist keeps the rules while the clock misbehaves.
    let mut polls = 0;
    while !publisher.is_finished() {
        let r = common::get(srv.http, "/hls/demo/index.m3u8").await;
        if r.status == 200 {
            // The frame after a stall lasts up to a second (see the
            // segmenter's table): its part does too.
            check_rules_with(&parse(&r.text()), Some(1.0));
            polls += 1;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let sent = publisher.await.unwrap().unwrap();
    assert!(polls >= 20, "{polls} playlist polls");
    let b = common::get(srv.http, "/api/channels/demo/broadcasts")
        .await
        .json();
    let id = common::json_id(&b["items"][0]["id"]);
    let start = std::time::Instant::now();
    loop {
        let b = common::get(srv.http, "/api/channels/demo/broadcasts")
            .await
            .json();
        if b["items"][0]["ended_at"].is_i64() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "broadcast never ended"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = common::get(srv.http, &format!("/vod/{id}/index.m3u8")).await;
    let p = parse(&r.text());
    check_rules_with(&p, Some(1.0));
    assert!(p.endlist);
    let url = format!("http://{}/vod/{id}/index.m3u8", srv.http);
    let (streams, duration) = ffprobe(&url).await;
    assert!(streams.iter().any(|s| s.1 == "h264"), "{streams:?}");
    let duration = duration.unwrap_or(0.0);
    println!(
        "hostile RTMP clock: {} frames sent, recording {duration:.2} s in {} segments",
        sent.frames,
        p.segments.len()
    );
    // Stalled and clamped frames take a tick each; the rest keep their
    // 33 ms: at least the 8 s of well-timed frames are there.
    assert!(duration > 8.0, "{duration}");
    assert_ffmpeg_decodes(&url, None, None).await;
    srv.stop().await;
}
