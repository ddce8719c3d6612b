//! Hostile WebRTC clients: each attack runs while a victim channel is
//! watched, and passes only if the victim kept playing (tests/common/victim.rs).

mod common;

use bytes::Bytes;
use common::child::{create_channel, free_addr, serve_with, wait_healthy};
use common::media::{clip, media};
use common::victim::Victim;
use common::{get, metric_or_zero, TestServer};
use onair_loadtest::whip::{publish, RawVideo};
use std::time::Duration;

/// The control: with no attack the victim plays, so a failure below is the
/// attack's doing, not the harness's.
#[tokio::test(flavor = "multi_thread")]
async fn the_victim_plays_when_nobody_attacks() {
    let srv = TestServer::start().await;
    let victim = Victim::start(&srv, 5).await;
    victim.finish().await.assert_kept_playing("no attack");
    srv.stop().await;
}

/// A WHIP publisher on its own channel (anyone can register and get a key)
/// sending `frames` of hand-made video RTP for `secs`.
async fn attack(
    srv: &TestServer,
    channel: &str,
    raw: RawVideo,
    fps: u32,
    secs: u64,
) -> onair_loadtest::whip::Published {
    let key = srv.db.create_channel(channel).await.unwrap().stream_key;
    let mut opts = clip(&key, &media(), secs);
    opts.raw = Some(raw);
    opts.fps = fps;
    let p = publish(srv.http, opts).await.expect("attacker ran");
    assert_eq!(
        p.status, 201,
        "the attacker is a legitimate publisher: {}",
        p.error
    );
    p
}

fn b(v: &[u8]) -> Bytes {
    Bytes::copy_from_slice(v)
}

