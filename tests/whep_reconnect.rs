//! A viewer that joins while the channel is offline gets media when it goes
//! live, and keeps its session, with continuous sequence numbers and
//! timestamps, across a publisher reconnect.

mod common;

use common::webrtc_client::{access_units, watch, ViewerOptions};
use common::{ffmpeg_publish, TestServer};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewer_survives_publisher_reconnect() {
    let srv = TestServer::start().await;
    let url = srv.rtmp_url(&srv.key);
    let viewer = tokio::spawn({
        let http = srv.http;
        let channel = srv.channel.clone();
        async move {
            watch(
                http,
                &channel,
                Duration::from_secs(12),
                ViewerOptions::default(),
            )
            .await
        }
    });
    // Offline for a second, then two publishes with a gap between them.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut first = ffmpeg_publish(&url, 3);
    let _ = first.wait().await;
    // Long enough for the chat room's once-a-second live check to see it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut second = ffmpeg_publish(&url, 4);
    let got = viewer.await.expect("viewer task").expect("viewer ran");
    let _ = second.kill().await;

    assert!(
        got.chat
            .iter()
            .filter(|m| m.contains(r#""type":"live""#))
            .count()
            >= 2,
        "two live events: {:?}",
        got.chat
    );
    assert!(
        got.chat.iter().any(|m| m.contains(r#""type":"offline""#)),
        "an offline event: {:?}",
        got.chat
    );

    for (kind, packets) in [("video", &got.video), ("audio", &got.audio)] {
        assert!(packets.len() > 100, "{kind}: {} packets", packets.len());
        let ssrcs: std::collections::HashSet<u32> = packets.iter().map(|p| p.header.ssrc).collect();
        assert_eq!(ssrcs.len(), 1, "{kind}: one SSRC across publishers");
        for w in packets.windows(2) {
            let (a, b) = (&w[0].header, &w[1].header);
            assert_eq!(
                b.sequence_number,
                a.sequence_number.wrapping_add(1),
                "{kind}: sequence is continuous"
            );
            let dt = b.timestamp.wrapping_sub(a.timestamp);
            assert!(
                dt < 0x8000_0000,
                "{kind}: timestamp never goes backwards ({} -> {})",
                a.timestamp,
                b.timestamp
            );
        }
    }
    // Both publishes' pictures arrive: the reconnect gap shows as a jump of
    // about its wall-clock length in the RTP clock.
    let aus = access_units(&got.video);
    let max_gap = aus
        .windows(2)
        .map(|w| w[1].0.wrapping_sub(w[0].0))
        .max()
        .unwrap_or(0);
    assert!(
        max_gap > 90_000 / 2,
        "the reconnect shows as a gap in time, got {max_gap}"
    );
    assert!(aus.len() > 120, "frames from both publishes: {}", aus.len());
    srv.stop().await;
}
