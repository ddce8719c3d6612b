//! Chat load: WebSocket clients in one room, some of them signed-in
//! writers, measuring how long a message takes from send to every reader.
//!
//! The server limits each user to a burst of 5 messages, then one a second,
//! so a total rate R needs about R writers: [`writers_for`] creates enough
//! accounts that none of them is throttled.

use crate::http::try_http;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Per-writer rate, under the server's refill of one message a second.
pub const WRITER_RATE: f64 = 0.8;

/// Writers needed for `rate` messages a second in total.
pub fn writers_for(rate: f64, clients: usize) -> usize {
    ((rate / WRITER_RATE).ceil() as usize).clamp(1, clients.max(1))
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ChatClientResult {
    pub connected_after: Option<Duration>,
    pub sent: u64,
    pub received: u64,
    /// Error lines from the server (rate limits, refusals).
    pub rejected: u64,
    pub latency_us: Vec<u32>,
    pub error: Option<String>,
}

/// Registers `name` and returns its Bearer token.
pub async fn account(http: SocketAddr, name: &str) -> anyhow::Result<String> {
    let body = serde_json::json!({"username": name, "password": format!("pw-{name}-loadtest")});
    let r = try_http(
        http,
        "POST",
        "/api/auth/register",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .await?;
    anyhow::ensure!(
        r.status == 201,
        "register {name}: {} {}",
        r.status,
        r.text()
    );
    let r = try_http(
        http,
        "POST",
        "/api/auth/login",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
    )
    .await?;
    anyhow::ensure!(r.status == 200, "login {name}: {} {}", r.status, r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body)?;
    v["token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("login answer has no token"))
}

/// One client in `channel`'s room until `until`. With a token it writes one
/// message every `every`, stamped `lt RUN SEND_US`. It connects from
/// `from` when given (a loopback address: one client to the server's
/// per-address limits).
pub async fn client(
    http: SocketAddr,
    from: Option<std::net::IpAddr>,
    channel: &str,
    token: Option<String>,
    every: Duration,
    run: u64,
    until: Instant,
) -> ChatClientResult {
    let mut out = ChatClientResult::default();
    let started = Instant::now();
    let path = match &token {
        Some(t) => format!("ws://{http}/ws/{channel}?token={t}"),
        None => format!("ws://{http}/ws/{channel}"),
    };
    let ws = tokio::time::timeout(Duration::from_secs(10), async {
        let s = crate::http::connect_from(from, http).await?;
        s.set_nodelay(true)?;
        let (ws, _) = tokio_tungstenite::client_async(path, s).await?;
        anyhow::Ok(ws)
    })
    .await;
    let mut ws = match ws {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            out.error = Some(e.to_string());
            return out;
        }
        Err(_) => {
            out.error = Some("connect timed out".into());
            return out;
        }
    };
    out.connected_after = Some(started.elapsed());
    let prefix = format!("lt {run} ");
    // Writers start spread over one period, so sends do not come in waves.
    let offset = every.mul_f64(rand_unit());
    let mut next_send = tokio::time::Instant::now() + offset;
    let until = tokio::time::Instant::from(until);
    loop {
        let send_at = if token.is_some() { next_send } else { until };
        tokio::select! {
            _ = tokio::time::sleep_until(until) => break,
            _ = tokio::time::sleep_until(send_at), if token.is_some() => {
                let text = format!("{prefix}{}", crate::stamp::now_us());
                let m = serde_json::json!({"type": "chat", "text": text}).to_string();
                if let Err(e) = ws.send(Message::Text(m.into())).await {
                    out.error.get_or_insert(e.to_string());
                    break;
                }
                out.sent += 1;
                next_send += every;
            }
            m = ws.next() => {
                let Some(Ok(m)) = m else { break };
                let Message::Text(t) = m else { continue };
                let now_us = crate::stamp::now_us();
                let Ok(v) = serde_json::from_str::<serde_json::Value>(t.as_str()) else { continue };
                match v["type"].as_str() {
                    Some("chat") => {
                        let sent = v["text"]
                            .as_str()
                            .and_then(|s| s.strip_prefix(&prefix))
                            .and_then(|s| s.parse::<u64>().ok());
                        // History from earlier runs has another run id.
                        if let Some(sent) = sent {
                            out.received += 1;
                            if out.latency_us.len() < crate::whep::MAX_LATENCY_SAMPLES {
                                out.latency_us.push(now_us.saturating_sub(sent).min(u64::from(u32::MAX)) as u32);
                            }
                        }
                    }
                    Some("error") => out.rejected += 1,
                    _ => {}
                }
            }
        }
    }
    let _ = ws.close(None).await;
    out
}

fn rand_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    (h.finish() % 1_000_000) as f64 / 1_000_000.0
}
