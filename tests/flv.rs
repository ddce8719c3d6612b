//! HTTP-FLV playback (`GET /flv/CHANNEL.flv`) with real peers: ffmpeg and
//! the load tool's WHIP client publish; ffprobe, a raw FLV tag reader,
//! mpegts.js in headless Chromium (tests/e2e/flv_watch.mjs) and stalled
//! TCP clients read.

mod common;
mod hls_util;

use common::media::{audio, clip, video};
use common::node::run_script;
use common::victim::Victim;
use common::{ffmpeg_publish, ffmpeg_publish_sized, get, metric_or_zero, TestServer};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// One test at a time: ffmpeg encoders, a debug server, a WebRTC publisher
/// or Chromium already fill 2 cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A player reading FLV tags over HTTP/1.0, whose body is delimited by the
/// connection's end: nothing to de-chunk.
struct FlvReader {
    s: TcpStream,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct Tag {
    kind: u8,
    ms: u32,
    body: Vec<u8>,
}

impl Tag {
    fn is_video(&self) -> bool {
        self.kind == 9
    }
    /// An AVC (video) or AAC (audio) sequence header.
    fn is_sequence_header(&self) -> bool {
        self.body.get(1) == Some(&0)
    }
    fn is_keyframe(&self) -> bool {
        self.is_video() && self.body[0] >> 4 == 1 && self.body[1] == 1
    }
}

impl FlvReader {
    /// Opens `path`; returns the response head and, on a 200, the reader.
    async fn open(addr: SocketAddr, path: &str) -> (String, Option<FlvReader>) {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET {path} HTTP/1.0\r\nHost: {addr}\r\nOrigin: http://elsewhere.example\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let end = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
                .await
                .expect("a response head within 10 s")
                .unwrap();
            assert!(n > 0, "closed before a response head");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
        buf.drain(..end + 4);
        let ok = head.starts_with("http/1.0 200") || head.starts_with("http/1.1 200");
        (head, ok.then_some(FlvReader { s, buf }))
    }

    async fn fill(&mut self, n: usize) {
        while self.buf.len() < n {
            let mut chunk = vec![0u8; 64 * 1024];
            let r = tokio::time::timeout(Duration::from_secs(5), self.s.read(&mut chunk))
                .await
                .expect("FLV data within 5 s")
                .unwrap();
            assert!(r > 0, "the FLV stream ended");
            self.buf.extend_from_slice(&chunk[..r]);
        }
    }

    /// The FLV header's TypeFlags (4: audio, 1: video).
    async fn header(&mut self) -> u8 {
        self.fill(13).await;
        assert_eq!(&self.buf[..4], b"FLV\x01", "FLV signature");
        assert_eq!(&self.buf[5..13], &[0, 0, 0, 9, 0, 0, 0, 0]);
        let flags = self.buf[4];
        self.buf.drain(..13);
        flags
    }

