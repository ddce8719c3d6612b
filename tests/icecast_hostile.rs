//! Icecast ingest against hostile clients: sources with wrong keys, bad
//! heads and bodies, stalls and floods; slow and stuck listeners; one
//! address holding every connection it may. In each, the victim plays on.

mod common;
mod hls_util;
mod icecast_util;

use base64::Engine;
use common::{metric_or_zero, TestServer};
use icecast_util::*;
use onair::icecast::demux::Format;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

/// Hostile sources while a victim channel plays: a wrong key, the wrong
/// user, a bad content type, a chunked body, an oversized head, a garbage
/// body, a source that stalls, a flood of title updates, a flood of key
/// guesses. Each is refused or closed with the status or at the time its
/// limit says; the victim never notices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sources_are_refused_or_closed_and_the_victim_plays_on() {
    let srv = TestServer::start().await;
    let victim = common::victim::Victim::start(&srv, 30).await;
    let key = basic(&srv.key);

    let (_, line) = source_head(
        srv.icecast,
        &put("/demo", &basic("not-the-key"), "audio/mpeg"),
    )
    .await;
    assert!(line.starts_with("HTTP/1.0 401"), "wrong key: {line}");
    let other = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{}", srv.key))
    );
    let (_, line) = source_head(srv.icecast, &put("/demo", &other, "audio/mpeg")).await;
    assert!(line.starts_with("HTTP/1.0 401"), "user admin: {line}");
    let (_, line) = source_head(srv.icecast, &put("/victim", &key, "audio/mpeg")).await;
    assert!(
        line.starts_with("HTTP/1.0 401"),
        "demo's key on the victim's mount: {line}"
    );
    let (_, line) = source_head(srv.icecast, &put("/demo", &key, "video/mp4")).await;
    assert!(line.starts_with("HTTP/1.0 415"), "content type: {line}");
    let chunked = put("/demo", &key, "audio/mpeg")
        .replace("\r\n\r\n", "\r\nTransfer-Encoding: chunked\r\n\r\n");
    let (_, line) = source_head(srv.icecast, &chunked).await;
    assert!(line.starts_with("HTTP/1.0 501"), "chunked: {line}");
    let huge = format!(
        "GET /demo HTTP/1.1\r\nX-Junk: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let (_, line) = source_head(srv.icecast, &huge).await;
    assert!(line.starts_with("HTTP/1.0 400"), "oversized head: {line}");
    assert_eq!(channel_json(&srv, "demo").await["live"], false);

    // Garbage after a valid head: closed once the framer gives up.
    let (mut s, line) = source_head(srv.icecast, &put("/demo", &key, "audio/mpeg")).await;
    assert!(line.starts_with("HTTP/1.1 100"), "{line}");
    let junk: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let started = Instant::now();
    let _ = s.write_all(&junk).await;
    let (_, closed) = read_for(&mut s, 5.0).await;
    assert!(closed, "a garbage body is closed");
    eprintln!("garbage source closed after {:?}", started.elapsed());
    wait_offline(&srv, "demo", Duration::from_secs(5)).await;
    assert!(
        metric_or_zero(
            srv.http,
            "onair_ingest_dropped_total{reason=\"icecast_undecodable\"}"
        )
        .await
            >= 1.0
    );

    // A source that sends a second of audio, then nothing.
    let (mut s, line) = source_head(srv.icecast, &put("/demo", &key, "audio/mpeg")).await;
    assert!(line.starts_with("HTTP/1.1 100"), "{line}");
    s.write_all(include_bytes!("data/sine.mp3")).await.unwrap();
    let last_byte = Instant::now();
    common::wait_for_live(srv.http, "demo").await;

    // While it is live: a script sending titles in a loop.
    let mut codes = Vec::new();
    for i in 0..14 {
        codes.push(
            set_song(srv.icecast, &srv.key, "/demo", &format!("track {i}"))
                .await
                .status,
        );
    }
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 10, "{codes:?}");
    assert!(codes[10..].iter().all(|c| *c == 429), "{codes:?}");

    let (_, closed) = read_for(&mut s, 15.0).await;
    let idle = last_byte.elapsed();
    assert!(closed, "a stalled source is closed");
    assert!(
        idle >= Duration::from_secs(9) && idle < Duration::from_secs(14),
        "closed {idle:?} after its last byte (limit 10 s)"
    );
    wait_offline(&srv, "demo", Duration::from_secs(5)).await;

    // Guessing keys: refused, then slowed.
    let mut codes = Vec::new();
    for i in 0..30 {
        let (_, line) = source_head(
            srv.icecast,
            &put("/demo", &basic(&format!("guess{i}")), "audio/mpeg"),
        )
        .await;
        codes.push(
            line.split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert!(codes.iter().any(|c| c == "429"), "{codes:?}");
    assert!(codes.iter().all(|c| c == "401" || c == "429"), "{codes:?}");

    victim
        .finish()
        .await
        .assert_kept_playing("hostile Icecast sources");
    srv.stop().await;
}

/// One listener never reads, one reads at half the stream's rate, a third
/// in real time. The third keeps getting the stream at the source's rate
/// and the source is never slowed; the slow one skips ahead (and what it
/// gets still parses as whole frames); the stuck one is dropped once its
/// socket has taken nothing for LISTENER_WRITE_TIMEOUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_stuck_listeners_do_not_slow_the_source_or_others() {
    let srv = TestServer::start().await;
    let _ff = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=660:sample_rate=48000",
            "-ac",
            "2",
        ])
        .args([
            "-t",
            "45",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "320k",
            "-f",
            "mp3",
        ])
        .arg(format!("icecast://source:{}@{}/demo", srv.key, srv.icecast))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    common::wait_for_live(srv.http, "demo").await;
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stuck = sock.connect(srv.icecast).await.unwrap();
    stuck
        .write_all(b"GET /demo HTTP/1.1\r\nHost: x\r\nIcy-MetaData: 1\r\n\r\n")
        .await
        .unwrap();
    let (_, mut slow, _) = listen(srv.icecast, "/demo", false).await;
    let slow_reader = tokio::spawn(async move {
        // 4 KiB every 200 ms: 20 000 bytes a second of a 40 000 stream.
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        let end = Instant::now() + Duration::from_secs(27);
        while Instant::now() < end {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        got
    });
    let (_, mut live, _) = listen(srv.icecast, "/demo", false).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let series = "onair_ingest_bytes_total{channel=\"demo\"}";
    let in0 = metric_or_zero(srv.http, series).await;
    let start = Instant::now();
    let (body, closed) = read_for(&mut live, 25.0).await;
    let secs = start.elapsed().as_secs_f64();
    let in1 = metric_or_zero(srv.http, series).await;
    assert!(!closed);
    // 320 kbit/s is 40 000 bytes a second.
    let rate = body.len() as f64 / secs;
    let hub_rate = (in1 - in0) / secs;
    let slow_got = slow_reader.await.unwrap();
    eprintln!(
        "live listener {rate:.0} B/s, hub AAC {hub_rate:.0} B/s over {secs:.1} s; slow listener {} bytes",
        slow_got.len()
    );
    assert!(rate > 36_000.0, "the reading listener got {rate:.0} B/s");
    // The hub gets the AAC made from it (128 kbit/s, 16 000 bytes a
    // second) in real time: nothing waited for the others.
    assert!(
        hub_rate > 15_000.0,
        "AAC reached the hub at {hub_rate:.0} B/s"
    );
    assert!(
        metric_or_zero(
            srv.http,
            "onair_limit_hits_total{limit=\"icecast_listener_lag\"}"
        )
        .await
            >= 1.0,
        "the slow listener fell behind the ring and skipped"
    );
    let (frames, _) = frames_in(Format::Mp3, &slow_got);
    let whole = frames * 1045; // a 320 kbit/s frame at 48 kHz is 960 bytes; some slack
    assert!(
        whole >= slow_got.len() * 8 / 10,
        "the slow listener's bytes are whole frames: {frames} frames in {} bytes",
        slow_got.len()
    );
    let listeners = metric_or_zero(
        srv.http,
        "onair_viewers{channel=\"demo\",protocol=\"icecast\"}",
    )
    .await;
    assert_eq!(
        listeners, 1.0,
        "the stuck (and the finished slow) listeners are gone"
    );
    drop(stuck);
    srv.stop().await;
}

