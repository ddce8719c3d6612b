//! Bad WHEP requests get a clear error, and the server keeps serving.

mod common;

use common::{http, TestServer};

const SDP: (&str, &str) = ("Content-Type", "application/sdp");

/// (what, path, headers, body, expected status, words the error must contain)
type Case<'a> = (
    &'a str,
    String,
    Vec<(&'a str, &'a str)>,
    Vec<u8>,
    u16,
    &'a str,
);

fn vp8_only_offer() -> String {
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\na=setup:actpass\r\n\
a=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n"
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_whep_requests_get_clear_errors() {
    let srv = TestServer::start().await;
    let path = format!("/whep/{}", srv.channel);

    let huge = vec![b'a'; 10 * 1024 * 1024];
    let many_m = format!("v=0\r\n{}", "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n".repeat(50));
    let cases: Vec<Case> = vec![
        (
            "not SDP",
            path.clone(),
            vec![SDP],
            b"hello, I am not an offer".to_vec(),
            400,
            "not an SDP",
        ),
        (
            "JSON body",
            path.clone(),
            vec![SDP],
            br#"{"sdp":"v=0"}"#.to_vec(),
            400,
            "not an SDP",
        ),
        (
            "wrong content type",
            path.clone(),
            vec![("Content-Type", "application/json")],
            b"v=0\r\n".to_vec(),
            415,
            "application/sdp",
        ),
        (
            "no H.264",
            path.clone(),
            vec![SDP],
            vp8_only_offer().into_bytes(),
            406,
            "H.264",
        ),
        (
            "50 m-lines",
            path.clone(),
            vec![SDP],
            many_m.into_bytes(),
            400,
            "m-lines",
        ),
        (
            "10 MB body",
            path.clone(),
            vec![SDP],
            huge,
            413,
            "larger than",
        ),
        (
            "unknown channel",
            "/whep/nosuchchannel".into(),
            vec![SDP],
            b"v=0\r\n".to_vec(),
            404,
            "no channel",
        ),
        (
            "binary garbage",
            path.clone(),
            vec![SDP],
            vec![0xff, 0xfe, 0x00, 0x01],
            400,
            "UTF-8",
        ),
        (
            "PATCH unknown session",
            format!("{path}/0123456789abcdef"),
            vec![("Content-Type", "application/trickle-ice-sdpfrag")],
            b"a=candidate:1 1 udp 1 192.0.2.1 9 typ host\r\n".to_vec(),
            404,
            "no such session",
        ),
    ];
    for (what, p, headers, body, status, words) in cases {
        let method = if what.starts_with("PATCH") {
            "PATCH"
        } else {
            "POST"
        };
        let r = http(srv.http, method, &p, &headers, &body).await;
        assert_eq!(r.status, status, "{what}: {}", r.text());
        let err = r.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(
            err.contains(words),
            "{what}: error {err:?} should mention {words:?}"
        );
    }
    let del = http(
        srv.http,
        "DELETE",
        &format!("{path}/guessed-session-id"),
        &[],
        b"",
    )
    .await;
    assert_eq!(del.status, 404);

    // Everyone else is unharmed: health and a real offer still work.
    assert_eq!(
        http(srv.http, "GET", "/healthz", &[], b"").await.status,
        200
    );
    let got = common::webrtc_client::watch(
        srv.http,
        &srv.channel,
        std::time::Duration::from_millis(800),
        Default::default(),
    )
    .await
    .expect("a good viewer still gets an answer");
    assert!(got.answer.contains("H264"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whep_answers_cors_for_players_on_other_origins() {
    let srv = TestServer::start().await;
    let r = http(
        srv.http,
        "OPTIONS",
        "/whep/demo",
        &[
            ("Origin", "https://player.example"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    )
    .await;
    assert!(r.status == 200 || r.status == 204, "preflight {}", r.status);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let methods = r
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .to_string();
    for m in ["POST", "PATCH", "DELETE"] {
        assert!(methods.contains(m), "preflight allows {m}: {methods}");
    }
    let got = http(
        srv.http,
        "GET",
        "/healthz",
        &[("Origin", "https://player.example")],
        b"",
    )
    .await;
    let exposed = got
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        exposed.contains("location") && exposed.contains("link"),
        "exposes Location and Link: {exposed}"
    );
    srv.stop().await;
}

/// A flood of offers from one address gets 429 (WHIP and WHEP share the
/// budget); the budget refills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_flood_from_one_address_is_limited() {
    let srv = TestServer::start().await;
    let mut statuses = Vec::new();
    for i in 0..30 {
        let path = if i % 2 == 0 {
            "/whep/nosuchchannel"
        } else {
            "/whip"
        };
        statuses.push(
            http(srv.http, "POST", path, &[SDP], b"v=0\r\n")
                .await
                .status,
        );
    }
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(limited >= 5, "{statuses:?}");
    assert!(
        statuses[..10].iter().all(|s| *s != 429),
        "a normal burst passes: {statuses:?}"
    );
    let r = http(srv.http, "POST", "/whep/nosuchchannel", &[SDP], b"v=0\r\n").await;
    if r.status == 429 {
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        http(srv.http, "POST", "/whep/nosuchchannel", &[SDP], b"v=0\r\n")
            .await
            .status,
        404,
        "refilled"
    );
    srv.stop().await;
}

/// What third-party WHIP/WHEP clients check (RFC 9725 and the WHEP draft):
/// `OPTIONS` names what a POST and a PATCH take, the ETag is readable
/// across origins and guards PATCH (412 on a mismatch, 422 for an ICE
/// restart, which sessions here do not do), and a wrong method gets 405
/// with the same JSON error body as everything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whip_and_whep_follow_the_http_conventions_clients_check() {
    let srv = TestServer::start().await;
    for path in ["/whip".to_string(), format!("/whep/{}", srv.channel)] {
        let r = http(srv.http, "OPTIONS", &path, &[], b"").await;
        assert!(
            r.status == 200 || r.status == 204,
            "OPTIONS {path}: {}",
            r.status
        );
        assert_eq!(r.header("accept-post"), Some("application/sdp"), "{path}");
    }
    let offer = vp8_only_offer().replace(
        "a=rtpmap:96 VP8/90000\r\n",
        "a=rtpmap:96 H264/90000\r\na=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n",
    );
    let path = format!("/whep/{}", srv.channel);
    let origin = ("Origin", "https://player.example");
    let r = http(srv.http, "POST", &path, &[SDP, origin], offer.as_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let etag = r.header("etag").expect("an ETag").to_string();
    let exposed = r
        .header("access-control-expose-headers")
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        exposed.contains("etag"),
        "ETag readable by players on other origins: {exposed}"
    );
    let session = r.header("location").expect("a Location").to_string();
    let r = http(srv.http, "OPTIONS", &session, &[], b"").await;
    assert_eq!(
        r.header("accept-patch"),
        Some("application/trickle-ice-sdpfrag")
    );

    let frag = b"a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 UDP 2130706431 127.0.0.1 50000 typ host\r\n";
    let frag_type = ("Content-Type", "application/trickle-ice-sdpfrag");
    let patch = |if_match: &'static str| {
        let session = session.clone();
        async move {
            let mut headers = vec![frag_type];
            if !if_match.is_empty() {
                headers.push(("If-Match", if_match));
            }
            http(srv.http, "PATCH", &session, &headers, frag).await
        }
    };
    let stale = patch("\"someone-else\"").await;
    assert_eq!(stale.status, 412, "{}", stale.text());
    assert!(stale.json()["error"].as_str().unwrap().contains("ETag"));
    let restart = patch("*").await;
    assert_eq!(restart.status, 422, "ICE restart: {}", restart.text());
    let etag: &'static str = Box::leak(etag.into_boxed_str());
    assert_eq!(patch(etag).await.status, 204, "the session's own ETag");
    assert_eq!(
        patch("").await.status,
        204,
        "no If-Match: taken at its word"
    );

    let wrong = http(srv.http, "GET", "/whip", &[], b"").await;
    assert_eq!(wrong.status, 405);
    assert!(
        wrong.json()["error"].is_string(),
        "405 has the JSON error body: {}",
        wrong.text()
    );
    srv.stop().await;
}
