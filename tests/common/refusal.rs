//! Publishes the server must refuse: the same key tried over every ingest.

use super::{ffmpeg_publish, TestServer};
use onair_loadtest::http::{http, HttpResponse};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub async fn is_live(srv: &TestServer, channel: &str) -> bool {
    http(
        srv.http,
        "GET",
        &format!("/api/channels/{channel}"),
        &[],
        b"",
    )
    .await
    .json()["live"]
        == true
}

/// `key` on `channel` is refused everywhere: WHIP and Icecast answer 403
/// with `why`, and ffmpeg over RTMP never goes live in 5 s.
pub async fn assert_publish_refused(srv: &TestServer, channel: &str, key: &str, why: &str) {
    let r = whip_offer(srv.http, key).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains(why), "WHIP: {}", r.text());
    let reply = icecast_put(srv.icecast, channel, key).await;
    assert!(
        reply.lines().next().unwrap_or("").contains(" 403 "),
        "{reply}"
    );
    assert!(reply.contains(why), "Icecast: {reply}");
    let mut ff = ffmpeg_publish(&srv.rtmp_url(key), 4);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        assert!(!is_live(srv, channel).await, "{channel} went live");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = ff.wait().await;
}

/// A WHIP offer with `key`, refused before its SDP matters.
pub async fn whip_offer(addr: std::net::SocketAddr, key: &str) -> HttpResponse {
    let auth = format!("Bearer {key}");
    http(
        addr,
        "POST",
        "/whip",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/sdp"),
        ],
        b"v=0\r\n",
    )
    .await
}

/// An Icecast source's PUT with `key`; the server's answer head.
pub async fn icecast_put(addr: std::net::SocketAddr, mount: &str, key: &str) -> String {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("source:{key}"));
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "PUT /{mount} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: audio/mpeg\r\nIce-Public: 0\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}
