//! Icecast-compatible ingest with real clients: ffmpeg's `icecast://`
//! output (MP3, ADTS AAC, Ogg/Opus), a legacy `SOURCE` client, metadata
//! updates reaching chat, plain listeners (a raw HTTP client reading ICY
//! blocks, and ffprobe), a WebRTC viewer decoding the Opus, the LL-HLS
//! playlist and the recording (ffprobe).

mod common;
mod hls_util;

use base64::Engine;
use common::{get, http, metric_or_zero, ws_connect, ws_wait, TestServer};
use onair::icecast::demux::{Audio, Demuxer, Format};
use onair_loadtest::whep::{watch, ViewerOptions};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// ffmpeg sending a 660 Hz tone to `mount` on the Icecast port for `secs`,
/// in the format `codec` names.
fn ffmpeg_icecast(addr: SocketAddr, key: &str, mount: &str, codec: &str, secs: u32) -> Child {
    let (rate, args): (&str, &[&str]) = match codec {
        "mp3" => (
            "44100",
            &["-c:a", "libmp3lame", "-b:a", "128k", "-f", "mp3"],
        ),
        "aac" => (
            "48000",
            &[
                "-c:a",
                "aac",
                "-b:a",
                "128k",
                "-content_type",
                "audio/aac",
                "-f",
                "adts",
            ],
        ),
        "opus" => (
            "48000",
            &[
                "-c:a",
                "libopus",
                "-b:a",
                "96k",
                "-content_type",
                "application/ogg",
                "-page_duration",
                "20000",
                "-f",
                "ogg",
            ],
        ),
        other => panic!("no such codec {other}"),
    };
    let source = format!("sine=frequency=660:sample_rate={rate}");
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", &source, "-ac", "2"])
        .args(["-t", &secs.to_string()])
        .args(args)
        .args(["-ice_name", "Night Shift", "-ice_description", "Deep cuts"])
        .arg(format!("icecast://source:{key}@{addr}{mount}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg is installed")
}

fn basic(key: &str) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("source:{key}"));
    format!("Basic {b}")
}

/// `GET /admin/metadata` as BUTT sends it.
async fn set_song(addr: SocketAddr, key: &str, mount: &str, song: &str) -> common::HttpResponse {
    let q: String = song
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let auth = basic(key);
    http(
        addr,
        "GET",
        &format!("/admin/metadata?mount={mount}&mode=updinfo&song={q}"),
        &[("Authorization", &auth), ("User-Agent", "butt 0.1.40")],
        b"",
    )
    .await
}

/// A plain listener: sends the request, returns the response head and
/// the connection positioned at the body.
async fn listen(addr: SocketAddr, path: &str, icy: bool) -> (String, TcpStream, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let icy = if icy { "Icy-MetaData: 1\r\n" } else { "" };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: VLC/3.0.18 LibVLC/3.0.18\r\n{icy}\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("an answer")
            .unwrap();
        assert!(
            n > 0,
            "closed before the head: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).into_owned();
            return (head, s, buf[p + 4..].to_vec());
        }
    }
}

/// Reads `secs` of an ICY stream: the audio bytes and every title block.
async fn read_icy(
    s: &mut TcpStream,
    mut buf: Vec<u8>,
    metaint: usize,
    secs: f64,
) -> (Vec<u8>, Vec<String>) {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut chunk = [0u8; 8192];
    while Instant::now() < end {
        match tokio::time::timeout_at(end.into(), s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let (mut audio, mut titles) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i + metaint < buf.len() {
        audio.extend_from_slice(&buf[i..i + metaint]);
        i += metaint;
        let len = usize::from(buf[i]) * 16;
        if i + 1 + len > buf.len() {
            break;
        }
        if len > 0 {
            let text = String::from_utf8_lossy(&buf[i + 1..i + 1 + len]);
            titles.push(text.trim_end_matches('\0').to_string());
        }
        i += 1 + len;
    }
    (audio, titles)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        })
        .map(|(_, v)| v.trim())
}

/// Samples of audio in `bytes` of a passthrough stream, by our own framer.
fn frames_in(format: Format, bytes: &[u8]) -> (usize, u64) {
    let mut d = Demuxer::new(format);
    let mut out = Vec::new();
    let _ = d.push(bytes, &mut out);
    let samples = out
        .iter()
        .map(|f| match &f.audio {
            Audio::Mp3(h) => u64::from(h.samples),
            Audio::Aac { .. } => 1024,
            Audio::Opus { packets, .. } => packets.iter().map(|p| u64::from(p.1)).sum(),
            Audio::None => 0,
        })
        .sum();
    (out.len(), samples)
}

