//! WebRTC viewers on bad links, with a real browser: headless Chromium
//! watches an RTMP stream through a UDP relay that drops media packets
//! (tests/common/udp_proxy.rs). At 5 % random loss NACK keeps the picture
//! smooth; on a link far thinner than the stream the viewer drops to
//! keyframes or audio only, and a second viewer on a clean path does not
//! notice. On a link that buffers instead of dropping, the browser's TWCC
//! feedback shows the queue growing, and the viewer steps down before the
//! buffer overflows.

mod common;

use common::node::run_script;
use common::udp_proxy::{Impairment, UdpProxy};
use common::{ffmpeg_publish_sized, metric, wait_for_live, TestServer};
use std::sync::atomic::Ordering;
use std::time::Duration;

async fn watch(srv: &TestServer, seconds: u32, via: Option<&UdpProxy>) -> serde_json::Value {
    let base = format!("http://{}", srv.http);
    let via = via.map_or("-".to_string(), |p| p.addr.to_string());
    let secs = seconds.to_string();
    let args = [
        base.as_str(),
        srv.channel.as_str(),
        secs.as_str(),
        via.as_str(),
    ];
    run_script(
        "lossy_watch.mjs",
        &args,
        Duration::from_secs(u64::from(seconds) + 60),
    )
    .await
}

/// 2.5 Mbit/s, 30 fps, a keyframe a second: the bitrate the issue
/// measures, at 640x360 so ffmpeg and two browsers fit on 2 cores.
const VIDEO: &[&str] = &[
    "-bf", "0", "-b:v", "2500k", "-maxrate", "2500k", "-bufsize", "1250k",
];

/// Outlasts any scenario, a cold browser start included; ffmpeg is killed
/// when the test ends.
const PUBLISH_SECS: u32 = 90;

/// A server whose channel is live with [`VIDEO`], and its publisher
/// (killed when dropped).
async fn live() -> (TestServer, tokio::process::Child) {
    let srv = TestServer::start().await;
    let ff = ffmpeg_publish_sized(&srv.rtmp_url(&srv.key), PUBLISH_SECS, "640x360", VIDEO);
    wait_for_live(srv.http, &srv.channel).await;
    (srv, ff)
}

/// Each scenario runs a publisher and one or two browsers: together they
/// would starve each other of CPU and measure the machine, not the server.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_loss_keeps_the_picture_smooth() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (srv, _ff) = live().await;
    let proxy = UdpProxy::start(srv.udp, Impairment::loss(0.05)).await;
    let r = watch(&srv, 14, Some(&proxy)).await;
    let dropped = proxy.stats.dropped.load(Ordering::Relaxed);
    let forwarded = proxy.stats.forwarded.load(Ordering::Relaxed);
    eprintln!("5 % loss: {r}\nproxy dropped {dropped}, forwarded {forwarded}");
    assert!(dropped > 50, "the relay dropped packets: {dropped}");
    let n = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
    assert!(n("steadyFps") > 20.0, "frames keep coming: {r}");
    assert!(n("maxGapMs") <= 500.0, "no freeze over 500 ms: {r}");
    assert!(n("nackCount") > 0.0, "the browser NACKed: {r}");
    assert!(
        metric(srv.http, "onair_nack_received_packets_total").await > 0.0,
        "the server saw the NACKs"
    );
    // Answered from the channel's one buffer, not the stock per-viewer one.
    let resent = metric(srv.http, "onair_rtp_retransmitted_total").await;
    assert!(resent > 0.0, "NACKed packets were resent: {resent}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thin_link_degrades_one_viewer_not_the_others() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (srv, _ff) = live().await;
    // 300 kbit/s for a 2.5 Mbit/s stream: even keyframes alone hardly fit.
    let thin = UdpProxy::start(
        srv.udp,
        Impairment {
            rate_bps: Some(300_000.0),
            ..Impairment::loss(0.0)
        },
    )
    .await;
    let (thin_report, clean_report) =
        tokio::join!(watch(&srv, 18, Some(&thin)), watch(&srv, 18, None));
    eprintln!("thin: {thin_report}\nclean: {clean_report}");
    let n = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
    assert!(
        metric(srv.http, "onair_viewer_downgrades_total").await >= 1.0,
        "the thin viewer was stepped down"
    );
    assert!(
        n(&thin_report, "steadyAudioPackets") > 100.0,
        "sound goes on for the thin viewer: {thin_report}"
    );
    assert!(
        // Lower bars than the 5 % test's: here two browsers, ffmpeg and
        // the server share 2 cores, and ffmpeg itself may fall behind
        // real time (what the clean viewer gets, it gets without pauses).
        n(&clean_report, "steadyFps") > 10.0
            && n(&clean_report, "maxGapMs") <= 1000.0
            && n(&clean_report, "videoPacketsLost") <= 5.0,
        "the clean viewer is not slowed: {clean_report}"
    );
    srv.stop().await;
}

