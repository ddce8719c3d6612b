//! Browsers publishing over WHIP, with real browsers on both ends: headless
//! Chromium sends its fake camera (tests/e2e/whip_publish.mjs) and a second
//! Chromium watches over WHEP (tests/e2e/lossy_watch.mjs).

mod common;

use common::node::run_script;
use common::udp_proxy::{Impairment, UdpProxy};
use common::{api, bearer, metric, signup, TestServer};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Two browsers and the server on 2 cores: one scenario at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn publish(
    srv: &TestServer,
    key: &str,
    secs: u32,
    codec: &str,
    via: Option<&UdpProxy>,
) -> serde_json::Value {
    let base = format!("http://{}", srv.http);
    let via = via.map_or("-".to_string(), |p| p.addr.to_string());
    let secs_s = secs.to_string();
    let args = [base.as_str(), key, secs_s.as_str(), codec, via.as_str()];
    run_script(
        "whip_publish.mjs",
        &args,
        Duration::from_secs(u64::from(secs) + 60),
    )
    .await
}

async fn watch(srv: &TestServer, channel: &str, secs: u32) -> serde_json::Value {
    let base = format!("http://{}", srv.http);
    let secs_s = secs.to_string();
    let args = [base.as_str(), channel, secs_s.as_str(), "-"];
    run_script(
        "lossy_watch.mjs",
        &args,
        Duration::from_secs(u64::from(secs) + 60),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_publishing_vp8_reaches_a_vp8_viewer_and_health_says_hls_is_off() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let alice = signup(srv.http, "alice").await;
    let auth = bearer(&alice);
    let h = [("Authorization", auth.as_str())];
    let me = api(srv.http, "GET", "/api/me", &h, None).await.json();
    let key = me["channel"]["stream_key"]
        .as_str()
        .expect("key")
        .to_string();

    let publisher = publish(&srv, &key, 16, "VP8", None);
    let viewer = async {
        let start = std::time::Instant::now();
        let health = loop {
            let v = api(srv.http, "GET", "/api/channels/alice/health", &h, None)
                .await
                .json();
            if v["live"] == true || start.elapsed() > Duration::from_secs(12) {
                break v;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        (watch(&srv, "alice", 8).await, health)
    };
    let (published, (watched, health)) = tokio::join!(publisher, viewer);
    eprintln!("publisher: {published}\nviewer: {watched}\nhealth: {health}");
    assert_eq!(published["status"], 201, "{published}");
    assert!(
        published["framesEncoded"].as_f64().unwrap_or(0.0) > 100.0,
        "{published}"
    );
    common::node::assert_watched_vp8(&watched);
    assert_eq!(health["video_codec"], "VP8 (WHIP)", "{health}");
    let warnings = health["warnings"].to_string();
    assert!(
        warnings.contains("HLS") && warnings.contains("VP8"),
        "{health}"
    );
    srv.stop().await;
}

/// 5 % of the publisher's packets lost on the way in: the server NACKs
/// them (the browser retransmits) and asks for keyframes, and the viewer's
/// picture keeps going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_side_loss_is_repaired_with_nack_and_pli() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let proxy = UdpProxy::start(
        srv.udp,
        Impairment {
            upstream: true,
            ..Impairment::loss(0.05)
        },
    )
    .await;
    let publisher = publish(&srv, &srv.key, 15, "H264", Some(&proxy));
    let viewer = async {
        tokio::time::sleep(Duration::from_secs(4)).await;
        watch(&srv, &srv.channel, 9).await
    };
    let (published, watched) = tokio::join!(publisher, viewer);
    let dropped = proxy.stats.dropped.load(Ordering::Relaxed);
    eprintln!("publisher: {published}\nviewer: {watched}\nproxy dropped {dropped}");
    assert!(
        dropped > 30,
        "the relay dropped the publisher's packets: {dropped}"
    );
    let n = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"));
    assert!(
        n(&published, "nackCount") > 0.0,
        "the server NACKed: {published}"
    );
    assert!(
        n(&published, "retransmittedPacketsSent") > 0.0,
        "and the browser retransmitted: {published}"
    );
    assert!(metric(srv.http, "onair_pli_sent_total").await >= 1.0);
    assert!(
        n(&watched, "steadyFps") > 10.0,
        "the picture keeps going: {watched}"
    );
    assert!(n(&watched, "maxGapMs") < 1500.0, "and recovers: {watched}");
    srv.stop().await;
}
