//! Viewers that vanish without a DELETE (a phone losing its network) are
//! reaped, so they stop costing bandwidth and memory; viewers that DELETE
//! leave at once.

mod common;

use common::webrtc_client::{watch, ViewerOptions};
use common::{http, TestServer};
use std::time::{Duration, Instant};

async fn webrtc_viewers(srv: &TestServer) -> usize {
    let m = http(srv.http, "GET", "/metrics", &[], b"").await.text();
    m.lines()
        .find(|l| l.starts_with("onair_viewers{channel=\"demo\",protocol=\"webrtc\"}"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_viewer_is_reaped_and_a_polite_one_leaves_at_once() {
    let srv = TestServer::start().await;
    let polite = watch(
        srv.http,
        "demo",
        Duration::from_millis(800),
        ViewerOptions::default(),
    )
    .await
    .unwrap();
    assert!(polite.connected_after.is_some());
    assert_eq!(
        webrtc_viewers(&srv).await,
        0,
        "DELETE removes the viewer at once"
    );

    let opts = ViewerOptions {
        vanish: true,
        ..Default::default()
    };
    let gone = watch(srv.http, "demo", Duration::from_millis(800), opts)
        .await
        .unwrap();
    assert!(gone.connected_after.is_some());
    assert_eq!(webrtc_viewers(&srv).await, 1);
    let start = Instant::now();
    while webrtc_viewers(&srv).await > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "a silent viewer is reaped within ~30 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    srv.stop().await;
}
