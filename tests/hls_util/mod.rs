//! Shared by the `hls_*` tests: a small LL-HLS media playlist parser and a
//! checker for the RFC 8216bis rules the issue lists, plus ffprobe.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct Part {
    pub duration: f64,
    pub uri: String,
    pub independent: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Segment {
    pub msn: u64,
    pub duration: Option<f64>,
    pub uri: Option<String>,
    pub parts: Vec<Part>,
    pub discontinuity: bool,
    pub map: Option<String>,
    pub pdt: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Playlist {
    pub version: Option<u32>,
    pub target_duration: Option<u32>,
    pub part_target: Option<f64>,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub server_control: HashMap<String, String>,
    pub playlist_type: Option<String>,
    pub endlist: bool,
    pub preload_hint: Option<String>,
    pub segments: Vec<Segment>,
}

/// `KEY=VALUE,KEY="V,V"` attribute lists (RFC 8216bis 4.2).
pub fn attrs(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let Some((k, r)) = rest.split_once('=') else {
            break;
        };
        let (v, r) = if let Some(r) = r.strip_prefix('"') {
            let end = r.find('"').expect("closing quote");
            (&r[..end], r[end + 1..].trim_start_matches(','))
        } else {
            match r.split_once(',') {
                Some((v, r)) => (v, r),
                None => (r, ""),
            }
        };
        out.insert(k.trim().to_string(), v.to_string());
        rest = r;
    }
    out
}

pub fn parse(text: &str) -> Playlist {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("#EXTM3U"), "first line: {text}");
    let mut p = Playlist::default();
    let mut cur = Segment::default();
    let mut msn_set = false;
    let mut map = None;
    for line in lines {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if !msn_set
            && !line.starts_with("#EXT-X-MEDIA-SEQUENCE")
            && (line.starts_with("#EXTINF") || line.starts_with("#EXT-X-PART:"))
        {
            msn_set = true;
            cur.msn = p.media_sequence;
        }
        if let Some(v) = line.strip_prefix("#EXT-X-VERSION:") {
            p.version = v.parse().ok();
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            p.target_duration = Some(v.parse().expect("integer TARGETDURATION"));
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART-INF:") {
            p.part_target = attrs(v)
                .get("PART-TARGET")
                .map(|t| t.parse().expect("PART-TARGET"));
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            p.media_sequence = v.parse().expect("MEDIA-SEQUENCE");
            cur.msn = p.media_sequence;
            msn_set = true;
        } else if let Some(v) = line.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
            p.discontinuity_sequence = v.parse().expect("DISCONTINUITY-SEQUENCE");
        } else if let Some(v) = line.strip_prefix("#EXT-X-SERVER-CONTROL:") {
            p.server_control = attrs(v);
        } else if let Some(v) = line.strip_prefix("#EXT-X-PLAYLIST-TYPE:") {
            p.playlist_type = Some(v.to_string());
        } else if line == "#EXT-X-ENDLIST" {
            p.endlist = true;
        } else if line == "#EXT-X-DISCONTINUITY" {
            cur.discontinuity = true;
        } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:") {
            map = attrs(v).get("URI").cloned();
        } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            cur.pdt = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART:") {
            let a = attrs(v);
            cur.parts.push(Part {
                duration: a["DURATION"].parse().expect("part DURATION"),
                uri: a["URI"].clone(),
                independent: a.get("INDEPENDENT").is_some_and(|v| v == "YES"),
            });
        } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            p.preload_hint = attrs(v).get("URI").cloned();
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            cur.duration = Some(
                v.trim_end_matches(',')
                    .split(',')
                    .next()
                    .unwrap()
                    .parse()
                    .expect("EXTINF"),
            );
        } else if !line.starts_with('#') {
            cur.uri = Some(line.to_string());
            cur.map = map.clone();
            let next = cur.msn + 1;
            p.segments.push(std::mem::take(&mut cur));
            cur.msn = next;
        }
    }
    if !cur.parts.is_empty() {
        cur.map = map.clone();
        p.segments.push(cur);
    }
    p
}

