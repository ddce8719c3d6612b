//! Fault isolation, proven with injected panics (`--fault-injection`, for
//! tests only): a panic while serving one WebRTC peer drops that peer
//! alone; a panic that kills the engine is reported by `/healthz` and the
//! engine restarts; an engine that keeps dying ends the process with an
//! error; SIGTERM stays prompt after a failure. A binary of its own: the
//! panic counters are process-wide.

mod common;

use bytes::Bytes;
use common::child::{free_addr, serve_with, wait_healthy};
use common::media::{clip, media};
use common::victim::Victim;
use common::{get, metric, metric_or_zero, TestServer};
use onair_loadtest::whip::{publish, RawVideo};
use std::time::{Duration, Instant};

fn b(v: &[u8]) -> Bytes {
    Bytes::copy_from_slice(v)
}

/// A WHIP publisher on its own channel sending one marked packet a frame.
async fn attack(
    srv: &TestServer,
    channel: &str,
    marker: &[u8],
    secs: u64,
) -> onair_loadtest::whip::Published {
    let key = srv.db.create_channel(channel).await.unwrap().stream_key;
    let mut opts = clip(&key, &media(), secs);
    opts.raw = Some(RawVideo {
        frames: vec![vec![(b(marker), true)]],
        ts_step: 3000,
    });
    publish(srv.http, opts).await.expect("attacker ran")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_in_one_peer_drops_only_that_peer() {
    let srv = TestServer::start_with(|c| c.fault_injection = true).await;
    let victim = Victim::start(&srv, 8).await;
    let series = "onair_isolated_panics_total{component=\"webrtc_peer\"}";
    let before = metric_or_zero(srv.http, series).await;
    let p = attack(&srv, "mallory", b"onair-fault:peer", 3).await;
    assert_eq!(p.status, 201, "{}", p.error);
    assert!(metric_or_zero(srv.http, series).await > before);
    // The panicking publisher's session is gone.
    let gone = common::http(srv.http, "DELETE", &p.location, &[], b"").await;
    assert_eq!(gone.status, 404, "{}", gone.text());
    assert_eq!(get(srv.http, "/healthz").await.status, 200);
    victim
        .finish()
        .await
        .assert_kept_playing("a panic while serving one WebRTC peer");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_engine_is_reported_and_restarted() {
    let srv = TestServer::start_with(|c| c.fault_injection = true).await;
    let key = srv.db.create_channel("mallory").await.unwrap().stream_key;
    let mut ff =
        common::ffmpeg_publish_sized(&srv.rtmp_url(&srv.key), 40, "640x360", &["-bf", "0"]);
    common::wait_for_live(srv.http, &srv.channel).await;
    let mut opts = clip(&key, &media(), 3);
    opts.raw = Some(RawVideo {
        frames: vec![vec![(b(b"onair-fault:engine"), true)]],
        ts_step: 3000,
    });
    let http = srv.http;
    let attacker = tokio::spawn(async move { publish(http, opts).await });
    // /healthz tells the truth while the engine is down...
    let start = Instant::now();
    let mut saw_503 = false;
    while start.elapsed() < Duration::from_secs(10) && !saw_503 {
        saw_503 = get(srv.http, "/healthz").await.status == 503;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_503, "/healthz never said the engine was down");
    let _ = attacker.await;
    // ...and it comes back: healthy again, and a new viewer plays.
    let start = Instant::now();
    while get(srv.http, "/healthz").await.status != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the engine stayed down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = onair_loadtest::whep::watch(
        srv.http,
        &srv.channel,
        Duration::from_secs(4),
        onair_loadtest::whep::ViewerOptions::default(),
    )
    .await
    .expect("a viewer after the restart");
    let frames = common::webrtc_client::access_units(&got.video).len();
    assert!(frames >= 30, "the restarted engine sent {frames} frames");
    assert!(metric(srv.http, "onair_live_streams").await >= 1.0);
    let _ = ff.kill().await;
    srv.stop().await;
}

/// Sessions on each fan-out shard, from `/metrics`.
async fn shard_sessions(srv: &TestServer) -> [f64; 2] {
    let mut n = [0.0; 2];
    for (i, n) in n.iter_mut().enumerate() {
        let series = format!("onair_webrtc_shard_sessions{{shard=\"{i}\"}}");
        *n = metric_or_zero(srv.http, &series).await;
    }
    n
}

/// A fan-out shard that dies drops its own viewers only: the victim,
/// watching the same channel from the other shard, keeps playing; the
/// shard restarts empty and serves new viewers; `/metrics` shows the
/// sessions per shard throughout.
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_shard_drops_only_its_own_viewers() {
    let srv = TestServer::start_with(|c| {
        c.fault_injection = true;
        c.webrtc_shards = 2;
    })
    .await;
    let victim = Victim::start(&srv, 8).await;
    assert_eq!(
        shard_sessions(&srv).await,
        [1.0, 0.0],
        "the victim is on shard 0"
    );
    // A second viewer of the same channel goes to the emptier shard.
    let (_pc, offer) = common::scenario_clients::offer(false);
    let sdp = ("Content-Type", "application/sdp");
    let r = common::http(
        srv.http,
        "POST",
        &format!("/whep/{}", victim.channel),
        &[sdp],
        offer.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let doomed = r.header("location").unwrap().to_string();
    assert_eq!(shard_sessions(&srv).await, [1.0, 1.0]);
    // Its shard dies outside any peer's guard.
    let frag = ("Content-Type", "application/trickle-ice-sdpfrag");
    let body = "a=candidate:onair-fault:shard 1 udp 1 192.0.2.1 9 typ host\r\n";
    let _ = common::http(srv.http, "PATCH", &doomed, &[frag], body.as_bytes()).await;
    let start = Instant::now();
    while get(srv.http, "/healthz").await.status != 200 || shard_sessions(&srv).await[1] != 0.0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "shard 1 did not come back empty: {:?}",
            shard_sessions(&srv).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let gone = common::http(srv.http, "DELETE", &doomed, &[], b"").await;
    assert_eq!(gone.status, 404, "the dead shard's session went with it");
    assert_eq!(shard_sessions(&srv).await, [1.0, 0.0]);
    // The restarted shard takes the next viewer, and it plays.
    let got = onair_loadtest::whep::watch(
        srv.http,
        &victim.channel,
        Duration::from_secs(3),
        onair_loadtest::whep::ViewerOptions::default(),
    )
    .await
    .expect("a viewer on the restarted shard");
    let frames = common::webrtc_client::access_units(&got.video).len();
    assert!(frames >= 30, "the restarted shard sent {frames} frames");
    victim
        .finish()
        .await
        .assert_kept_playing("a fan-out shard's death");
    srv.stop().await;
}

/// The real binary: an engine that keeps dying ends the process with an
/// error for its supervisor, and SIGTERM is prompt even after a failure.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_engine_never_leaves_the_process_up_but_dead() {
    let dir = tempfile::tempdir().unwrap();
    let key = common::child::create_channel(dir.path(), "mallory");
    let (http, rtmp) = (free_addr(), free_addr());
    let mut child = serve_with(dir.path(), http, rtmp, "log", &["--fault-injection"]);
    wait_healthy(http).await;
    let engine_fault = |secs| {
        let mut opts = clip(&key, &media(), secs);
        opts.raw = Some(RawVideo {
            frames: vec![vec![(b(b"onair-fault:engine"), true)]],
            ts_step: 3000,
        });
        opts
    };
    // One failure: restarted; then SIGTERM ends the process within 10 s.
    let _ = publish(http, engine_fault(2)).await;
    wait_healthy(http).await;
    let pid = child.id().unwrap() as i32;
    let t = Instant::now();
    unsafe { libc_kill(pid, 15) };
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("SIGTERM completes within 10 s after an engine failure")
        .unwrap();
    println!("stopped {:?} after SIGTERM with {status}", t.elapsed());
    assert!(
        status.success(),
        "one restarted failure is not fatal: {status}"
    );

    // Failures over and over: the process exits non-zero by itself.
    let mut child = serve_with(dir.path(), http, rtmp, "log2", &["--fault-injection"]);
    wait_healthy(http).await;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the process stayed up with an engine that keeps dying"
        );
        let _ = tokio::time::timeout(Duration::from_secs(3), publish(http, engine_fault(1))).await;
    };
    assert!(
        !status.success(),
        "a dead engine must end the process with an error"
    );
    let log = std::fs::read_to_string(dir.path().join("log2")).unwrap();
    assert!(log.contains("engine died"), "{log}");
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
