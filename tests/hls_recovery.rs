//! Crash safety: the real binary is killed with SIGKILL during a broadcast;
//! the next start finalizes the broadcast (row ended, playlist closed with
//! EXT-X-ENDLIST) and loses at most the last second.

mod common;
mod hls_util;

use common::{ffmpeg_publish, get};
use hls_util::{assert_ffmpeg_decodes, check_rules, ffprobe, parse};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_onair");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(dir: &Path, http: SocketAddr, rtmp: SocketAddr, log: &str) -> Child {
    let log = std::fs::File::create(dir.join(log)).unwrap();
    Command::new(BIN)
        .arg("serve")
        .args(["--http", &http.to_string(), "--rtmp", &rtmp.to_string()])
        .args(["--webrtc-udp", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("onair binary")
}

async fn wait_healthy(addr: SocketAddr) {
    let start = Instant::now();
    loop {
        if let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await
        {
            if get(addr, "/healthz").await.status == 200 {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "server never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Seconds of media the live playlist holds (complete segments and the
/// parts of the open one), from msn 0.
fn live_media_secs(text: &str) -> f64 {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_broadcast_is_finalized_on_restart() {
    common::init_logs();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["channel", "create", "demo", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let http_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let rtmp_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();

    let mut server = serve(dir.path(), http_addr, rtmp_addr, "first.log");
    wait_healthy(http_addr).await;
    let mut ff = ffmpeg_publish(&format!("rtmp://{rtmp_addr}/live/{key}"), 60);
    hls_util::wait_for_playlist(http_addr, "demo").await;
    tokio::time::sleep(Duration::from_millis(5300)).await;
    // What viewers had just before the crash.
    let before = get(http_addr, "/hls/demo/index.m3u8").await.text();
    let had = live_media_secs(&before);
    server.start_kill().unwrap(); // SIGKILL
    server.wait().await.unwrap();
    let _ = ff.start_kill();
    let _ = ff.wait().await;
    eprintln!("killed after {had:.3} s of media");
    assert!(had > 5.0, "{before}");

    // Restart: the broadcast is finalized.
    let mut server = serve(dir.path(), http_addr, rtmp_addr, "second.log");
    wait_healthy(http_addr).await;
    let r = get(http_addr, "/api/channels/demo/broadcasts").await;
    assert_eq!(r.status, 200);
    let b = r.json();
    let item = &b["items"][0];
    eprintln!("after restart: {item}");
    assert!(!item["ended_at"].is_null(), "finalized: {b}");
    let id = item["id"].as_i64().unwrap();
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

    let r = get(http_addr, &format!("/vod/{id}/index.m3u8")).await;
    assert_eq!(r.status, 200);
    let text = r.text();
    let p = parse(&text);
    check_rules(&p);
    assert_eq!(p.playlist_type.as_deref(), Some("VOD"), "{text}");
    assert!(p.endlist, "{text}");
    let (streams, dur) = ffprobe(&format!("http://{http_addr}/vod/{id}/index.m3u8")).await;
    assert!(
        streams.iter().any(|s| s.1 == "h264") && streams.iter().any(|s| s.1 == "aac"),
        "{streams:?}"
    );
    let dur = dur.unwrap();
    assert!((dur - kept).abs() < 0.5, "ffprobe {dur} vs row {kept}");
    // The whole recording decodes.
    let url = format!("http://{http_addr}/vod/{id}/index.m3u8");
    assert_ffmpeg_decodes(&url, None, None).await;
    let log = std::fs::read_to_string(dir.path().join("second.log")).unwrap();
    assert!(
        log.contains("finalized a broadcast left open by a crash"),
        "{log}"
    );
    server.start_kill().unwrap();
    let _ = server.wait().await;
}

#[test]
fn cli_turns_a_channels_recording_off_and_on() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    assert!(run(&["channel", "create", "demo"]).status.success());
    let out = run(&["channel", "recording", "demo", "off"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "demo\trecording off\n"
    );
    assert!(run(&["channel", "recording", "demo", "on"])
        .status
        .success());
    assert!(!run(&["channel", "recording", "nobody", "off"])
        .status
        .success());
    assert!(!run(&["channel", "recording", "demo", "maybe"])
        .status
        .success());
}