    async fn tag(&mut self) -> Tag {
        self.fill(11).await;
        let size = u32::from_be_bytes([0, self.buf[1], self.buf[2], self.buf[3]]) as usize;
        self.fill(11 + size + 4).await;
        let b = &self.buf;
        let tag = Tag {
            kind: b[0],
            ms: u32::from_be_bytes([b[7], b[4], b[5], b[6]]),
            body: b[11..11 + size].to_vec(),
        };
        let prev = u32::from_be_bytes(b[11 + size..15 + size].try_into().unwrap());
        assert_eq!(prev as usize, 11 + size, "PreviousTagSize");
        self.buf.drain(..15 + size);
        tag
    }
}

async fn flv_viewers(srv: &TestServer) -> f64 {
    metric_or_zero(srv.http, "onair_viewers{channel=\"demo\",protocol=\"flv\"}").await
}

async fn ffprobe_kinds(url: &str) -> Vec<(String, String, u64, u64)> {
    let (mut streams, _) = hls_util::ffprobe(url).await;
    streams.sort();
    streams
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rtmp_channel_plays_as_flv_from_its_last_keyframe() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let (head, _) = FlvReader::open(srv.http, "/flv/demo.flv").await;
    assert!(head.starts_with("http/1.0 404"), "offline channel: {head}");
    let (head, _) = FlvReader::open(srv.http, "/flv/nobody.flv").await;
    assert!(head.starts_with("http/1.0 404"), "unknown channel: {head}");

    let _ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 40);
    common::wait_for_live(srv.http, &srv.channel).await;
    // Mid-GOP: the response must still start with a keyframe.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // What flv.js and mpegts.js see: HTTP/1.1, chunked, CORS for players
    // on other origins.
    let mut s = TcpStream::connect(srv.http).await.unwrap();
    let req = format!(
        "GET /flv/demo.flv HTTP/1.1\r\nHost: {}\r\nOrigin: http://elsewhere.example\r\n\r\n",
        srv.http
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut b = vec![0u8; 4096];
    let n = s.read(&mut b).await.unwrap();
    let head = String::from_utf8_lossy(&b[..n]).to_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: video/x-flv"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    drop(s);

    let asked = Instant::now();
    let (_, reader) = FlvReader::open(srv.http, "/flv/demo.flv").await;
    let mut r = reader.expect("200 for a live channel");
    assert_eq!(r.header().await, 5, "audio and video");
    let mut tags = Vec::new();
    let mut first_picture = None;
    while tags.len() < 400 {
        let t = r.tag().await;
        if first_picture.is_none() && t.is_video() && !t.is_sequence_header() {
            first_picture = Some(asked.elapsed());
        }
        tags.push(t);
    }
    let first_picture = first_picture.expect("video frames");
    eprintln!("first picture after {first_picture:?}");
    // From the GOP cache, not at the next keyframe (up to 1 s away).
    assert!(
        first_picture < Duration::from_millis(500),
        "{first_picture:?}"
    );
    let first_video: Vec<&Tag> = tags.iter().filter(|t| t.is_video()).take(2).collect();
    assert!(
        first_video[0].is_sequence_header(),
        "AVC sequence header first"
    );
    assert!(first_video[1].is_keyframe(), "then a keyframe");
    let first_audio = tags.iter().find(|t| !t.is_video()).expect("audio");
    assert_eq!(first_audio.body[0] >> 4, 10, "AAC");
    assert!(
        first_audio.is_sequence_header(),
        "AudioSpecificConfig first"
    );
    assert!(tags[0].ms < 100, "rebased to start near 0: {}", tags[0].ms);
    for kind in [8, 9] {
        let ts: Vec<u32> = tags
            .iter()
            .filter(|t| t.kind == kind)
            .map(|t| t.ms)
            .collect();
        assert!(
            ts.windows(2).all(|w| w[0] <= w[1]),
            "track {kind} in order: {ts:?}"
        );
    }
    // Every second is there: 30 fps and 47 AAC frames a second.
    let span = tags.last().unwrap().ms - tags[0].ms;
    let frames = tags.iter().filter(|t| t.is_video()).count();
    assert!(
        frames as f64 > 25.0 * f64::from(span) / 1000.0,
        "{frames} frames in {span} ms"
    );

    // A reader is a viewer.
    assert_eq!(flv_viewers(&srv).await, 1.0);
    let ch = get(srv.http, "/api/channels/demo").await.json();
    assert!(ch["viewers"].as_u64().unwrap() >= 1, "{ch}");

    let url = format!("http://{}/flv/demo.flv", srv.http);
    let streams = ffprobe_kinds(&url).await;
    assert_eq!(
        streams,
        [
            ("audio".into(), "aac".into(), 0, 0),
            ("video".into(), "h264".into(), 1280, 720)
        ],
        "ffprobe of {url}"
    );
    drop(r);
    let start = Instant::now();
    while flv_viewers(&srv).await != 0.0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "viewer not released"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_reconnect_continues_the_flv_stream() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let url = srv.rtmp_url(&srv.key);
    let mut first = ffmpeg_publish_sized(&url, 4, "640x360", &["-bf", "0"]);
    common::wait_for_live(srv.http, &srv.channel).await;
    let (_, reader) = FlvReader::open(srv.http, "/flv/demo.flv").await;
    let mut r = reader.expect("200");
    assert_eq!(r.header().await, 5);
    // The encoder comes back as soon as it is gone.
    let second = tokio::spawn(async move {
        first.wait().await.ok();
        let mut again = ffmpeg_publish_sized(&url, 8, "640x360", &["-bf", "0"]);
        again.wait().await.ok();
    });
    // Read until the second publisher's sequence header arrives.
    let mut before = Vec::new();
    let mut last_at = Instant::now();
    let (after, wall_gap) = loop {
        let t = r.tag().await;
        if t.is_video() && t.is_sequence_header() && !before.is_empty() {
            break (t, last_at.elapsed());
        }
        before.push(t);
        last_at = Instant::now();
    };
    let mut tags = vec![after];
    for _ in 0..60 {
        tags.push(r.tag().await);
    }
    let last_before = before.iter().map(|t| t.ms).max().unwrap();
    eprintln!(
        "{} tags up to {last_before} ms before the reconnect, then from {} ms",
        before.len(),
        tags[0].ms
    );
    assert!(before.len() > 100, "the first publisher was seen");
    assert!(
        tags[0].ms > last_before,
        "timestamps go on across the reconnect"
    );
    // The pause between the publishers is kept, neither jumped over nor
    // made up.
    let gap = Duration::from_millis(u64::from(tags[0].ms - last_before));
    eprintln!("timeline gap {gap:?}, wall gap {wall_gap:?}");
    assert!(
        gap.abs_diff(wall_gap) < Duration::from_millis(250),
        "{gap:?} vs {wall_gap:?}"
    );
    let first_picture = tags
        .iter()
        .find(|t| t.is_video() && !t.is_sequence_header());
    assert!(
        first_picture.unwrap().is_keyframe(),
        "the new stream starts at a keyframe"
    );
    let ts: Vec<u32> = tags.iter().filter(|t| t.is_video()).map(|t| t.ms).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    second.abort();
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whip_channel_plays_h264_and_aac_in_flv() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let publisher = tokio::spawn(onair_loadtest::whip::publish(
        srv.http,
        clip(&srv.key, &(video(), audio()), 20),
    ));
    common::wait_for_live(srv.http, &srv.channel).await;
    let (_, reader) = FlvReader::open(srv.http, "/flv/demo.flv").await;
    let mut r = reader.expect("200");
    assert_eq!(r.header().await, 5, "audio and video");
    let mut aac_frames = 0;
    for _ in 0..200 {
        let t = r.tag().await;
        if t.kind == 8 {
            assert_eq!(t.body[0] >> 4, 10, "AAC, not Opus");
            aac_frames += usize::from(!t.is_sequence_header());
        }
    }
    assert!(aac_frames > 40, "{aac_frames} AAC frames in 200 tags");
    let streams = ffprobe_kinds(&format!("http://{}/flv/demo.flv", srv.http)).await;
    assert_eq!(
        streams,
        [
            ("audio".into(), "aac".into(), 0, 0),
            ("video".into(), "h264".into(), 640, 360)
        ]
    );
    drop(r);
    publisher.abort();
    srv.stop().await;
}

/// ffmpeg sending an AAC tone to the Icecast port.
fn ffmpeg_icecast_aac(addr: SocketAddr, key: &str, secs: u32) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi"])
        .args(["-i", "sine=frequency=660:sample_rate=48000", "-ac", "2"])
        .args(["-t", &secs.to_string(), "-c:a", "aac", "-b:a", "128k"])
        .args(["-content_type", "audio/aac", "-f", "adts"])
        .arg(format!("icecast://source:{key}@{addr}/demo"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg is installed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_icecast_channel_plays_as_audio_only_flv() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let _ff = ffmpeg_icecast_aac(srv.icecast, &srv.key, 20);
    common::wait_for_live(srv.http, &srv.channel).await;
    let (_, reader) = FlvReader::open(srv.http, "/flv/demo.flv").await;
    let mut r = reader.expect("200");
    assert_eq!(r.header().await, 4, "audio only");
    let first = r.tag().await;
    assert!(first.kind == 8 && first.is_sequence_header(), "{first:?}");
    for _ in 0..50 {
        assert_eq!(r.tag().await.kind, 8);
    }
    let streams = ffprobe_kinds(&format!("http://{}/flv/demo.flv", srv.http)).await;
    assert_eq!(streams, [("audio".into(), "aac".into(), 0, 0)]);
    srv.stop().await;
}

/// A player that asks for the stream and never reads, with a small
/// receive window so the server's socket fills soon.
async fn stalled_reader(addr: SocketAddr, path: &str) -> tokio::net::TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut s = sock.connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_flv_readers_do_not_stall_anyone_else() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let secs = 20;
    let victim = Victim::start(&srv, secs).await;
    let path = "/flv/victim.flv";
    // A player that reads at once (from 127.0.0.2), measured while the
    // others stall.
    let measure_from = Instant::now() + Duration::from_secs(2);
    let fast = tokio::spawn(onair_loadtest::flv::watch(
        srv.http,
        path,
        0,
        Duration::from_secs(secs),
        Some(measure_from),
    ));
    let hits_before = metric_or_zero(
        srv.http,
        "onair_limit_hits_total{limit=\"flv_reader_queue\"}",
    )
    .await;
    // This host's whole allowance, all stalled.
    let mut stalled = Vec::new();
    for _ in 0..onair::flv::MAX_READERS_PER_HOST {
        stalled.push(stalled_reader(srv.http, path).await);
    }
    let series = "onair_viewers{channel=\"victim\",protocol=\"flv\"}";
    let start = Instant::now();
    while (metric_or_zero(srv.http, series).await as usize) < onair::flv::MAX_READERS_PER_HOST {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "readers not admitted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // One more from the same host is refused.
    let mut extra = stalled_reader(srv.http, path).await;
    let mut b = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut b))
        .await
        .expect("an answer")
        .unwrap();
    let head = String::from_utf8_lossy(&b[..n]).to_string();
    assert!(
        head.starts_with("HTTP/1.1 429"),
        "reader over the per-host cap: {head}"
    );
    let report = victim.finish().await;
    report.assert_kept_playing("stalled HTTP-FLV readers");
    let fast = fast.await.unwrap();
    eprintln!(
        "victim: {}; FLV reader beside {} stalled ones: {} bytes, longest gap {} ms, error {:?}",
        report.summary(),
        stalled.len(),
        fast.bytes,
        fast.longest_gap_ms,
        fast.error
    );
    assert!(fast.error.is_none(), "{:?}", fast.error);
    assert!(
        fast.bytes > 500_000,
        "the fast reader got {} bytes",
        fast.bytes
    );
    assert!(
        fast.longest_gap_ms < 1000,
        "the fast reader waited {} ms",
        fast.longest_gap_ms
    );
    let hits = metric_or_zero(
        srv.http,
        "onair_limit_hits_total{limit=\"flv_reader_queue\"}",
    )
    .await;
    assert!(hits > hits_before, "the stalled readers were made to skip");
    // The fast reader has left; the stalled ones still count.
    let start = Instant::now();
    while (metric_or_zero(srv.http, series).await as usize) != onair::flv::MAX_READERS_PER_HOST {
        assert!(start.elapsed() < Duration::from_secs(5), "viewer count");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(stalled);
    srv.stop().await;
}

/// Runs flv_watch.mjs on `url` for `secs` and returns its JSON report.
async fn browser_watch(url: &str, secs: u32) -> serde_json::Value {
    run_script(
        "flv_watch.mjs",
        &[url, &secs.to_string()],
        Duration::from_secs(u64::from(secs) + 60),
    )
    .await
}

fn assert_plays_with_sound(r: &serde_json::Value, size: (u64, u64)) {
    assert!(r["errors"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(
        (r["width"].as_u64(), r["height"].as_u64()),
        (Some(size.0), Some(size.1)),
        "{r}"
    );
    assert_eq!(r["hasVideo"], true, "{r}");
    assert_eq!(r["hasAudio"], true, "{r}");
    assert!(
        r["audioCodec"]
            .as_str()
            .unwrap_or("")
            .starts_with("mp4a.40"),
        "{r}"
    );
    assert!(r["framesDecoded"].as_f64().unwrap() > 150.0, "{r}");
    assert!(
        r["framesSecondHalf"].as_f64().unwrap() > 80.0,
        "playback went on: {r}"
    );
    // The tones are at 0.125 (ffmpeg's sine) and 0.3 (the WHIP clip);
    // silence is 0.
    assert!(r["peakRms"].as_f64().unwrap() > 0.02, "no sound: {r}");
    assert!(r["firstFrameMs"].as_f64().unwrap() < 3000.0, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mpegts_js_in_chromium_plays_rtmp_and_whip_channels_with_sound() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let srv = TestServer::start().await;
    let url = format!("http://{}/flv/demo.flv", srv.http);
    let mut ff = ffmpeg_publish_sized(&srv.rtmp_url(&srv.key), 40, "640x360", &["-bf", "0"]);
    common::wait_for_live(srv.http, &srv.channel).await;
    let r = browser_watch(&url, 10).await;
    eprintln!("mpegts.js, RTMP channel: {r}");
    assert_plays_with_sound(&r, (640, 360));
    assert!(
        r["videoCodec"].as_str().unwrap_or("").starts_with("avc1"),
        "{r}"
    );
    ff.kill().await.ok();
    let start = Instant::now();
    while get(srv.http, "/api/channels/demo").await.json()["live"] == true {
        assert!(start.elapsed() < Duration::from_secs(10), "still live");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let publisher = tokio::spawn(onair_loadtest::whip::publish(
        srv.http,
        clip(&srv.key, &(video(), audio()), 40),
    ));
    common::wait_for_live(srv.http, &srv.channel).await;
    let r = browser_watch(&url, 10).await;
    eprintln!("mpegts.js, WHIP channel: {r}");
    assert_plays_with_sound(&r, (640, 360));
    publisher.abort();
    srv.stop().await;
}
