//! `--require-verified-email`: an account whose address is not verified
//! neither chats (HTTP, WebSocket) nor streams (RTMP from ffmpeg, WHIP,
//! Icecast), and says why; once verified, the same session and the same
//! open socket chat, and the same key goes live. Channels the operator made
//! stream regardless.

mod common;

use common::{
    api_as, ffmpeg_publish, metric_or_zero, signup, wait_for_live, ws_connect, ws_send, ws_until,
    TestServer,
};
use onair_loadtest::http::http;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn live(srv: &TestServer, channel: &str) -> bool {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_accounts_neither_chat_nor_stream_until_verified() {
    let srv = TestServer::start_with(|c| c.accounts.require_verified_email = true).await;
    let a = srv.http;
    let token = signup(a, "alice").await;
    let me = api_as(a, &token, "GET", "/api/me", None).await.json();
    assert_eq!(me["user"]["email_verified"], false, "{me}");
    let user_id = me["user"]["id"].as_i64().unwrap();
    let key = me["channel"]["stream_key"].as_str().unwrap().to_string();

    // Chat, over HTTP and over an open WebSocket.
    let hi = json!({"text": "hi"});
    let r = api_as(a, &token, "POST", "/api/channels/demo/chat", Some(&hi)).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("verify your email"), "{}", r.text());
    let mut ws = ws_connect(a, &format!("/ws/demo?token={token}"), &[]).await;
    ws_send(&mut ws, &json!({"type": "chat", "text": "from the socket"})).await;
    let e = ws_until(&mut ws, |v| v["type"] == "error").await;
    assert!(
        e["error"].as_str().unwrap().contains("verify your email"),
        "{e}"
    );

    // Streaming: WHIP answers why; Icecast too; RTMP is refused (ffmpeg
    // never goes live), and each refusal is counted.
    let auth = format!("Bearer {key}");
    let r = http(
        a,
        "POST",
        "/whip",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/sdp"),
        ],
        b"v=0\r\n",
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text().contains("verify the account's email"),
        "{}",
        r.text()
    );
    let reply = icecast_put(srv.icecast, "alice", &key).await;
    assert!(
        reply.lines().next().unwrap_or("").contains(" 403 "),
        "{reply}"
    );
    assert!(reply.contains("verify the account's email"), "{reply}");
    let mut ff = ffmpeg_publish(&srv.rtmp_url(&key), 4);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        assert!(
            !live(&srv, "alice").await,
            "an unverified account went live"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = ff.wait().await;
    for protocol in ["rtmp", "whip", "icecast"] {
        let series = format!(r#"onair_publishes_total{{protocol="{protocol}",result="rejected"}}"#);
        assert!(metric_or_zero(a, &series).await >= 1.0, "{series}");
    }

    // The operator's channel streams regardless.
    let mut demo = ffmpeg_publish(&srv.rtmp_url(&srv.key), 3);
    wait_for_live(a, "demo").await;
    let _ = demo.wait().await;

    // Verified: the same session and the same socket chat, and the key
    // goes live.
    srv.db.set_email_verified(user_id).await.unwrap();
    let r = api_as(a, &token, "POST", "/api/channels/demo/chat", Some(&hi)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    ws_send(&mut ws, &json!({"type": "chat", "text": "verified now"})).await;
    let m = ws_until(&mut ws, |v| {
        v["type"] == "chat" && v["text"] == "verified now"
    })
    .await;
    assert_eq!(m["user"], "alice");
    let mut ff = ffmpeg_publish(&srv.rtmp_url(&key), 4);
    wait_for_live(a, "alice").await;
    let _ = ff.wait().await;
    srv.stop().await;
}

/// An Icecast source's PUT with `key`; the server's answer head.
async fn icecast_put(addr: std::net::SocketAddr, mount: &str, key: &str) -> String {
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
