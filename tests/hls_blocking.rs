//! LL-HLS blocking requests are capped per playlist and per client: one
//! client holding blocking reloads on every connection it can open gets
//! 503 + Retry-After past `MAX_BLOCKED_PER_HOST`, and a victim player on
//! another address keeps getting every part in time.

mod common;
mod hls_util;

use common::{ffmpeg_publish_sized, http, TestServer};
use hls_util::wait_for_playlist;
use onair::hls::live::MAX_BLOCKED_PER_HOST;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// Connections the attacker opens, all from 127.0.0.2: well past its cap,
/// below any per-address connection cap.
const ATTACK_CONNECTIONS: usize = 40;
const _: () = assert!(
    MAX_BLOCKED_PER_HOST < ATTACK_CONNECTIONS,
    "the attack must pass the cap"
);

#[derive(Default)]
struct AttackStats {
    sent: AtomicU64,
    answered_200: AtomicU64,
    refused_503: AtomicU64,
    /// 503s that carried Retry-After.
    with_retry_after: AtomicU64,
    other: AtomicU64,
}

/// One keep-alive request/response on `conn`: (status, headers, body).
async fn exchange(
    conn: &mut BufReader<TcpStream>,
    path: &str,
) -> std::io::Result<(u16, Vec<String>, Vec<u8>)> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: attacker\r\nUser-Agent: attacker\r\n\r\n");
    conn.get_mut().write_all(req.as_bytes()).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if conn.read_line(&mut h).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let h = h.trim_end().to_string();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        headers.push(h.to_ascii_lowercase());
    }
    let mut body = vec![0; len];
    conn.read_exact(&mut body).await?;
    Ok((status, headers, body))
}

/// The newest msn a playlist lists (complete or in progress).
fn last_msn(text: &str) -> u64 {
    let p = hls_util::parse(text);
    p.segments.last().map_or(p.media_sequence, |s| s.msn)
}

/// One attacking connection from 127.0.0.2: asks for the segment two
/// ahead of the newest (the furthest the spec lets a request block on),
/// again as soon as it is answered; after a 503 it tries again 200 ms
/// later, not after the Retry-After it was given.
async fn attack(server: SocketAddr, mut msn: u64, until: Instant, stats: Arc<AttackStats>) {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut conn = BufReader::new(sock.connect(server).await.unwrap());
    while Instant::now() < until {
        stats.sent.fetch_add(1, Ordering::Relaxed);
        let path = format!("/hls/demo/index.m3u8?_HLS_msn={}", msn + 2);
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, exchange(&mut conn, &path)).await {
            Err(_) => return, // still held when the attack ends
            Ok(Err(e)) => panic!("attacker connection failed: {e}"),
            Ok(Ok((200, _, body))) => {
                stats.answered_200.fetch_add(1, Ordering::Relaxed);
                msn = last_msn(&String::from_utf8_lossy(&body));
            }
            Ok(Ok((503, headers, _))) => {
                stats.refused_503.fetch_add(1, Ordering::Relaxed);
                if headers.iter().any(|h| h.starts_with("retry-after: ")) {
                    stats.with_retry_after.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(Ok((status, _, body))) => {
                stats.other.fetch_add(1, Ordering::Relaxed);
                eprintln!("attacker got {status}: {}", String::from_utf8_lossy(&body));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// A labelled value from /metrics, 0 when absent.
async fn labelled_metric(addr: SocketAddr, line_start: &str) -> f64 {
    let text = http(addr, "GET", "/metrics", &[], b"").await.text();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_holding_blocking_reloads_does_not_starve_another_player() {
    let srv = TestServer::start().await;
    let _ff = ffmpeg_publish_sized(&srv.rtmp_url(&srv.key), 40, "640x360", &["-bf", "0"]);
    let first = wait_for_playlist(srv.http, "demo").await;

    // The victim: a plain-HTTP LL-HLS player (blocking reloads, every part
    // in order) on 127.0.0.1, measured once the attack runs.
    let attack_for = Duration::from_secs(15);
    let measure_from = Instant::now() + Duration::from_secs(3);
    let addr = srv.http;
    let victim = tokio::spawn(async move {
        onair_loadtest::hls::watch(
            addr,
            "/hls/demo/index.m3u8",
            Duration::from_secs(3) + attack_for,
            "victim".into(),
            Some(measure_from),
        )
        .await
    });
    tokio::time::sleep_until(measure_from.into()).await;

    let stats = Arc::new(AttackStats::default());
    let until = Instant::now() + attack_for;
    let msn = last_msn(&first);
    let attackers: Vec<_> = (0..ATTACK_CONNECTIONS)
        .map(|_| tokio::spawn(attack(srv.http, msn, until, stats.clone())))
        .collect();
    // Mid-attack: the attacker holds its cap, no more.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ch = MAX_BLOCKED_PER_HOST;
    let hits = labelled_metric(
        srv.http,
        "onair_limit_hits_total{limit=\"max_blocked_per_host\"}",
    )
    .await;
    for a in attackers {
        a.await.unwrap();
    }
    let got = victim.await.unwrap();

    let s = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "attack: {ATTACK_CONNECTIONS} connections from one address, {} blocking reloads sent, {} answered 200, {} refused 503 ({} with Retry-After), {} other; cap {ch} per host",
        s(&stats.sent),
        s(&stats.answered_200),
        s(&stats.refused_503),
        s(&stats.with_retry_after),
        s(&stats.other)
    );
    println!(
        "victim (plain HTTP LL-HLS): {} parts, {} playlists, {} errors, {} stalls over {} ms, longest gap between parts {} ms",
        got.parts,
        got.playlists,
        got.errors,
        got.stalls,
        onair_loadtest::hls::STALL_MS,
        got.longest_gap_ms
    );
    assert!(hits >= 1.0, "the per-host cap was never reached");
    assert!(
        s(&stats.refused_503) > 0 && s(&stats.with_retry_after) == s(&stats.refused_503),
        "past the cap: 503 with Retry-After"
    );
    assert!(
        s(&stats.answered_200) > 0,
        "the requests within the cap are served"
    );
    assert_eq!(s(&stats.other), 0);
    assert_eq!(got.errors, 0, "victim: {:?}", got.first_error);
    assert_eq!(got.stalls, 0, "victim stalled: {got:?}");
    // 200 ms parts for the measured 15 s: at least 80 % of them arrived.
    let expected = attack_for.as_secs_f64() / 0.2;
    assert!(
        got.parts as f64 >= 0.8 * expected,
        "victim got {} parts of ~{expected}",
        got.parts
    );
}
