//! Shared by the Icecast tests (`icecast`, `icecast_hostile`): sources
//! (ffmpeg's `icecast://` output, raw heads, a paced MP3 writer), plain
//! listeners reading ICY blocks, and what they check with.
#![allow(dead_code)]

use crate::common::{self, get, http, TestServer};
use crate::hls_util;
use base64::Engine;
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
pub fn ffmpeg_icecast(addr: SocketAddr, key: &str, mount: &str, codec: &str, secs: u32) -> Child {
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

pub fn basic(key: &str) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(format!("source:{key}"));
    format!("Basic {b}")
}

/// `GET /admin/metadata` as BUTT sends it.
pub async fn set_song(
    addr: SocketAddr,
    key: &str,
    mount: &str,
    song: &str,
) -> common::HttpResponse {
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
pub async fn listen(addr: SocketAddr, path: &str, icy: bool) -> (String, TcpStream, Vec<u8>) {
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
pub async fn read_icy(
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

pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        })
        .map(|(_, v)| v.trim())
}

/// Samples of audio in `bytes` of a passthrough stream, by our own framer.
pub fn frames_in(format: Format, bytes: &[u8]) -> (usize, u64) {
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
pub async fn webrtc_rms(http: SocketAddr, channel: &str, secs: u64) -> (f64, usize) {
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
pub async fn probe(url: &str) -> Vec<(String, String)> {
    let (streams, _) = hls_util::ffprobe(url).await;
    streams.into_iter().map(|(t, c, _, _)| (t, c)).collect()
}

pub async fn channel_json(srv: &TestServer, name: &str) -> Value {
    get(srv.http, &format!("/api/channels/{name}")).await.json()
}

pub async fn wait_offline(srv: &TestServer, name: &str, limit: Duration) {
    let start = Instant::now();
    while channel_json(srv, name).await["live"] == true {
        assert!(start.elapsed() < limit, "{name} still live after {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The newest broadcast of `channel` once it has ended.
pub async fn ended_broadcast(srv: &TestServer, channel: &str) -> Value {
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

/// A client that writes MP3 at real time from a file (the fixture looped,
/// its ID3 tag and all).
pub async fn pace_mp3(s: &mut (impl AsyncWriteExt + Unpin), secs: u64) -> std::io::Result<()> {
    let clip = include_bytes!("../data/sine.mp3");
    let start = Instant::now();
    for i in 0..secs {
        s.write_all(clip).await?;
        tokio::time::sleep_until((start + Duration::from_secs(i + 1)).into()).await;
    }
    Ok(())
}

/// Reads for `secs`; returns what came and whether the peer closed.
pub async fn read_for(s: &mut (impl AsyncReadExt + Unpin), secs: f64) -> (Vec<u8>, bool) {
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

/// Sends a source's head; returns the connection and the server's first
/// answer line.
pub async fn source_head(addr: SocketAddr, head: &str) -> (TcpStream, String) {
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

pub fn put(mount: &str, auth: &str, content_type: &str) -> String {
    format!(
        "PUT {mount} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: {content_type}\r\nExpect: 100-continue\r\n\r\n"
    )
}