/// The RFC 8216bis rules of the issue that one playlist can show.
pub fn check_rules(p: &Playlist) {
    check_rules_with(p, None)
}

/// [`check_rules`], with parts allowed to last up to `long_frame` seconds:
/// a part never splits a frame, so a frame longer than PART-TARGET (a
/// publisher under 5 fps, or resuming after a stall) makes a longer part.
pub fn check_rules_with(p: &Playlist, long_frame: Option<f64>) {
    let td = p.target_duration.expect("EXT-X-TARGETDURATION") as f64;
    for s in &p.segments {
        if let Some(d) = s.duration {
            // 4.4.3.1: the EXTINF duration, rounded to the nearest integer,
            // is at most the target duration.
            assert!(
                d.round() <= td,
                "segment {} lasts {d}: rounds above TARGETDURATION {td}",
                s.msn
            );
            assert!(s.map.is_some(), "segment {} without EXT-X-MAP", s.msn);
        }
        if let Some(pt) = p.part_target {
            let pt = long_frame.map_or(pt, |f| f.max(pt));
            for part in &s.parts {
                assert!(
                    part.duration <= pt + 1e-6,
                    "part {} lasts {} > PART-TARGET {pt}",
                    part.uri,
                    part.duration
                );
            }
        }
    }
    for w in p.segments.windows(2) {
        assert_eq!(w[1].msn, w[0].msn + 1);
    }
    if let Some(hb) = p.server_control.get("HOLD-BACK") {
        let hb: f64 = hb.parse().unwrap();
        assert!(hb >= 3.0 * td, "HOLD-BACK {hb} < 3 x TARGETDURATION");
    }
    if let Some(pt) = p.part_target {
        let phb: f64 = p
            .server_control
            .get("PART-HOLD-BACK")
            .expect("PART-HOLD-BACK")
            .parse()
            .unwrap();
        assert!(
            phb >= 2.0 * pt,
            "PART-HOLD-BACK {phb} < 2 x PART-TARGET {pt}"
        );
    }
}

