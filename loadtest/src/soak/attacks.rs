//! The attacks a soak runs in rotation, one at a time, each for a bounded
//! time and from its own loopback addresses (127.0.X.Y: the server's
//! per-address limits see a stranger, not the load's own clients). Each
//! returns what it got, as JSON, for the summary.

use crate::http::{connect_from, try_http_from};
use crate::whip::RawVideo;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Slowloris connections per round, spread over [`SLOWLORIS_HOSTS`]
/// addresses (the suite's test uses 300 over 30; a soak repeats it).
pub const SLOWLORIS_CONNS: usize = 100;
const SLOWLORIS_HOSTS: u8 = 10;
/// Connections a flood opens from one address: past the server's 256 per
/// host, well within this tool's raised descriptor limit.
pub const FLOOD_CONNS: usize = 300;
/// Logins in flight at once in a spray (the suite's test uses 1 000 in
/// waves; this keeps the tool's share of the core small).
pub const SPRAY_CONCURRENCY: usize = 64;
/// WHEP offers a second from the never-connecting peer: twice the
/// server's default offer rate, so its limit is met.
const UNCONNECTED_OFFERS_PER_SEC: u64 = 10;
/// PATCHes per accepted session: past the server's 32 candidates.
const TRICKLES_PER_SESSION: usize = 40;
/// Frames a chat flood sends at most (it is closed long before).
const CHAT_FLOOD_MAX: u64 = 100_000;
/// TURN clients asking for forbidden peers at once.
const TURN_CLIENTS: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attack {
    /// WHIP publisher sending malformed H.264 RTP (STAP-A `18 00 00 00`...).
    WhipMalformed,
    /// WHIP publisher sending FU-A fragments that never end.
    EndlessFuA,
    /// Connections that send half a request line, then a byte every 2 s.
    Slowloris,
    /// 300 connections from one address, held.
    ConnFlood,
    /// Concurrent wrong-password logins for a victim account.
    LoginSpray,
    /// WHEP offers that never do ICE, each then flooded with trickle PATCHes.
    WhepUnconnected,
    /// A chat socket sending text and ping frames as fast as it can.
    ChatFlood,
    /// Raw RTMP: garbage, an oversized message, interleaved chunk streams,
    /// an absurd chunk size, an idle connection.
    RtmpRaw,
    /// TURN CreatePermission and ChannelBind for loopback and private peers
    /// (needs --turn and --turn-secret).
    TurnForbidden,
}

impl Attack {
    pub const ALL: [Attack; 9] = [
        Attack::WhipMalformed,
        Attack::Slowloris,
        Attack::LoginSpray,
        Attack::EndlessFuA,
        Attack::ConnFlood,
        Attack::WhepUnconnected,
        Attack::ChatFlood,
        Attack::RtmpRaw,
        Attack::TurnForbidden,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Attack::WhipMalformed => "whip-malformed",
            Attack::EndlessFuA => "endless-fu-a",
            Attack::Slowloris => "slowloris",
            Attack::ConnFlood => "conn-flood",
            Attack::LoginSpray => "login-spray",
            Attack::WhepUnconnected => "whep-unconnected",
            Attack::ChatFlood => "chat-flood",
            Attack::RtmpRaw => "rtmp-raw",
            Attack::TurnForbidden => "turn-forbidden",
        }
    }

    /// Its own block of loopback addresses, 127.N.0.0/16.
    fn block(self) -> u8 {
        10 + Attack::ALL.iter().position(|a| *a == self).unwrap_or(0) as u8
    }

    fn addr(self, i: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.block(), 0, 1 + i))
    }
}

/// What the attacks need to know.
#[derive(Clone)]
pub struct Target {
    pub http: SocketAddr,
    pub rtmp: SocketAddr,
    /// The attacker's own channel's stream key (hostile WHIP).
    pub attacker_key: String,
    /// The channel the victim watches: offers and chat floods go there.
    pub victim_channel: String,
    /// The account a login spray guesses at, and its real password: its
    /// owner signs in during the spray.
    pub owner: (String, String),
    pub owner_from: IpAddr,
    pub flooder_token: String,
    pub turn: Option<(SocketAddr, String)>,
}

