//! LL-HLS and recordings for channels whose source is WHIP, not RTMP: the
//! same bar as the RTMP tests (hls_browser, hls_recovery, hls_recording).
//! The publisher is the load tool's real WebRTC (`rtc`) WHIP client; the
//! players are hls.js in headless Chromium (tests/e2e/hls_av_watch.mjs)
//! and ffprobe/ffmpeg.

mod common;
mod hls_util;

use common::child::ChildServer;
use common::media::{audio, clip, video};
use common::node::run_script;
use common::{http, TestServer};
use hls_util::{
    check_rules, ffprobe, kill_9_mid_broadcast, parse, restart_finalizes_the_broadcast,
    wait_for_playlist,
};
use onair_loadtest::whip::publish;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One test at a time: a debug-build WebRTC publisher, the server and
/// Chromium already fill 2 cores, and a player starved of CPU (or a
/// publisher that falls behind real time) measures the machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits until the channel's newest broadcast has ended; returns it.
async fn wait_ended(addr: SocketAddr, channel: &str) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let path = format!("/api/channels/{channel}/broadcasts");
        let r = http(addr, "GET", &path, &[], b"").await;
        let item = r.json()["items"][0].clone();
        if item["ended_at"].is_i64() {
            return item;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "broadcast never ended: {}",
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn watch(url: &str, secs: u32) -> serde_json::Value {
    let secs_s = secs.to_string();
    run_script(
        "hls_av_watch.mjs",
        &[url, &secs_s],
        Duration::from_secs(u64::from(secs) + 60),
    )
    .await
}

/// Both tracks reached hls.js and were decoded: frames of the WHIP
/// publisher's size, and audio bytes from the Opus -> AAC transcode.
fn assert_plays_av(r: &serde_json::Value, min_frames: f64) {
    // At most one media error, recovered the way players recover (seen
    // once in ~16 runs: hls.js `mediaSourceRequiresReset` at the start).
    assert!(r["fatalErrors"].as_array().unwrap().is_empty(), "{r}");
    if !r["recoveredErrors"].as_array().unwrap().is_empty() {
        eprintln!("hls.js recovered from a media error: {r}");
    }
    // One muxed SourceBuffer (a media playlist without CODECS) or two:
    // either way H.264 and AAC.
    let tracks = r["bufferTracks"].to_string();
    assert!(tracks.contains("avc1") && tracks.contains("mp4a"), "{r}");
    assert!(r["framesDecoded"].as_f64().unwrap() > min_frames, "{r}");
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(640), Some(360))
    );
    // 128 kbit/s AAC decodes to far more than this per second of PCM.
    assert!(r["audioDecodedBytes"].as_f64().unwrap() > 10_000.0, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hlsjs_plays_a_whip_channel_live_and_its_recording() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let publisher = tokio::spawn(publish(srv.http, clip(&srv.key, &(video(), audio()), 25)));
    wait_for_playlist(srv.http, &srv.channel).await;
    let live = format!("http://{}/hls/{}/index.m3u8", srv.http, srv.channel);
    let r = watch(&live, 12).await;
    eprintln!("hls.js live (WHIP): {r}");
    assert_eq!(r["lowLatencyMode"], true, "{r}");
    assert_eq!(r["canBlockReload"], true, "{r}");
    assert_eq!(r["live"], true, "{r}");
    assert_plays_av(&r, 150.0);
    let latency = r["latencyMedian"].as_f64().expect("latency measured");
    eprintln!("hls.js latency of a WHIP channel: {latency:.3} s");
    // hls_browser.rs holds RTMP to the 1.5 s target. Here a debug-build
    // WebRTC publisher (SRTP, Opus -> AAC) shares the 2 cores with the
    // server and Chromium: measured 1.0-1.5 s, so half a second of slack.
    assert!(latency <= 2.0, "LL-HLS latency {latency} s > 2 s: {r}");

    let published = publisher.await.unwrap().expect("publisher ran");
    assert_eq!(published.status, 201, "{}", published.error);
    let b = wait_ended(srv.http, &srv.channel).await;
    let id = common::json_id(&b["id"]);
    let r = watch(&format!("http://{}/vod/{id}/index.m3u8", srv.http), 5).await;
    eprintln!("hls.js VOD (WHIP): {r}");
    assert_eq!(r["live"], false, "{r}");
    assert_plays_av(&r, 60.0);
    assert!(r["currentTime"].as_f64().unwrap() > 2.0, "{r}");
    srv.stop().await;
}

