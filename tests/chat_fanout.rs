//! Chat fan-out: N WebSocket clients in one room, 20 messages a second in
//! total (20 senders at one a second each: the per-user limit), delivery
//! latency measured from the sender's clock to each receiver.
//!
//! The issue's measurement (1000 clients, p99 <= 50 ms) is ignored by
//! default; run it with
//! `cargo test --release --test chat_fanout -- --ignored --nocapture`.
//! A small version runs with the suite as a regression check.

mod common;

use common::{signup, ws_connect, ws_send, TestServer};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SENDERS: usize = 20;

struct Result {
    delivered: usize,
    expected: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

async fn fanout(clients: usize, secs: u64) -> Result {
    // Every client and sender is on loopback: lift the per-address socket cap.
    let srv =
        TestServer::start_with(move |c| c.accounts.chat_sockets_per_host = clients + SENDERS).await;
    let a = srv.http;
    let epoch = Instant::now();
    let mut tokens = Vec::new();
    for i in 0..SENDERS {
        tokens.push(signup(a, &format!("sender{i}")).await);
    }
    // Receivers: each records (now - sent) for every chat line.
    let lat = Arc::new(std::sync::Mutex::new(Vec::<Duration>::new()));
    let ready = Arc::new(tokio::sync::Barrier::new(clients + 1));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let mut ws = ws_connect(a, "/ws/demo", &[]).await;
        let (lat, ready, stop) = (lat.clone(), ready.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            ready.wait().await;
            let mut mine = Vec::new();
            loop {
                let msg = tokio::select! {
                    _ = stop.cancelled() => break,
                    m = ws.next() => m,
                };
                let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) = msg else {
                    break;
                };
                let now = epoch.elapsed();
                // Only what the measurement needs, without a full parse:
                // the client's own cost stays out of the numbers.
                let t = t.as_str();
                if !t.starts_with(r#"{"type":"chat""#) && !t.contains(r#""type":"chat""#) {
                    continue;
                }
                let Some(i) = t.find(r#""text":""#) else {
                    continue;
                };
                let digits = &t[i + 8..];
                let end = digits.find('"').unwrap();
                let sent: u64 = digits[..end].parse().unwrap();
                mine.push(now.saturating_sub(Duration::from_micros(sent)));
            }
            lat.lock().unwrap().extend(mine);
        }));
    }
    ready.wait().await;
    // Senders, staggered so the room sees one message every 50 ms.
    let mut senders = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let mut ws = ws_connect(a, &format!("/ws/demo?token={t}"), &[]).await;
        senders.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50 * i as u64)).await;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            for _ in 0..secs {
                tick.tick().await;
                let sent = epoch.elapsed().as_micros().to_string();
                ws_send(&mut ws, &serde_json::json!({"type": "chat", "text": sent})).await;
            }
            // Keep reading so the server never blocks on this socket.
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while ws.next().await.is_some() {}
            })
            .await;
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    let mut l = std::mem::take(&mut *lat.lock().unwrap());
    l.sort();
    let pct = |p: f64| l[((l.len() as f64 * p) as usize).min(l.len() - 1)];
    let r = Result {
        delivered: l.len(),
        expected: clients * SENDERS * secs as usize,
        p50: pct(0.50),
        p99: pct(0.99),
        max: *l.last().unwrap(),
    };
    println!(
        "chat fan-out: {clients} clients, {SENDERS} msg/s for {secs} s: delivered {}/{}, p50 {:?}, p99 {:?}, max {:?}",
        r.delivered, r.expected, r.p50, r.p99, r.max
    );
    srv.stop().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_room_delivers_everything_quickly() {
    let r = fanout(50, 3).await;
    assert_eq!(r.delivered, r.expected);
    // Lenient: a debug build on a machine busy with other tests.
    assert!(r.p99 < Duration::from_secs(1), "p99 {:?}", r.p99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
async fn thousand_clients_p99_under_50ms() {
    let clients = std::env::var("ONAIR_FANOUT_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let r = fanout(clients, 20).await;
    assert_eq!(
        r.delivered, r.expected,
        "every message reaches every client"
    );
    assert!(r.p99 <= Duration::from_millis(50), "p99 {:?}", r.p99);
}
