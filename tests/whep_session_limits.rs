//! What one WebRTC session may hold and how long it may linger: trickle
//! limits, the ICE+DTLS deadline, and that only authenticated traffic keeps
//! a viewer's place.

mod common;

use common::{metric_or_zero, TestServer};
use std::time::{Duration, Instant};

const SDP: (&str, &str) = ("Content-Type", "application/sdp");
const FRAG: (&str, &str) = ("Content-Type", "application/trickle-ice-sdpfrag");

/// An H.264 offer that no client will ever complete.
fn offer() -> String {
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\na=setup:actpass\r\n\
a=rtcp-mux\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
        .to_string()
}

fn candidates(n: usize, first_port: u16) -> String {
    (0..n)
        .map(|i| {
            format!(
                "a=candidate:{i} 1 udp 2122260223 192.0.2.1 {} typ host\r\n",
                first_port as usize + i
            )
        })
        .collect()
}

async fn webrtc_viewers(srv: &TestServer) -> f64 {
    metric_or_zero(
        srv.http,
        &format!(
            "onair_viewers{{channel=\"{}\",protocol=\"webrtc\"}}",
            srv.channel
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickle_is_bounded_per_session() {
    let srv = TestServer::start().await;
    let r = http(
        srv.http,
        &format!("/whep/{}", srv.channel),
        &[SDP],
        offer().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let session = r.header("location").unwrap().to_string();
    let patch = |body: String| {
        let session = session.clone();
        async move { common::http(srv.http, "PATCH", &session, &[FRAG], body.as_bytes()).await }
    };
    // 33 candidates at once: over the 32 a session may trickle.
    let r = patch(candidates(33, 40000)).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.text().contains("32"), "{}", r.text());
    // 32 one at a time are fine; the 33rd is refused.
    for i in 0..32 {
        let r = patch(candidates(1, 41000 + i)).await;
        assert_eq!(r.status, 204, "candidate {i}: {}", r.text());
    }
    let r = patch(candidates(1, 42000)).await;
    assert_eq!(r.status, 429, "{}", r.text());
    // PATCH requests themselves are counted: 64 in all (35 so far).
    let mut last = 0;
    for _ in 0..40 {
        last = patch(String::new()).await.status;
    }
    assert_eq!(last, 429, "PATCH requests past 64 are refused");
    srv.stop().await;
}

/// A POST.
async fn http(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> common::HttpResponse {
    common::http(addr, "POST", path, headers, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_connects_is_dropped_after_10_s() {
    let srv = TestServer::start().await;
    let r = http(
        srv.http,
        &format!("/whep/{}", srv.channel),
        &[SDP],
        offer().as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(webrtc_viewers(&srv).await, 1.0);
    let start = Instant::now();
    while webrtc_viewers(&srv).await > 0.0 {
        assert!(
            start.elapsed() < Duration::from_secs(14),
            "a session with no ICE and DTLS was kept past 10 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let took = start.elapsed();
    println!("dropped after {took:?}");
    assert!(
        took >= Duration::from_secs(9),
        "dropped too early: {took:?}"
    );
    srv.stop().await;
}

/// A viewer vanishes; someone else sends from its address (a STUN check
/// with the right username but no valid MESSAGE-INTEGRITY, and RTP-looking
/// junk that fails SRTP): neither proves the viewer is there, so its place
/// is freed after the 30 s silence limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_authenticated_traffic_keeps_a_viewer() {
    let srv = TestServer::start().await;
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let got = onair_loadtest::whep::watch(
        srv.http,
        &srv.channel,
        Duration::from_secs(2),
        onair_loadtest::whep::ViewerOptions {
            vanish: true,
            port,
            ..Default::default()
        },
    )
    .await
    .expect("viewer");
    assert!(got.connected_after.is_some(), "the viewer connected");
    let ufrag = got
        .answer
        .lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .expect("answer has a ufrag")
        .trim()
        .to_string();
    let spoof = tokio::net::UdpSocket::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let start = Instant::now();
    let mut gone = None;
    while start.elapsed() < Duration::from_secs(40) {
        spoof
            .send_to(&forged_binding_request(&ufrag), srv.udp)
            .await
            .unwrap();
        let mut junk = vec![0x80, 96, 0, 1, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef];
        junk.extend_from_slice(&[0x55; 64]);
        spoof.send_to(&junk, srv.udp).await.unwrap();
        if webrtc_viewers(&srv).await == 0.0 {
            gone = Some(start.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let gone = gone.expect("forged traffic kept a vanished viewer's place for 40 s");
    println!("vanished viewer reaped {gone:?} after it left, forged traffic notwithstanding");
    srv.stop().await;
}

/// A STUN Binding request (RFC 8489) naming `ufrag`, with a
/// MESSAGE-INTEGRITY that is not keyed with the password.
fn forged_binding_request(ufrag: &str) -> Vec<u8> {
    let username = format!("{ufrag}:abcd");
    let mut attrs = Vec::new();
    let mut attr = |typ: u16, value: &[u8]| {
        attrs.extend_from_slice(&typ.to_be_bytes());
        attrs.extend_from_slice(&(value.len() as u16).to_be_bytes());
        attrs.extend_from_slice(value);
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
    };
    attr(0x0006, username.as_bytes());
    attr(0x0008, &[0x42; 20]);
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&0x2112_A442u32.to_be_bytes());
    m.extend_from_slice(&[7; 12]);
    m.extend_from_slice(&attrs);
    m
}

/// `--max-viewers`: past it an offer is refused with 503 and Retry-After
/// (a full server, not a client over its own limit), and a place freed by
/// DELETE is taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_answers_503_with_retry_after() {
    let srv = TestServer::start_with(|c| c.max_viewers = 1).await;
    let path = format!("/whep/{}", srv.channel);
    let first = http(srv.http, &path, &[SDP], offer().as_bytes()).await;
    assert_eq!(first.status, 201, "{}", first.text());
    let full = http(srv.http, &path, &[SDP], offer().as_bytes()).await;
    assert_eq!(full.status, 503, "{}", full.text());
    assert_eq!(full.header("retry-after"), Some("5"));
    assert!(full.text().contains("viewer limit"), "{}", full.text());
    let session = first.header("location").unwrap().to_string();
    let r = common::http(srv.http, "DELETE", &session, &[], b"").await;
    assert!(r.status < 300, "{}", r.status);
    let again = http(srv.http, &path, &[SDP], offer().as_bytes()).await;
    assert_eq!(again.status, 201, "{}", again.text());
    // A session over its own limit is told when to retry too.
    let session = again.header("location").unwrap().to_string();
    let r = common::http(
        srv.http,
        "PATCH",
        &session,
        &[FRAG],
        candidates(33, 40000).as_bytes(),
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some(), "429 without Retry-After");
    srv.stop().await;
}