/// One address opens as many connections as it may and sends nothing (a
/// slowloris): the next one from it is refused, a listener from another
/// address is served, and the idle ones are closed after HEAD_TIMEOUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_caps_per_address_and_head_timeout() {
    use onair::icecast::{HEAD_TIMEOUT, MAX_CONNECTIONS_PER_HOST};
    let srv = TestServer::start().await;
    let mut ff = ffmpeg_icecast(srv.icecast, &srv.key, "/demo", "mp3", 30);
    common::wait_for_live(srv.http, "demo").await;
    let opened = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..MAX_CONNECTIONS_PER_HOST - 1 {
        // ffmpeg's source holds one of 127.0.0.1's places.
        idle.push(TcpStream::connect(srv.icecast).await.unwrap());
    }
    let mut extra = TcpStream::connect(srv.icecast).await.unwrap();
    let (_, closed) = read_for(&mut extra, 2.0).await;
    assert!(
        closed,
        "connection {} from one address is refused",
        MAX_CONNECTIONS_PER_HOST + 1
    );
    assert!(
        metric_or_zero(
            srv.http,
            "onair_connections_refused_total{listener=\"icecast\"}"
        )
        .await
            >= 1.0
    );
    // Another address is served meanwhile.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = sock.connect(srv.icecast).await.unwrap();
    other
        .write_all(b"GET /demo HTTP/1.0\r\nIcy-MetaData: 1\r\n\r\n")
        .await
        .unwrap();
    let (body, _) = read_for(&mut other, 2.0).await;
    assert!(
        body.starts_with(b"HTTP/1.0 200"),
        "{}",
        String::from_utf8_lossy(&body[..body.len().min(200)])
    );
    assert!(body.len() > 20_000, "{} bytes in 2 s", body.len());
    // The silent ones are dropped once their head is overdue.
    let (_, closed) = read_for(
        &mut idle[0],
        (HEAD_TIMEOUT + Duration::from_secs(3)).as_secs_f64(),
    )
    .await;
    assert!(closed);
    let waited = opened.elapsed();
    assert!(
        waited >= HEAD_TIMEOUT && waited < HEAD_TIMEOUT + Duration::from_secs(4),
        "{waited:?}"
    );
    ff.kill().await.ok();
    srv.stop().await;
}