fn rss(metrics: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .and_then(|v| v.parse().ok())
        .expect("RSS in /metrics")
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_h264_rtp_from_a_publisher_hurts_nobody() {
    let srv = TestServer::start().await;
    let victim = Victim::start(&srv, 10).await;
    // A viewer of the attacker's own channel, so its packets are forwarded
    // as well as depacketized.
    let (http, secs) = (srv.http, 8);
    let watcher = tokio::spawn(async move {
        onair_loadtest::whep::watch(
            http,
            "mallory",
            Duration::from_secs(secs),
            onair_loadtest::whep::ViewerOptions {
                record: false,
                ..Default::default()
            },
        )
        .await
    });
    let frames = vec![
        // The STAP-A that used to stop every viewer.
        vec![(b(&[0x18, 0, 0, 0]), true)],
        // A STAP-A whose unit length runs past the end.
        vec![(b(&[0x78, 0xff, 0xff, 0x65, 1]), true)],
        // FU-A continuations without a start, and a lone FU indicator.
        vec![(b(&[0x7c, 0x05, 1, 2]), false), (b(&[0x7c]), true)],
        // Interleaved-mode types, reserved types, the forbidden bit.
        vec![
            (b(&[0x1a, 0, 0]), false),
            (b(&[0x1f]), false),
            (b(&[0xe5, 1]), true),
        ],
        // An empty payload, and one too big for any datagram we read.
        vec![(Bytes::new(), false), (Bytes::from(vec![0x41; 9000]), true)],
    ];
    let raw = RawVideo {
        frames,
        ts_step: 3000,
    };
    let before = metric_or_zero(srv.http, "onair_ingest_dropped_total{reason=\"truncated\"}").await;
    attack(&srv, "mallory", raw, 60, secs).await;
    let after = metric_or_zero(srv.http, "onair_ingest_dropped_total{reason=\"truncated\"}").await;
    assert!(
        after > before,
        "the malformed STAP-As were seen and dropped"
    );
    let _ = watcher.await;
    victim
        .finish()
        .await
        .assert_kept_playing("malformed H.264 RTP (STAP-A 18 00 00 00 and others)");
    assert_eq!(get(srv.http, "/healthz").await.status, 200);
    assert_eq!(
        metric_or_zero(
            srv.http,
            "onair_isolated_panics_total{component=\"webrtc_peer\"}"
        )
        .await,
        0.0,
        "nothing had to be caught: the parser refused the input"
    );
    srv.stop().await;
}

/// Measured on the real binary, so the RSS is the server's alone.
#[tokio::test(flavor = "multi_thread")]
async fn endless_fu_a_fragments_do_not_grow_memory() {
    let dir = tempfile::tempdir().unwrap();
    let victim_key = create_channel(dir.path(), "victim");
    let key = create_channel(dir.path(), "mallory");
    let (http, rtmp) = (free_addr(), free_addr());
    let mut child = serve_with(dir.path(), http, rtmp, "log", &[]);
    wait_healthy(http).await;
    let victim = Victim::start_at(http, rtmp, "victim", &victim_key, 24).await;
    // A fresh server's memory grows for its first ~15 s of a live channel
    // (LL-HLS window, recorder, thumbnails), then about 0.3 MB/s: measure
    // after that, so the attack's share shows.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let rss_before = rss(&get(http, "/metrics").await.text());
    // An FU-A start, then middles that never end, all on one timestamp,
    // a new start every 2 s: at 100 frames of 40 packets a second,
    // 4.6 MB/s for 10 s.
    let mut start = vec![0x7c, 0x85];
    start.resize(1150, 0xab);
    let mut middle = vec![0x7c, 0x05];
    middle.resize(1150, 0xcd);
    let middles = vec![(Bytes::from(middle), false); 40];
    let mut first = middles.clone();
    first[0] = (Bytes::from(start), false);
    let mut frames = vec![first];
    frames.extend(std::iter::repeat_n(middles, 199));
    let mut opts = clip(&key, &media(), 10);
    opts.raw = Some(RawVideo { frames, ts_step: 0 });
    opts.fps = 100;
    let sent = publish(http, opts).await.expect("attacker ran");
    assert_eq!(sent.status, 201, "{}", sent.error);
    let rss_after = rss(&get(http, "/metrics").await.text());
    let grown = (rss_after - rss_before) / 1e6;
    println!(
        "endless FU-A: {:.1} MB sent, server RSS grew {grown:.1} MB meanwhile",
        sent.bytes as f64 / 1e6
    );
    assert!(
        sent.bytes > 40_000_000,
        "the attack sent {} bytes",
        sent.bytes
    );
    // Bounded by the reassembly cap plus the shared inbound queue, full
    // when the driver lags behind the flood (a busy machine), each
    // datagram a 1 150-byte copy with its allocation, and the baseline's
    // ~3 MB over the same time (twice that for slack). Unbounded, the
    // growth would follow the 45 MB sent.
    let bound =
        (onair::codec::rtp::MAX_ACCESS_UNIT + onair::sfu::DATAGRAM_QUEUE * 1300) as f64 / 1e6 + 6.0;
    assert!(
        grown < bound,
        "RSS grew {grown:.1} MB (bound {bound:.1}) while {:.1} MB of fragments arrived",
        sent.bytes as f64 / 1e6
    );
    assert!(
        metric_or_zero(
            http,
            "onair_ingest_dropped_total{reason=\"access_unit_too_large\"}"
        )
        .await
            >= 1.0
    );
    victim
        .finish()
        .await
        .assert_kept_playing("endless FU-A fragments (46 MB)");
    let _ = child.kill().await;
}

/// A publisher whose video never decodes (and who sends no audio) still
/// makes a broadcast, but it leaves no empty recording behind: the row says
/// not recorded and no VOD is offered.
#[tokio::test(flavor = "multi_thread")]
async fn a_publisher_that_never_sends_a_picture_leaves_no_empty_recording() {
    let srv = TestServer::start().await;
    let key = srv.db.create_channel("mallory").await.unwrap().stream_key;
    let opts = onair_loadtest::whip::PublishOptions {
        key,
        video: Vec::new(),
        fps: 30,
        audio: Vec::new(),
        duration: Duration::from_secs(4),
        stamp: false,
        raw: Some(RawVideo {
            frames: vec![
                vec![(b(&[0x18, 0, 0, 0]), true)],
                vec![(b(&[0x7c, 0x05, 1, 2]), false), (b(&[0x7c]), true)],
            ],
            ts_step: 3000,
        }),
        on_session: None,
    };
    let p = publish(srv.http, opts).await.expect("publisher ran");
    assert_eq!(p.status, 201, "{}", p.error);
    assert!(p.connected_after.is_some(), "the publisher connected");
    // Wait for every broadcast of the channel to end.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let page = srv.db.broadcasts("mallory", None, 50).await.unwrap();
        if page.iter().all(|r| r.ended_at.is_some()) {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "{page:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for r in &rows {
        assert!(
            !r.recorded,
            "broadcast {} has nothing in it but is listed as recorded: {r:?}",
            r.id
        );
    }
    let list = get(srv.http, "/api/channels/mallory/broadcasts")
        .await
        .text();
    assert!(!list.contains("index.m3u8"), "no VOD offered: {list}");
    println!("{} broadcast rows, none recorded", rows.len());
    srv.stop().await;
}
