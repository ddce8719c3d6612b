//! Icecast-compatible ingest with real clients: ffmpeg's `icecast://`
//! output (MP3, ADTS AAC, Ogg/Opus), a legacy `SOURCE` client, metadata
//! updates reaching chat, plain listeners (a raw HTTP client reading ICY
//! blocks, and ffprobe), a WebRTC viewer decoding the Opus, the LL-HLS
//! playlist and the recording (ffprobe). Hostile sources and listeners are
//! in `icecast_hostile`.

mod common;
mod hls_util;
mod icecast_util;

use common::{metric_or_zero, ws_connect, ws_wait, TestServer};
use icecast_util::*;
use onair::icecast::demux::Format;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
    let id = common::json_id(&item["id"]);
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
