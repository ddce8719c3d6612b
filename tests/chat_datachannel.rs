//! The WHEP `chat` data channel joins the same room as the WebSocket: a
//! signed-in WebRTC viewer and a WebSocket user talk to each other.

mod common;

use common::webrtc_client::{watch, ViewerOptions};
use common::{bearer, signup, ws_connect, ws_send, ws_until, TestServer};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_channel_and_websocket_share_the_room() {
    let srv = TestServer::start().await;
    let alice = signup(srv.http, "alice").await;
    let bob = signup(srv.http, "bob").await;
    let mut ws = ws_connect(srv.http, "/ws/demo", &[("Authorization", &bearer(&bob))]).await;

    let opts = ViewerOptions {
        token: Some(alice.clone()),
        chat_message: Some(r#"{"type":"chat","text":"hello from webrtc <b>"}"#.into()),
        ..Default::default()
    };
    let viewer = tokio::spawn(watch(srv.http, "demo", Duration::from_secs(4), opts));

    let heard = ws_until(&mut ws, |v| v["type"] == "chat").await;
    assert_eq!(heard["user"], "alice");
    assert_eq!(
        heard["text"], "hello from webrtc <b>",
        "stored and sent verbatim"
    );
    ws_send(
        &mut ws,
        &serde_json::json!({"type": "chat", "text": "hi alice"}),
    )
    .await;

    let got = viewer.await.unwrap().expect("viewer ran");
    let lines: Vec<serde_json::Value> = got
        .chat
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert!(
        lines.iter().any(|v| v["type"] == "offline"),
        "live state on join: {lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|v| v["type"] == "chat" && v["user"] == "bob" && v["text"] == "hi alice"),
        "the WebSocket user's message reaches the data channel: {lines:?}"
    );
    assert!(
        !lines.iter().any(|v| v["type"] == "error"),
        "a signed-in viewer may write: {lines:?}"
    );
    srv.stop().await;
}