/// A WebRTC viewer for `secs`; returns the RMS of the Opus it decoded
/// (0 to 1) and how many packets it got.
async fn webrtc_rms(http: SocketAddr, channel: &str, secs: u64) -> (f64, usize) {
    let got = watch(
        http,
        channel,
        Duration::from_secs(secs),
        ViewerOptions::default(),
    )
    .await
    .expect("WHEP viewer");
    let mut dec = opus::Decoder::new(48_000, opus::Channels::Stereo).unwrap();
    let mut pcm = vec![0f32; 5760 * 2];
    let (mut sum, mut n) = (0f64, 0usize);
    for p in &got.audio {
        if let Ok(k) = dec.decode_float(&p.payload, &mut pcm, false) {
            for x in &pcm[..k * 2] {
                sum += f64::from(*x) * f64::from(*x);
                n += 1;
            }
        }
    }
    ((sum / n.max(1) as f64).sqrt(), got.audio.len())
}

/// ffprobe's view of a URL: `(codec_type, codec_name)` of each stream.
async fn probe(url: &str) -> Vec<(String, String)> {
    let (streams, _) = hls_util::ffprobe(url).await;
    streams.into_iter().map(|(t, c, _, _)| (t, c)).collect()
}

async fn channel_json(srv: &TestServer, name: &str) -> Value {
    get(srv.http, &format!("/api/channels/{name}")).await.json()
}