pub async fn run(a: Attack, t: &Target, dur: Duration) -> Value {
    match a {
        Attack::WhipMalformed => whip_raw(t, malformed(), 30, dur).await,
        Attack::EndlessFuA => whip_raw(t, endless_fu_a(), 30, dur).await,
        Attack::Slowloris => slowloris(a, t.http, dur).await,
        Attack::ConnFlood => flood(a, t.http, dur).await,
        Attack::LoginSpray => login_spray(a, t, dur).await,
        Attack::WhepUnconnected => whep_unconnected(a, t, dur).await,
        Attack::ChatFlood => chat_flood(a, t, dur).await,
        Attack::RtmpRaw => rtmp_raw(a, t, dur).await,
        Attack::TurnForbidden => match &t.turn {
            Some((server, secret)) => turn(a, *server, secret, dur).await,
            None => json!({"skipped": "no --turn"}),
        },
    }
}

fn b(x: &[u8]) -> Bytes {
    Bytes::copy_from_slice(x)
}

/// The malformed payloads of `tests/hostile_webrtc.rs`, looped.
fn malformed() -> RawVideo {
    RawVideo {
        frames: vec![
            vec![(b(&[0x18, 0, 0, 0]), true)],
            vec![(b(&[0x78, 0xff, 0xff, 0x65, 1]), true)],
            vec![(b(&[0x7c, 0x05, 1, 2]), false), (b(&[0x7c]), true)],
            vec![
                (b(&[0x1a, 0, 0]), false),
                (b(&[0x1f]), false),
                (b(&[0xe5, 1]), true),
            ],
            vec![(Bytes::new(), false), (Bytes::from(vec![0x41; 9000]), true)],
        ],
        ts_step: 3000,
    }
}

/// An FU-A start, then middles that never end, all on one timestamp: 30
/// frames of 40 packets a second, about 1.4 MB/s.
fn endless_fu_a() -> RawVideo {
    let mut start = vec![0x7c, 0x85];
    start.resize(1150, 0xab);
    let mut middle = vec![0x7c, 0x05];
    middle.resize(1150, 0xcd);
    let middles = vec![(Bytes::from(middle), false); 40];
    let mut first = middles.clone();
    first[0] = (Bytes::from(start), false);
    let mut frames = vec![first];
    frames.extend(std::iter::repeat_n(middles, 59));
    RawVideo { frames, ts_step: 0 }
}

async fn whip_raw(t: &Target, raw: RawVideo, fps: u32, dur: Duration) -> Value {
    let r = crate::whip::publish(
        t.http,
        crate::whip::PublishOptions {
            key: t.attacker_key.clone(),
            video: Vec::new(),
            fps,
            audio: Vec::new(),
            duration: dur,
            stamp: false,
            raw: Some(raw),
            on_session: None,
        },
    )
    .await;
    match r {
        Ok(p) => json!({
            "status": p.status,
            "connected": p.connected_after.is_some(),
            "mb_sent": p.bytes as f64 / 1e6,
            "frames": p.video_frames,
            "error": (!p.error.is_empty()).then_some(p.error),
        }),
        Err(e) => json!({"error": e.to_string()}),
    }
}

/// Whether the server closed `s` (read returned end or an error) within
/// `wait`; data it sends is read and dropped.
async fn closed_within(s: &mut tokio::net::TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 512];
    let until = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(until, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

async fn slowloris(a: Attack, http: SocketAddr, dur: Duration) -> Value {
    let started = Instant::now();
    let closed = Arc::new(AtomicU64::new(0));
    let slowest_ms = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(SLOWLORIS_CONNS);
    for i in 0..SLOWLORIS_CONNS {
        let from = a.addr(i as u8 % SLOWLORIS_HOSTS);
        let (closed, slowest) = (closed.clone(), slowest_ms.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(mut s) = connect_from(Some(from), http).await else {
                return false;
            };
            let opened = Instant::now();
            if s.write_all(b"GET /api/channels HTTP/1.1\r\nHost: x\r\nX-a: ")
                .await
                .is_err()
            {
                return true;
            }
            let until = started + dur;
            while Instant::now() < until {
                if closed_within(&mut s, Duration::from_secs(2)).await
                    || s.write_all(b"a").await.is_err()
                {
                    closed.fetch_add(1, Ordering::Relaxed);
                    slowest.fetch_max(opened.elapsed().as_millis() as u64, Ordering::Relaxed);
                    return true;
                }
            }
            true
        }));
    }
    let mut opened = 0;
    for t in tasks {
        opened += usize::from(t.await.unwrap_or(false));
    }
    json!({
        "connections": opened,
        "closed_by_server": closed.load(Ordering::Relaxed),
        "last_closed_after_ms": slowest_ms.load(Ordering::Relaxed),
    })
}

