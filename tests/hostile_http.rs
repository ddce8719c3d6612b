//! Hostile HTTP clients: slowloris and a connection flood from one address.
//! Each runs while a victim channel is watched (tests/common/victim.rs), and
//! a client at another address must still be served.

mod common;

use common::victim::Victim;
use common::TestServer;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A TCP connection to `to` from the loopback address `from` (every
/// 127.0.0.0/8 address is this host, so tests can be several clients).
async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(from, 0))?;
    s.connect(to).await
}

/// `GET /healthz` from `from`, answered in full, with how long it took.
async fn healthz_from(from: IpAddr, to: SocketAddr) -> Result<Duration, String> {
    let t = Instant::now();
    let mut s = connect_from(from, to).await.map_err(|e| e.to_string())?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut body))
        .await
        .map_err(|_| "no answer in 5 s".to_string())?
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&body);
    if text.starts_with("HTTP/1.1 200") {
        Ok(t.elapsed())
    } else {
        Err(format!("answered {text:?}"))
    }
}

/// Whether the server has closed `s` (EOF or reset) within `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline.into(), s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A 408 or other answer before the close.
            Ok(Ok(_)) => continue,
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn slowloris_connections_are_closed_and_nobody_notices() {
    let srv = TestServer::start().await;
    let victim = Victim::start(&srv, 16).await;
    // 300 connections from 30 addresses, each sending half a request line
    // and then a byte every 2 s, as slowloris does.
    let mut conns = Vec::new();
    for i in 0..300u32 {
        let from = ip(&format!("127.0.1.{}", 1 + i % 30));
        let mut s = connect_from(from, srv.http).await.expect("connect");
        s.write_all(b"GET /api/channels HTTP/1.1\r\nHost: x\r\nX-a: ")
            .await
            .unwrap();
        conns.push(s);
    }
    let start = Instant::now();
    let trickle = async {
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            for s in conns.iter_mut() {
                let _ = s.write_all(b"a").await;
            }
        }
    };
    let served = async {
        let mut worst = Duration::ZERO;
        for _ in 0..12 {
            worst = worst.max(
                healthz_from(ip("127.0.0.9"), srv.http)
                    .await
                    .expect("served"),
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        worst
    };
    let ((), worst) = tokio::join!(trickle, served);
    let mut open = 0;
    for s in conns.iter_mut() {
        if !closed_within(s, Duration::from_secs(1)).await {
            open += 1;
        }
    }
    println!(
        "slowloris: {open} of 300 still open {:?} after the first byte; a bystander's slowest answer {worst:?}",
        start.elapsed()
    );
    assert_eq!(open, 0, "half-sent requests outlived the header timeout");
    let report = victim.finish().await;
    report.assert_kept_playing("slowloris, 300 connections from 30 addresses");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_flood_from_one_address_is_capped() {
    let srv = TestServer::start().await;
    let victim = Victim::start(&srv, 12).await;
    let flooder = ip("127.0.2.1");
    // Well past the per-host cap: the extra connections are closed at once.
    let mut conns = Vec::new();
    for _ in 0..(onair::http::listen::MAX_PER_HOST + 100) {
        conns.push(connect_from(flooder, srv.http).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut refused = 0;
    for s in conns.iter_mut() {
        if closed_within(s, Duration::from_millis(20)).await {
            refused += 1;
        }
    }
    println!("flood: {refused} of {} connections refused", conns.len());
    assert!(refused >= 100, "only {refused} refused past the cap");
    assert!(refused <= 100 + 5, "{refused} refused: the cap is too low");
    // The flooder's own new connections get nothing while it holds the cap;
    // another address is served at once.
    assert!(healthz_from(flooder, srv.http).await.is_err());
    let t = healthz_from(ip("127.0.2.2"), srv.http)
        .await
        .expect("a bystander is served");
    println!("flood: a bystander answered in {t:?}");
    let refusals = common::metric_or_zero(
        srv.http,
        "onair_connections_refused_total{listener=\"http\"}",
    )
    .await;
    assert!(refusals >= 100.0);
    let report = victim.finish().await;
    report.assert_kept_playing("a connection flood from one address");
    // Letting go gives the places back.
    drop(conns);
    tokio::time::sleep(Duration::from_millis(300)).await;
    healthz_from(flooder, srv.http)
        .await
        .expect("served again after the flood");
    srv.stop().await;
}