/// A link of 1.2 Mbit/s for a 2.5 Mbit/s stream that queues what it
/// cannot carry (8 s deep) instead of dropping it: no loss for seconds,
/// only a delay that grows. The browser sends TWCC feedback (the server
/// stamps each packet with a transport-wide number), the server reads the
/// queue in it and steps the viewer down while nothing has been dropped,
/// and the sound goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_buffers_steps_the_viewer_down_before_anything_is_lost() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (srv, _ff) = live().await;
    let proxy = UdpProxy::start(
        srv.udp,
        Impairment {
            rate_bps: Some(1_200_000.0),
            queue: Some(Duration::from_secs(8)),
            ..Impairment::loss(0.0)
        },
    )
    .await;
    let viewer = watch(&srv, 16, Some(&proxy));
    let stepped = async {
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(40) {
            if metric(srv.http, "onair_viewer_downgrades_total").await >= 1.0 {
                return Some((start.elapsed(), proxy.stats.dropped.load(Ordering::Relaxed)));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    };
    let (r, stepped) = tokio::join!(viewer, stepped);
    let feedback = metric(srv.http, "onair_twcc_feedback_received_total").await;
    eprintln!(
        "buffering link: {r}
stepped down {stepped:?}, TWCC feedback packets {feedback}"
    );
    assert!(
        feedback > 10.0,
        "the browser sent TWCC feedback: {feedback}"
    );
    let (after, dropped) = stepped.expect("the viewer was stepped down");
    assert_eq!(
        dropped, 0,
        "stepped down {after:?} after joining, with the queue still holding every packet"
    );
    let n = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
    assert!(n("steadyAudioPackets") > 100.0, "the sound goes on: {r}");
    srv.stop().await;
}

/// A network that lets no UDP through: the browser connects over ICE-TCP
/// (RFC 6544 passive candidates on the WebRTC port) and plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_udp_a_browser_plays_over_ice_tcp() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (srv, _ff) = live().await;
    let base = format!("http://{}", srv.http);
    let args = [base.as_str(), srv.channel.as_str(), "8", "tcp-only"];
    let r = run_script("lossy_watch.mjs", &args, Duration::from_secs(70)).await;
    eprintln!("ICE-TCP: {r}");
    assert_eq!(r["candidateProtocol"], "tcp", "{r}");
    let n = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
    assert!(n("steadyFps") > 20.0, "{r}");
    assert!(n("steadyAudioPackets") > 100.0, "{r}");
    srv.stop().await;
}

/// Malformed RTP, RTCP, STUN and DTLS from a connected viewer's own address
/// (so they reach its connection, not the unknown-address filter): refused
/// without harm, and the viewer keeps playing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_from_a_viewer_harm_nothing() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let (srv, _ff) = live().await;
    let proxy = UdpProxy::start(srv.udp, Impairment::loss(0.0)).await;
    let mut junk: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x80],
        vec![0x80, 96, 0, 1],
        // RTP header, SRTP auth tag that cannot verify.
        [
            vec![0x80, 96, 0x12, 0x34, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef],
            vec![0xaa; 1200],
        ]
        .concat(),
        // RTCP receiver report header with a length past the packet.
        vec![0x81, 201, 0xff, 0xff, 1, 2, 3, 4],
        // STUN binding request header with a bogus length.
        vec![
            0x00, 0x01, 0xff, 0xf0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
        ],
        // DTLS record header, then nothing.
        vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0x40, 0x00],
    ];
    // And a spread of random-ish bytes of every length up to a packet.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for len in (1..1400).step_by(37) {
        junk.push(
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect(),
        );
    }
    let base = format!("http://{}", srv.http);
    let via = proxy.addr.to_string();
    let args = [base.as_str(), srv.channel.as_str(), "9", via.as_str()];
    let watching = run_script("lossy_watch.mjs", &args, Duration::from_secs(70));
    let injecting = async {
        // Once connected, a burst a second for five seconds.
        tokio::time::sleep(Duration::from_secs(3)).await;
        for _ in 0..5 {
            proxy.inject(&junk).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let (r, ()) = tokio::join!(watching, injecting);
    eprintln!("viewer under junk: {r}");
    let n = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
    assert_eq!(r["connectionState"], "connected", "{r}");
    assert!(n("steadyFps") > 20.0, "{r}");
    assert!(n("maxGapMs") <= 500.0, "{r}");
    // The server is still whole: a new viewer gets an answer.
    let r = common::http(
        srv.http,
        "POST",
        "/whep/demo",
        &[("Content-Type", "application/sdp")],
        include_str!("data/chrome_offer.sdp").as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    srv.stop().await;
}