async fn flood(a: Attack, http: SocketAddr, dur: Duration) -> Value {
    let from = a.addr(0);
    let mut held = Vec::with_capacity(FLOOD_CONNS);
    let mut failed = 0;
    for _ in 0..FLOOD_CONNS {
        match connect_from(Some(from), http).await {
            Ok(s) => held.push(s),
            Err(_) => failed += 1,
        }
    }
    // Refused connections are closed by the server at once.
    let mut refused = 0;
    for s in held.iter_mut() {
        refused += usize::from(closed_within(s, Duration::from_millis(5)).await);
    }
    // A bystander from another address is served meanwhile.
    let t0 = Instant::now();
    let bystander = try_http_from(Some(a.addr(1)), http, "GET", "/healthz", &[], b"")
        .await
        .map(|r| r.status)
        .unwrap_or(0);
    let bystander_ms = t0.elapsed().as_secs_f64() * 1000.0;
    tokio::time::sleep(dur.saturating_sub(Duration::from_secs(1))).await;
    drop(held);
    json!({
        "connections": FLOOD_CONNS - failed,
        "connect_failed": failed,
        "refused": refused,
        "bystander_status": bystander,
        "bystander_ms": bystander_ms,
    })
}

async fn login(from: IpAddr, http: SocketAddr, user: &str, password: &str) -> (u16, Duration) {
    let body = json!({"username": user, "password": password}).to_string();
    let t0 = Instant::now();
    let status = try_http_from(
        Some(from),
        http,
        "POST",
        "/api/auth/login",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await
    .map(|r| r.status)
    .unwrap_or(0);
    (status, t0.elapsed())
}

async fn login_spray(a: Attack, t: &Target, dur: Duration) -> Value {
    let until = Instant::now() + dur;
    let http = t.http;
    let user = t.owner.0.clone();
    let counts: Arc<[AtomicU64; 6]> = Arc::new(Default::default());
    let mut sprayers = Vec::with_capacity(SPRAY_CONCURRENCY);
    for i in 0..SPRAY_CONCURRENCY {
        let (user, counts) = (user.clone(), counts.clone());
        // Eight addresses, as a small botnet would.
        let from = a.addr(i as u8 % 8);
        sprayers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                n += 1;
                let (status, _) = login(from, http, &user, &format!("guess-{i}-{n}")).await;
                let slot = match status {
                    200 => 0,
                    401 => 1,
                    429 => 2,
                    503 => 3,
                    0 => 4,
                    _ => 5,
                };
                counts[slot].fetch_add(1, Ordering::Relaxed);
                if status == 429 || status == 503 {
                    // Refused at once: do not spin the tool's core.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    // The owner signs in now and then from their own address.
    let (mut ok, mut tries, mut slowest) = (0, 0, Duration::ZERO);
    while Instant::now() + Duration::from_secs(2) < until {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (status, took) = login(t.owner_from, http, &t.owner.0, &t.owner.1).await;
        tries += 1;
        ok += usize::from(status == 200);
        slowest = slowest.max(took);
    }
    for s in sprayers {
        let _ = s.await;
    }
    let c: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    json!({
        "spray_200": c[0], "spray_401": c[1], "spray_429": c[2], "spray_503": c[3],
        "spray_failed": c[4], "spray_other": c[5],
        "owner_logins": tries, "owner_ok": ok,
        "owner_slowest_ms": slowest.as_secs_f64() * 1000.0,
    })
}

/// A WHEP offer as a browser would make it, with a fixed ICE ufrag: the
/// peer never answers a check, so it never connects.
fn offer() -> String {
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=ice-ufrag:soak\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\na=setup:actpass\r\n\
a=rtcp-mux\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
        .to_string()
}

async fn whep_unconnected(a: Attack, t: &Target, dur: Duration) -> Value {
    let from = Some(a.addr(0));
    let until = Instant::now() + dur;
    let path = format!("/whep/{}", t.victim_channel);
    let sdp = offer();
    let (mut accepted, mut limited, mut other) = (0u64, 0u64, 0u64);
    let (mut patches, mut patch_limited) = (0u64, 0u64);
    let every = Duration::from_millis(1000 / UNCONNECTED_OFFERS_PER_SEC);
    let mut next = tokio::time::Instant::now();
    while Instant::now() < until {
        next += every;
        let r = try_http_from(
            from,
            t.http,
            "POST",
            &path,
            &[("Content-Type", "application/sdp")],
            sdp.as_bytes(),
        )
        .await;
        match r.as_ref().map(|r| r.status) {
            Ok(201) => {
                accepted += 1;
                // A trickle flood on the first session of each second.
                let location = r
                    .ok()
                    .and_then(|r| r.header("location").map(str::to_string));
                if let Some(loc) = location.filter(|_| accepted % UNCONNECTED_OFFERS_PER_SEC == 1) {
                    for i in 0..TRICKLES_PER_SESSION {
                        let frag = format!(
                            "a=candidate:{i} 1 udp 2122260223 127.0.0.1 {} typ host\r\n",
                            40_000 + i
                        );
                        let s = try_http_from(
                            from,
                            t.http,
                            "PATCH",
                            &loc,
                            &[("Content-Type", "application/trickle-ice-sdpfrag")],
                            frag.as_bytes(),
                        )
                        .await
                        .map(|r| r.status)
                        .unwrap_or(0);
                        patches += 1;
                        patch_limited += u64::from(s == 429);
                    }
                }
            }
            Ok(429) => limited += 1,
            _ => other += 1,
        }
        tokio::time::sleep_until(next).await;
    }
    json!({
        "offers_accepted": accepted, "offers_429": limited, "offers_other": other,
        "patches": patches, "patches_429": patch_limited,
    })
}

async fn chat_flood(a: Attack, t: &Target, dur: Duration) -> Value {
    let url = format!(
        "ws://{}/ws/{}?token={}",
        t.http, t.victim_channel, t.flooder_token
    );
    let stream = match connect_from(Some(a.addr(0)), t.http).await {
        Ok(s) => s,
        Err(e) => return json!({"error": e.to_string()}),
    };
    let ws = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(url, stream),
    )
    .await;
    let ws = match ws {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => return json!({"error": e.to_string()}),
        Err(_) => return json!({"error": "connect timed out"}),
    };
    use tokio_tungstenite::tungstenite::Message;
    let (mut tx, mut rx) = ws.split();
    let started = Instant::now();
    let until = tokio::time::Instant::now() + dur;
    let reader = tokio::spawn(async move {
        let mut close = None;
        loop {
            match tokio::time::timeout_at(until, rx.next()).await {
                Ok(Some(Ok(Message::Close(f)))) => {
                    close = f.map(|f| u16::from(f.code));
                    break;
                }
                Ok(Some(Ok(_))) => {}
                _ => break,
            }
        }
        (close, started.elapsed())
    });
    let mut sent = 0u64;
    while sent < CHAT_FLOOD_MAX && tokio::time::Instant::now() < until && !reader.is_finished() {
        let m = if sent.is_multiple_of(2) {
            Message::Text(
                json!({"type": "chat", "text": format!("flood {sent}")})
                    .to_string()
                    .into(),
            )
        } else {
            Message::Ping(vec![1, 2, 3].into())
        };
        match tokio::time::timeout_at(until, tx.send(m)).await {
            Ok(Ok(())) => sent += 1,
            _ => break,
        }
    }
    let (close, after) = reader.await.unwrap_or((None, started.elapsed()));
    json!({
        "frames_sent": sent,
        "close_code": close,
        "closed_after_ms": close.map(|_| after.as_millis() as u64),
    })
}

async fn rtmp_raw(a: Attack, t: &Target, dur: Duration) -> Value {
    use crate::rtmp_raw::RtmpAttack;
    let mut tasks = Vec::new();
    for (i, kind) in RtmpAttack::ALL.into_iter().enumerate() {
        let (from, to) = (a.addr(i as u8), t.rtmp);
        tasks.push((
            kind,
            tokio::spawn(async move { crate::rtmp_raw::attack(Some(from), to, kind, dur).await }),
        ));
    }
    let mut out = serde_json::Map::new();
    for (kind, task) in tasks {
        let o = task.await.unwrap_or_default();
        out.insert(
            format!("{kind:?}"),
            json!({"closed_after_ms": o.closed_after_ms, "mb": o.bytes as f64 / 1e6, "error": o.error}),
        );
    }
    Value::Object(out)
}

async fn turn(a: Attack, server: SocketAddr, secret: &str, dur: Duration) -> Value {
    let mut tasks = Vec::new();
    for i in 0..TURN_CLIENTS {
        let (from, secret) = (a.addr(i), secret.to_string());
        tasks.push(tokio::spawn(async move {
            crate::turn_raw::forbidden_peers(from, server, &secret, dur).await
        }));
    }
    let (mut requests, mut refused, mut granted, mut other, mut errors) = (0, 0, 0, 0, Vec::new());
    for t in tasks {
        if let Ok(o) = t.await {
            requests += o.requests;
            refused += o.refused_403;
            granted += o.granted;
            other += o.other;
            errors.extend(o.error);
        }
    }
    json!({
        "requests": requests, "refused_403": refused, "granted": granted,
        "other": other, "errors": errors,
    })
}
