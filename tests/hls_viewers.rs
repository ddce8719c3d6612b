//! HLS viewers are estimated from playlist fetches (client address + user
//! agent within 10 s) and counted with WebRTC viewers.

mod common;

use common::{ffmpeg_publish, http, wait_for_live, TestServer};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_viewers_are_estimated_and_counted() {
    let srv = TestServer::start().await;
    let _ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 12);
    wait_for_live(srv.http, &srv.channel).await;
    let start = Instant::now();
    loop {
        let r = http(
            srv.http,
            "GET",
            "/hls/demo/index.m3u8",
            &[("User-Agent", "phone-a")],
            b"",
        )
        .await;
        if r.status == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "playlist never appeared: {}",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for ua in ["phone-a", "phone-b", "phone-b"] {
        assert_eq!(
            http(
                srv.http,
                "GET",
                "/hls/demo/index.m3u8",
                &[("User-Agent", ua)],
                b""
            )
            .await
            .status,
            200
        );
    }
    let metrics = http(srv.http, "GET", "/metrics", &[], b"").await.text();
    assert!(
        metrics
            .lines()
            .any(|l| l == "onair_viewers{channel=\"demo\",protocol=\"hls\"} 2"),
        "two distinct HLS clients: {}",
        metrics
            .lines()
            .filter(|l| l.contains("onair_viewers"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let ch = http(srv.http, "GET", "/api/channels/demo", &[], b"")
        .await
        .json();
    assert_eq!(ch["viewers"], 2, "{ch}");
    srv.stop().await;
}
