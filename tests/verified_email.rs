//! `--require-verified-email`: an account whose address is not verified
//! neither chats (HTTP, WebSocket) nor streams (RTMP from ffmpeg, WHIP,
//! Icecast), and says why; once verified, the same session and the same
//! open socket chat, and the same key goes live. Channels the operator made
//! stream regardless.

mod common;

use common::refusal::assert_publish_refused;
use common::{
    api_as, ffmpeg_publish, metric_or_zero, signup, wait_for_live, ws_connect, ws_send, ws_until,
    TestServer,
};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unverified_accounts_neither_chat_nor_stream_until_verified() {
    let srv = TestServer::start_with(|c| c.accounts.require_verified_email = true).await;
    let a = srv.http;
    let token = signup(a, "alice").await;
    let me = api_as(a, &token, "GET", "/api/me", None).await.json();
    assert_eq!(me["user"]["email_verified"], false, "{me}");
    let user_id = common::json_id(&me["user"]["id"]);
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
    assert_publish_refused(&srv, "alice", &key, "verify the account's email").await;
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
