//! RTMP (ffmpeg) -> LL-HLS -> hls.js in headless Chromium (lowLatencyMode,
//! driven by playwright-core: `tests/e2e/hls_watch.mjs`). Asserts playback
//! and the latency hls.js itself reports (`hls.latency`): at most 1.5 s.
//!
//! Needs node/npm and the Debian `chromium` package (or `CHROMIUM=`).
//! `tests/e2e/node_modules` is installed with `npm ci` when hls.js or
//! playwright-core is missing.

mod common;

use common::node::run_script_with_env;
use common::{ffmpeg_publish, TestServer};
use std::time::Duration;

/// One Chromium at a time: two browsers decoding 720p next to ffmpeg
/// encoders and a debug server overload 2 cores, and a stalled player
/// raises its own target latency.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs hls_watch.mjs on `url` for `secs` and returns its JSON report.
async fn watch(url: &str, secs: u32, hls_config: &str) -> serde_json::Value {
    let secs_s = secs.to_string();
    run_script_with_env(
        "hls_watch.mjs",
        &[url, &secs_s],
        &[("HLS_CONFIG", hls_config)],
        Duration::from_secs(u64::from(secs) + 60),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hlsjs_plays_ll_hls_within_one_and_a_half_seconds() {
    let _one = ONE_BROWSER.lock().await;
    let srv = TestServer::start().await;
    let _ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 40);
    common::wait_for_live(srv.http, &srv.channel).await;
    let r = watch(
        &format!("http://{}/hls/{}/index.m3u8", srv.http, srv.channel),
        20,
        "{}",
    )
    .await;
    eprintln!("hls.js report: {r}");
    assert!(r["fatalErrors"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(r["lowLatencyMode"], true);
    assert_eq!(r["canBlockReload"], true, "{r}");
    assert!(r["framesDecoded"].as_f64().unwrap() > 200.0, "{r}");
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(1280), Some(720))
    );
    let median = r["latencyMedian"].as_f64().expect("latency measured");
    let max = r["latencyMax"].as_f64().unwrap();
    eprintln!(
        "hls.js latency: median {median:.3} s, max {max:.3} s, PDT-based {}",
        r["pdtLatencyMedian"]
    );
    assert!(median <= 1.5, "hls.js latency {median} s > 1.5 s: {r}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hlsjs_plays_a_recording() {
    let _one = ONE_BROWSER.lock().await;
    let srv = TestServer::start().await;
    let mut ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 6);
    ff.wait().await.unwrap();
    let id = common::finished_broadcast(srv.http, "demo").await;
    let r = watch(&format!("http://{}/vod/{id}/index.m3u8", srv.http), 4, "{}").await;
    eprintln!("hls.js VOD report: {r}");
    assert!(r["fatalErrors"].as_array().unwrap().is_empty(), "{r}");
    assert!(r["framesDecoded"].as_f64().unwrap() > 60.0, "{r}");
    assert!(r["currentTime"].as_f64().unwrap() > 2.0, "{r}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_ignoring_ll_tags_stays_within_three_segments() {
    let _one = ONE_BROWSER.lock().await;
    let srv = TestServer::start().await;
    let _ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 40);
    common::wait_for_live(srv.http, &srv.channel).await;
    let url = format!("http://{}/hls/{}/index.m3u8", srv.http, srv.channel);
    let r = watch(&url, 20, r#"{"lowLatencyMode":false}"#).await;
    eprintln!("hls.js (LL off) report: {r}");
    assert!(r["fatalErrors"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(r["lowLatencyMode"], false);
    assert!(r["framesDecoded"].as_f64().unwrap() > 200.0, "{r}");
    let median = r["latencyMedian"].as_f64().expect("latency measured");
    // Segments are 2 s (TARGETDURATION 2, HOLD-BACK 6): three segments.
    let segment = 2.0;
    eprintln!("hls.js latency without LL: median {median:.3} s");
    assert!(
        median <= 3.0 * segment + 0.25,
        "{median} s behind: more than 3 segments: {r}"
    );
    srv.stop().await;
}
