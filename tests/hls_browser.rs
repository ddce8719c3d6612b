//! RTMP (ffmpeg) -> LL-HLS -> hls.js in headless Chromium (lowLatencyMode,
//! driven by playwright-core: `tests/e2e/hls_watch.mjs`). Asserts playback
//! and the latency hls.js itself reports (`hls.latency`): at most 1.5 s.
//!
//! Needs node/npm and the Debian `chromium` package (or `CHROMIUM=`).
//! `tests/e2e/node_modules` is installed with `npm ci` when hls.js or
//! playwright-core is missing.

mod common;

use common::{ffmpeg_publish, TestServer};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// One Chromium at a time: two browsers decoding 720p next to ffmpeg
/// encoders and a debug server overload 2 cores, and a stalled player
/// raises its own target latency.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("e2e")
}

async fn ensure_node_modules(dir: &Path) {
    let nm = dir.join("node_modules");
    if nm.join("playwright-core/package.json").exists()
        && nm.join("hls.js/dist/hls.min.js").exists()
    {
        return;
    }
    let out = Command::new("npm")
        .arg("ci")
        .arg("--prefix")
        .arg(dir)
        .args(["--no-audit", "--no-fund"])
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), out)
        .await
        .expect("npm ci within 5 minutes")
        .expect("npm runs (apt-get install nodejs npm)");
    assert!(
        out.status.success(),
        "npm ci failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs hls_watch.mjs on `url` for `secs` and returns its JSON report.
async fn watch(url: &str, secs: u32, hls_config: &str) -> serde_json::Value {
    let dir = e2e_dir();
    ensure_node_modules(&dir).await;
    let node = Command::new("node")
        .arg(dir.join("hls_watch.mjs"))
        .arg(url)
        .arg(secs.to_string())
        .current_dir(&dir)
        .env("HLS_CONFIG", hls_config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node is installed");
    let out = tokio::time::timeout(
        Duration::from_secs(secs as u64 + 60),
        node.wait_with_output(),
    )
    .await
    .expect("hls_watch.mjs finished in time")
    .expect("hls_watch.mjs ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "hls_watch.mjs failed:\n{stdout}\n{stderr}"
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .expect("a JSON line");
    serde_json::from_str(line).expect("JSON")
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
    let start = std::time::Instant::now();
    let id = loop {
        let r = common::http(srv.http, "GET", "/api/channels/demo/broadcasts", &[], b"")
            .await
            .json();
        if let Some(item) = r["items"]
            .as_array()
            .and_then(|a| a.first())
            .filter(|i| !i["ended_at"].is_null())
        {
            break item["id"].as_i64().unwrap();
        }
        assert!(start.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
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
