//! A disk that fills up: the recording stops (error log, `recording_stopped`
//! event, counter), what was recorded stays a playable VOD, and live
//! viewing goes on. The data folder is a real 4 MiB tmpfs (needs root to
//! mount; the test says so and passes vacuously where it cannot mount).

mod common;
mod hls_util;

use common::{ffmpeg_publish, http, TestServer};
use hls_util::{check_rules, parse, wait_for_playlist};
use onair::hls::recorder::RECORDINGS_FAILED;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_stops_the_recording_not_the_live_stream() {
    let Some(fs) = Tmpfs::mount("4m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
        return;
    };
    let data = fs.0.path().to_path_buf();
    let srv = TestServer::start_with(|c| c.data_dir = data.clone()).await;
    let _ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 40);
    wait_for_playlist(srv.http, "demo").await;
    let start = Instant::now();
    while RECORDINGS_FAILED.load(Ordering::Relaxed) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the recording never hit the full disk"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("recording stopped after {:?}", start.elapsed());
    // Live goes on: new segments keep coming, blocking reloads work.
    let p = parse(
        &http(srv.http, "GET", "/hls/demo/index.m3u8", &[], b"")
            .await
            .text(),
    );
    let msn = p.segments.last().unwrap().msn;
    let r = http(
        srv.http,
        "GET",
        &format!("/hls/demo/index.m3u8?_HLS_msn={}", msn + 2),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let after = parse(&r.text());
    check_rules(&after);
    assert!(after.segments.last().unwrap().msn >= msn + 2);
    // The row and the playlist: what was recorded stays playable.
    let b = http(srv.http, "GET", "/api/channels/demo/broadcasts", &[], b"")
        .await
        .json();
    let id = b["items"][0]["id"].as_i64().unwrap();
    srv.stop().await;
    let text = std::fs::read_to_string(
        data.join("recordings")
            .join(id.to_string())
            .join("index.m3u8"),
    )
    .unwrap();
    let p = parse(&text);
    assert!(p.endlist, "closed: {text}");
    assert!(!p.segments.is_empty(), "{text}");
    for s in &p.segments {
        assert!(data
            .join("recordings")
            .join(id.to_string())
            .join(s.uri.as_ref().unwrap())
            .exists());
    }
    drop(fs);
}