/// A DJ: Opus only, no video m-line in the offer. The channel plays as
/// audio-only LL-HLS (AAC, audio/mp4 segments) and is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audio_only_whip_stream_plays_in_hls_and_is_recorded() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let publisher = tokio::spawn(publish(srv.http, clip(&srv.key, &(Vec::new(), audio()), 9)));
    wait_for_playlist(srv.http, &srv.channel).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = http(srv.http, "GET", "/hls/demo/index.m3u8", &[], b"")
        .await
        .text();
    let p = parse(&text);
    check_rules(&p);
    assert!(
        p.segments[0].parts[0].independent,
        "audio parts are independent: {text}"
    );
    let seg = p
        .segments
        .iter()
        .find_map(|s| s.uri.clone())
        .unwrap_or_else(|| panic!("a complete segment: {text}"));
    let r = http(srv.http, "GET", &format!("/hls/demo/{seg}"), &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("audio/mp4"));
    let (streams, _) = ffprobe(&format!("http://{}/hls/demo/index.m3u8", srv.http)).await;
    let kinds: Vec<(&str, &str)> = streams
        .iter()
        .map(|s| (s.0.as_str(), s.1.as_str()))
        .collect();
    assert_eq!(kinds, [("audio", "aac")], "{streams:?}");

    let published = publisher.await.unwrap().expect("publisher ran");
    assert_eq!(published.status, 201, "{}", published.error);
    assert_eq!(published.video_frames, 0);
    assert!(published.audio_frames > 300, "{published:?}");
    let b = wait_ended(srv.http, &srv.channel).await;
    eprintln!("audio-only WHIP recording: {b}");
    let id = common::json_id(&b["id"]);
    let kept = b["duration_ms"].as_f64().unwrap() / 1000.0;
    let vod = format!("http://{}/vod/{id}/index.m3u8", srv.http);
    let text = http(srv.http, "GET", &format!("/vod/{id}/index.m3u8"), &[], b"")
        .await
        .text();
    let p = parse(&text);
    check_rules(&p);
    assert!(p.endlist, "{text}");
    let (streams, dur) = ffprobe(&vod).await;
    assert_eq!(streams.len(), 1, "{streams:?}");
    assert_eq!(
        (streams[0].0.as_str(), streams[0].1.as_str()),
        ("audio", "aac")
    );
    let dur = dur.expect("duration");
    eprintln!("recorded {dur:.3} s (row: {kept:.3} s) of 9 s publishing");
    assert!(dur > 6.5, "{dur} s recorded");
    assert!((dur - kept).abs() < 0.5, "ffprobe {dur} vs row {kept}");
    srv.stop().await;
}

// ---- kill -9 during a WHIP broadcast: the real binary as a child ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_whip_broadcast_is_finalized_on_restart() {
    let _serial = ONE_AT_A_TIME.lock().await;
    common::init_logs();
    let mut srv = ChildServer::start("demo").await;
    let opts = clip(&srv.key, &(video(), audio()), 60);
    let publisher = tokio::spawn(publish(srv.http, opts));
    let had = kill_9_mid_broadcast(&mut srv.child, srv.http, "demo").await;
    publisher.abort();

    restart_finalizes_the_broadcast(&mut srv, "demo", had).await;
    srv.stop().await;
}