/// ffprobe's view of a URL: `(codec_type, codec_name, width, height)` per
/// stream, and the format duration.
pub async fn ffprobe(url: &str) -> (Vec<(String, String, u64, u64)>, Option<f64>) {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_type,codec_name,width,height:format=duration",
                "-of",
                "json",
                url,
            ])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ffprobe finished in time")
    .expect("ffprobe is installed");
    assert!(
        out.status.success(),
        "ffprobe {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe JSON");
    let streams = v["streams"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            (
                s["codec_type"].as_str().unwrap_or("").to_string(),
                s["codec_name"].as_str().unwrap_or("").to_string(),
                s["width"].as_u64().unwrap_or(0),
                s["height"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let duration = v["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok());
    (streams, duration)
}

/// Asserts that ffmpeg decodes `url` (from `-ss seek`, for `-t secs`
/// when given) without an error, within a minute.
pub async fn assert_ffmpeg_decodes(url: &str, seek: Option<&str>, secs: Option<&str>) {
    let mut args = vec!["-v", "error"];
    if let Some(s) = seek {
        args.extend(["-ss", s]);
    }
    args.extend(["-i", url]);
    if let Some(t) = secs {
        args.extend(["-t", t]);
    }
    args.extend(["-f", "null", "-"]);
    let out = tokio::process::Command::new("ffmpeg")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .expect("ffmpeg ends")
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A playlist fetched from another origin, as a web player does: asserts
/// 200, the HLS content type and CORS open to any origin.
pub async fn cross_origin_playlist(addr: SocketAddr, path: &str) -> crate::common::HttpResponse {
    let headers = [("Origin", "http://elsewhere.example")];
    let r = crate::common::http(addr, "GET", path, &headers, b"").await;
    assert_eq!(r.status, 200, "{path}");
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    r
}

/// Polls until the live playlist answers 200.
pub async fn wait_for_playlist(addr: SocketAddr, channel: &str) -> String {
    let start = std::time::Instant::now();
    loop {
        let r =
            crate::common::http(addr, "GET", &format!("/hls/{channel}/index.m3u8"), &[], b"").await;
        if r.status == 200 {
            return r.text();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no live playlist for {channel}: {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Seconds of media the live playlist holds (complete segments and the
/// parts of the open one), from msn 0.
pub fn live_media_secs(text: &str) -> f64 {
    let p = parse(text);
    assert_eq!(
        p.media_sequence, 0,
        "the whole broadcast is still in the window"
    );
    p.segments
        .iter()
        .map(|s| {
            s.duration
                .unwrap_or_else(|| s.parts.iter().map(|p| p.duration).sum())
        })
        .sum()
}

/// Lets `channel` (already publishing on the child `server`) run for
/// 5.3 s, then SIGKILLs the server; returns the seconds of media viewers
/// had just before the crash, asserting it is more than 5.
pub async fn kill_9_mid_broadcast(
    server: &mut tokio::process::Child,
    addr: SocketAddr,
    channel: &str,
) -> f64 {
    wait_for_playlist(addr, channel).await;
    tokio::time::sleep(Duration::from_millis(5300)).await;
    let path = format!("/hls/{channel}/index.m3u8");
    let before = crate::common::get(addr, &path).await.text();
    let had = live_media_secs(&before);
    server.start_kill().unwrap(); // SIGKILL
    server.wait().await.unwrap();
    eprintln!("killed after {had:.3} s of media");
    assert!(had > 5.0, "{before}");
    had
}

/// Restarts `srv` after `kill_9_mid_broadcast` and asserts that the
/// channel's broadcast is ended, kept within a second of the `had` seconds
/// viewers saw, and its recording is a closed VOD playlist (H.264 + AAC)
/// that ffmpeg decodes whole; the server logged why.
pub async fn restart_finalizes_the_broadcast(
    srv: &mut crate::common::child::ChildServer,
    channel: &str,
    had: f64,
) {
    srv.restart("second.log").await;
    let addr = srv.http;
    let r = crate::common::get(addr, &format!("/api/channels/{channel}/broadcasts")).await;
    assert_eq!(r.status, 200);
    let b = r.json();
    let item = &b["items"][0];
    eprintln!("after restart: {item}");
    assert!(item["ended_at"].is_i64(), "finalized: {b}");
    let id = crate::common::json_id(&item["id"]);
    let kept = item["duration_ms"].as_i64().unwrap() as f64 / 1000.0;
    assert!(
        kept >= had - 1.0,
        "kept {kept:.3} s of {had:.3} s: lost more than a second"
    );
    assert!(kept <= had + 1.0, "kept {kept:.3} s of {had:.3} s?");
    assert_eq!(
        item["ended_at"].as_i64().unwrap() - item["started_at"].as_i64().unwrap(),
        item["duration_ms"].as_i64().unwrap()
    );

    let r = crate::common::get(addr, &format!("/vod/{id}/index.m3u8")).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    let p = parse(&text);
    check_rules(&p);
    assert_eq!(p.playlist_type.as_deref(), Some("VOD"), "{text}");
    assert!(p.endlist, "{text}");
    let url = format!("http://{addr}/vod/{id}/index.m3u8");
    let (streams, dur) = ffprobe(&url).await;
    assert!(
        streams.iter().any(|s| s.1 == "h264") && streams.iter().any(|s| s.1 == "aac"),
        "{streams:?}"
    );
    let dur = dur.unwrap();
    assert!((dur - kept).abs() < 0.5, "ffprobe {dur} vs row {kept}");
    // The whole recording decodes.
    assert_ffmpeg_decodes(&url, None, None).await;
    let log = std::fs::read_to_string(srv.dir.path().join("second.log")).unwrap();
    assert!(
        log.contains("finalized a broadcast left open by a crash"),
        "{log}"
    );
}
