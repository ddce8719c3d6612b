//! Chat sockets under attack: one address opening more WebSockets than its
//! cap is refused while a user elsewhere keeps chatting, the total cap
//! holds, and a socket flooding frames is closed without slowing the room.

mod common;

use common::accounts::{behind_proxy, signup_from, xff};
use common::{ws_send, ws_wait, TestServer, Ws};
use futures_util::{SinkExt, StreamExt};
use onair::auth::AccountLimits;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket to `path` from client address `ip`, or the HTTP status it
/// was refused with.
async fn ws_from(addr: SocketAddr, ip: &str, path: &str) -> Result<Ws, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    let (k, v) = xff(ip);
    req.headers_mut().insert(k, v.parse().unwrap());
    match tokio_tungstenite::connect_async_with_config(req, None, true).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("ws connect {path}: {e}"),
    }
}

fn is_chat(text: String) -> impl FnMut(&Value) -> bool {
    move |v| v["type"] == "chat" && v["text"] == text.as_str()
}

/// A signed-in user posts `n` messages (at most the chat burst, 5) 250 ms
/// apart; an observer must get each within `within`. The slowest delivery.
async fn victim_chats(
    addr: SocketAddr,
    speaker: &mut Ws,
    observer: &mut Ws,
    n: usize,
    within: Duration,
) -> Duration {
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let text = format!("victim {i}");
        let t = Instant::now();
        ws_send(speaker, &json!({"type": "chat", "text": text})).await;
        ws_wait(observer, within, is_chat(text.clone()))
            .await
            .unwrap_or_else(|| panic!("{text} not delivered within {within:?} ({addr})"));
        slowest = slowest.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    slowest
}

fn refused_metric(metrics: &str, listener: &str) -> u64 {
    let needle = format!("onair_connections_refused_total{{listener=\"{listener}\"}}");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_over_its_cap_is_refused_while_others_keep_chatting() {
    let srv = TestServer::start_with(behind_proxy).await;
    let a = srv.http;
    let cap = AccountLimits::default().chat_sockets_per_host;
    let victim = signup_from(a, "198.51.100.1", "victim").await;
    let mut hoard = Vec::new();
    for i in 0..cap {
        let ws = ws_from(a, "203.0.113.5", "/ws/demo")
            .await
            .unwrap_or_else(|s| panic!("socket {i} of the cap refused with {s}"));
        hoard.push(ws);
    }
    for _ in 0..3 {
        assert_eq!(
            ws_from(a, "203.0.113.5", "/ws/demo").await.err(),
            Some(429),
            "past the cap"
        );
    }
    // The victim, elsewhere, connects and chats; others get every message.
    let path = format!("/ws/demo?token={victim}");
    let mut speaker = ws_from(a, "198.51.100.1", &path).await.expect("victim");
    let mut observer = ws_from(a, "192.0.2.50", "/ws/demo")
        .await
        .expect("observer");
    let slowest = victim_chats(a, &mut speaker, &mut observer, 5, Duration::from_secs(1)).await;
    println!("one host at its {cap}-socket chat cap: 3 more refused with 429; victim's 5 messages delivered, slowest {slowest:?}");
    let m = common::get(a, "/metrics").await.text();
    assert!(refused_metric(&m, "chat_ws") >= 3, "counted as refused");
    // A closed socket gives its place back.
    let mut one = hoard.pop().unwrap();
    one.close(None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match ws_from(a, "203.0.113.5", "/ws/demo").await {
            Ok(ws) => {
                hoard.push(ws);
                break;
            }
            Err(s) => assert!(Instant::now() < deadline, "place not given back: {s}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_total_cap_holds() {
    let srv = TestServer::start_with(|c| {
        behind_proxy(c);
        c.accounts.chat_sockets = 10;
    })
    .await;
    let mut open = Vec::new();
    for i in 0..10 {
        open.push(
            ws_from(srv.http, &format!("192.0.2.{}", i + 1), "/ws/demo")
                .await
                .expect("under the total"),
        );
    }
    assert_eq!(
        ws_from(srv.http, "192.0.2.99", "/ws/demo").await.err(),
        Some(503)
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_flooding_frames_is_closed_without_slowing_the_room() {
    let srv = TestServer::start_with(behind_proxy).await;
    let a = srv.http;
    let victim = signup_from(a, "198.51.100.1", "victim").await;
    let flooder = signup_from(a, "203.0.113.5", "flooder").await;
    let mut speaker = ws_from(a, "198.51.100.1", &format!("/ws/demo?token={victim}"))
        .await
        .unwrap();
    let mut observer = ws_from(a, "192.0.2.50", "/ws/demo").await.unwrap();
    let flood = ws_from(a, "203.0.113.5", &format!("/ws/demo?token={flooder}"))
        .await
        .unwrap();
    let hits_before = onair::metrics::limit_hits("chat_frames_per_sec");
    // The flood: chat frames and pings as fast as the socket takes them,
    // until the server closes it.
    let started = Instant::now();
    let flood_task = tokio::spawn(async move {
        let (mut tx, mut rx) = flood.split();
        let sender = tokio::spawn(async move {
            let mut sent = 0u64;
            for i in 0..100_000u64 {
                let frame = if i % 2 == 0 {
                    Message::Text(
                        json!({"type": "chat", "text": format!("flood {i}")})
                            .to_string()
                            .into(),
                    )
                } else {
                    Message::Ping(vec![1, 2, 3].into())
                };
                if tx.send(frame).await.is_err() {
                    break;
                }
                sent += 1;
            }
            sent
        });
        let mut close = None;
        while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(5), rx.next()).await {
            match msg {
                Ok(Message::Close(frame)) => {
                    close = frame.map(|f| u16::from(f.code));
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let closed_after = started.elapsed();
        sender.abort();
        (close, closed_after)
    });
    let slowest = victim_chats(a, &mut speaker, &mut observer, 5, Duration::from_secs(1)).await;
    let (close, closed_after) = flood_task.await.unwrap();
    println!(
        "chat frame flood: socket closed with {close:?} after {closed_after:?}; victim's 5 messages delivered, slowest {slowest:?}"
    );
    assert_eq!(close, Some(1008), "closed as a policy violation");
    assert!(closed_after < Duration::from_secs(3), "{closed_after:?}");
    assert!(onair::metrics::limit_hits("chat_frames_per_sec") > hits_before);
    // Whatever of the flood got into the room is within the user's burst.
    let mut flood_lines = 0;
    while let Some(v) = ws_wait(&mut observer, Duration::from_millis(300), |_| true).await {
        if v["user"] == "flooder" {
            flood_lines += 1;
        }
    }
    assert!(flood_lines <= onair::chat::BURST as usize, "{flood_lines}");
    srv.stop().await;
}