async fn wait_offline(srv: &TestServer, name: &str, limit: Duration) {
    let start = Instant::now();
    while channel_json(srv, name).await["live"] == true {
        assert!(start.elapsed() < limit, "{name} still live after {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The newest broadcast of `channel` once it has ended.
async fn ended_broadcast(srv: &TestServer, channel: &str) -> Value {
    let start = Instant::now();
    loop {
        let r = get(srv.http, &format!("/api/channels/{channel}/broadcasts"))
            .await
            .json();
        if let Some(item) = r["items"].get(0).filter(|i| i["ended_at"].is_number()) {
            return item.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no ended broadcast: {r}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// ffmpeg streams MP3 with `ice-name`: the channel is live under that
/// title and has no video; a metadata update reaches a chat WebSocket, the
/// channel API and a plain listener's ICY blocks; the listener's bytes are
/// MP3 frames and ffprobe reads them; a WebRTC viewer hears the tone; the
/// LL-HLS playlist and then the recording carry AAC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mp3_source_reaches_listeners_chat_webrtc_hls_and_the_recording() {
    let srv = TestServer::start().await;
    let mut ff = ffmpeg_icecast(srv.icecast, &srv.key, "/demo.mp3", "mp3", 16);
    common::wait_for_live(srv.http, "demo").await;
    let c = channel_json(&srv, "demo").await;
    assert_eq!(c["title"], "Night Shift", "ice-name sets the title: {c}");
    assert_eq!(c["description"], "Deep cuts", "{c}");
    assert_eq!(c["video"], false, "{c}");

    let mut ws = ws_connect(srv.http, "/ws/demo", &[]).await;
    let (head, mut listener, rest) = listen(srv.icecast, "/demo", true).await;
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert_eq!(header(&head, "content-type"), Some("audio/mpeg"), "{head}");
    assert_eq!(header(&head, "icy-name"), Some("Night Shift"), "{head}");
    let metaint: usize = header(&head, "icy-metaint").expect(&head).parse().unwrap();
    assert_eq!(metaint, 16_000);
    let viewer = tokio::spawn(webrtc_rms(srv.http, "demo", 5));

    tokio::time::sleep(Duration::from_millis(500)).await;
    let title = "Daft Punk – Veridis Quo (édit)";
    let r = set_song(srv.icecast, &srv.key, "/demo", title).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("<return>1</return>"), "{}", r.text());
    let ev = ws_wait(&mut ws, Duration::from_secs(5), |v| {
        v["type"] == "now_playing"
    })
    .await
    .expect("a now_playing event on the chat socket");
    assert_eq!(ev["title"], title);
    assert_eq!(channel_json(&srv, "demo").await["now_playing"], title);

    // 128 kbit/s is 16 000 bytes a second: about one block a second.
    let (audio, titles) = read_icy(&mut listener, rest, metaint, 4.0).await;
    assert!(
        titles
            .iter()
            .any(|t| t == &format!("StreamTitle='{title}';")),
        "the title reached the listener: {titles:?}"
    );
    let (frames, samples) = frames_in(Format::Mp3, &audio);
    assert!(
        frames > 100 && samples > 3 * 44_100,
        "{frames} MP3 frames, {samples} samples"
    );
    let viewers = channel_json(&srv, "demo").await["viewers"]
        .as_u64()
        .unwrap();
    assert!(viewers >= 1, "the listener counts as a viewer: {viewers}");
    let counted = metric_or_zero(
        srv.http,
        "onair_viewers{channel=\"demo\",protocol=\"icecast\"}",
    )
    .await;
    assert_eq!(counted, 1.0);
    drop(listener);

    // ffprobe as a plain listener (it asks for ICY blocks too).
    let streams = probe(&format!("http://{}/demo", srv.icecast)).await;
    assert!(
        streams.contains(&("audio".into(), "mp3".into())),
        "{streams:?}"
    );

    let (rms, packets) = viewer.await.unwrap();
    assert!(packets > 150, "{packets} Opus packets in 5 s");
    assert!(rms > 0.05, "WebRTC audio RMS {rms} is near silence");

    let streams = probe(&format!("http://{}/hls/demo/index.m3u8", srv.http)).await;
    assert_eq!(
        streams,
        [("audio".to_string(), "aac".to_string())],
        "LL-HLS"
    );

    ff.wait().await.expect("ffmpeg ran");
    let item = ended_broadcast(&srv, "demo").await;
    assert_eq!(item["title"], "Night Shift", "{item}");
    let ms = item["duration_ms"].as_i64().unwrap();
    assert!(ms > 12_000, "recorded {ms} ms of a 16 s show");
    let id = item["id"].as_i64().unwrap();
    let (streams, dur) =
        hls_util::ffprobe(&format!("http://{}/vod/{id}/index.m3u8", srv.http)).await;
    assert!(
        streams.iter().any(|s| s.0 == "audio" && s.1 == "aac"),
        "{streams:?}"
    );
    assert!(streams.iter().all(|s| s.0 != "video"), "{streams:?}");
    assert!(dur.unwrap_or(0.0) > 12.0, "{dur:?}");
    srv.stop().await;
}

/// ADTS AAC (passed through: the WebRTC egress makes Opus) and Ogg/Opus
/// (passed through to WebRTC: the HLS egress makes AAC), from ffmpeg.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aac_and_ogg_opus_sources_play_everywhere() {
    let srv = TestServer::start().await;
    for (codec, mount, format, probed) in [
        ("aac", "/demo.aac", Format::Adts, "aac"),
        ("opus", "/demo.ogg", Format::OggOpus, "opus"),
    ] {
        let mut ff = ffmpeg_icecast(srv.icecast, &srv.key, mount, codec, 10);
        common::wait_for_live(srv.http, "demo").await;
        let viewer = tokio::spawn(webrtc_rms(srv.http, "demo", 4));
        let (head, mut listener, rest) = listen(srv.icecast, mount, false).await;
        assert_eq!(header(&head, "icy-metaint"), None, "no ICY unless asked");
        let mut body = rest;
        let end = Instant::now() + Duration::from_secs(3);
        let mut chunk = [0u8; 8192];
        while let Ok(Ok(n)) = tokio::time::timeout_at(end.into(), listener.read(&mut chunk)).await {
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        let (_, samples) = frames_in(format, &body);
        assert!(
            samples > 2 * 48_000,
            "{codec}: {samples} samples in 3 s of passthrough"
        );
        drop(listener);
        let streams = probe(&format!("http://{}{mount}", srv.icecast)).await;
        assert!(
            streams.contains(&("audio".into(), probed.into())),
            "{codec}: {streams:?}"
        );
        let (rms, packets) = viewer.await.unwrap();
        assert!(
            packets > 100 && rms > 0.05,
            "{codec}: WebRTC {packets} packets, RMS {rms}"
        );
        let streams = probe(&format!("http://{}/hls/demo/index.m3u8", srv.http)).await;
        assert_eq!(
            streams,
            [("audio".to_string(), "aac".to_string())],
            "{codec}: LL-HLS"
        );
        ff.wait().await.expect("ffmpeg ran");
        wait_offline(&srv, "demo", Duration::from_secs(15)).await;
    }
    srv.stop().await;
}

/// A client that writes MP3 at real time from a file (the fixture looped,
/// its ID3 tag and all).
async fn pace_mp3(s: &mut (impl AsyncWriteExt + Unpin), secs: u64) -> std::io::Result<()> {
    let clip = include_bytes!("data/sine.mp3");
    let start = Instant::now();
    for i in 0..secs {
        s.write_all(clip).await?;
        tokio::time::sleep_until((start + Duration::from_secs(i + 1)).into()).await;
    }
    Ok(())
}

/// Reads for `secs`; returns what came and whether the peer closed.
async fn read_for(s: &mut (impl AsyncReadExt + Unpin), secs: f64) -> (Vec<u8>, bool) {
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match tokio::time::timeout_at(end.into(), s.read(&mut chunk)).await {
            Err(_) => return (buf, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (buf, true),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The legacy `SOURCE` method (Icecast 1.x, old libshout, ices 0.x),
/// without `Expect`: answered `200 OK` at once. A new source with the same
/// key takes over; the old connection is closed and a plain listener
/// carries on with the new source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_source_method_and_takeover() {
    let srv = TestServer::start().await;
    let mut old = TcpStream::connect(srv.icecast).await.unwrap();
    let req = format!(
        "SOURCE /demo HTTP/1.0\r\nAuthorization: {}\r\nContent-Type: audio/mpeg\r\nice-name: Old Source\r\n\r\n",
        basic(&srv.key)
    );
    old.write_all(req.as_bytes()).await.unwrap();
    let mut answer = [0u8; 64];
    let n = old.read(&mut answer).await.unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.0 200 OK"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    let (mut old_r, mut old_w) = old.into_split();
    let pacer = tokio::spawn(async move { pace_mp3(&mut old_w, 40).await });
    common::wait_for_live(srv.http, "demo").await;
    assert_eq!(channel_json(&srv, "demo").await["title"], "Old Source");

    let (head, mut listener, rest) = listen(srv.icecast, "/demo.mp3", false).await;
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    let (mut before, _) = read_for(&mut listener, 2.0).await;
    before.splice(0..0, rest);
    let (frames, _) = frames_in(Format::Mp3, &before);
    assert!(frames > 40, "{frames} frames from the legacy source");

    let mut ff = ffmpeg_icecast(srv.icecast, &srv.key, "/demo", "mp3", 10);
    let (_, closed) = read_for(&mut old_r, 8.0).await;
    assert!(closed, "the replaced source's connection is closed");
    pacer.abort();
    let (after, listener_closed) = read_for(&mut listener, 3.0).await;
    assert!(!listener_closed, "the listener stays through the takeover");
    let (frames, samples) = frames_in(Format::Mp3, &after);
    assert!(
        samples > 2 * 44_100,
        "{frames} frames, {samples} samples after the takeover"
    );
    assert_eq!(channel_json(&srv, "demo").await["title"], "Night Shift");
    ff.kill().await.ok();
    srv.stop().await;
}

/// Sends a source's head; returns the connection and the server's first
/// answer line.
async fn source_head(addr: SocketAddr, head: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("an answer")
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    (s, text.lines().next().unwrap_or_default().to_string())
}

fn put(mount: &str, auth: &str, content_type: &str) -> String {
    format!(
        "PUT {mount} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: {content_type}\r\nExpect: 100-continue\r\n\r\n"
    )
}

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

/// The load tool's Icecast clients, small: a source with a WebRTC viewer
/// (`publish --icecast-source --icecast-webrtc`), and a crowd of plain
/// listeners (`listen`) beside a source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_tool_icecast_source_and_listeners() {
    let srv = TestServer::start().await;
    let (http, icecast) = (srv.http.to_string(), srv.icecast.to_string());
    let source = format!("demo:{}", srv.key);
    let r = onair_loadtest::cli::run([
        "publish",
        "--http",
        &http,
        "--icecast",
        &icecast,
        "--icecast-source",
        &source,
        "--icecast-webrtc",
        "--seconds",
        "4",
        "--quiet",
    ])
    .await
    .expect("publish runs");
    eprintln!("publish: {r}");
    assert_eq!(r["publisher"]["protocol"], "icecast", "{r}");
    assert!(r["publisher"]["frames"].as_u64().unwrap() > 140, "{r}");
    let packets = r["publisher"]["webrtc_audio_packets"][0]
        .as_u64()
        .unwrap_or(0);
    assert!(packets > 50, "the WebRTC viewer heard the stream: {r}");
    wait_offline(&srv, "demo", Duration::from_secs(15)).await;

    let r = onair_loadtest::cli::run([
        "listen",
        "--http",
        &http,
        "--icecast",
        &icecast,
        "--icecast-source",
        &source,
        "--viewers",
        "5",
        "--ramp-ms",
        "10",
        "--seconds",
        "3",
        "--quiet",
    ])
    .await
    .expect("listen runs");
    eprintln!("listen: {r}");
    assert_eq!(r["connected"], 5, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    let mbps = r["mbps_per_viewer"].as_f64().unwrap();
    assert!(
        (0.11..0.16).contains(&mbps),
        "each listener gets the 128 kbit/s stream: {mbps}"
    );
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
