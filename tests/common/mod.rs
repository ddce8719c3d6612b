//! Shared harness: a real server on port 0, real ffmpeg publishers, and a
//! minimal HTTP client (enough for WHEP; no client library needed).
#![allow(dead_code)]

pub mod webrtc_client;

use onair::config::Config;
use onair::db::Db;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

pub struct TestServer {
    pub http: SocketAddr,
    pub rtmp: SocketAddr,
    pub channel: String,
    pub key: String,
    pub db: Db,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub dir: tempfile::TempDir,
}

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rtc=warn,rtc_sctp=error,rtc_dtls=error".into()),
        )
        .with_test_writer()
        .try_init();
}

impl TestServer {
    /// Starts onair on port 0 everywhere with one channel, `demo`.
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Like [`start`](Self::start), with changes to the test config.
    pub async fn start_with(change: impl FnOnce(&mut Config)) -> TestServer {
        init_logs();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::for_test(dir.path());
        change(&mut config);
        let db = Db::open(&config.database_url).await.expect("open db");
        let ch = db.create_channel("demo").await.expect("create channel");
        let listeners = onair::Listeners::bind(&config).await.expect("bind");
        let http = listeners.http_addr();
        let rtmp = listeners.rtmp_addr();
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(onair::run(
            config,
            listeners,
            async move { s.cancelled().await },
        ));
        TestServer {
            http,
            rtmp,
            channel: ch.name,
            key: ch.stream_key,
            db,
            stop,
            task: Some(task),
            dir,
        }
    }

    pub fn rtmp_url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{}", self.rtmp, key)
    }

    /// Stops the server and waits for it, failing the test if `run` failed.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            let r = tokio::time::timeout(Duration::from_secs(15), t)
                .await
                .expect("server stops in time");
            r.expect("server task").expect("server ran cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// ffmpeg publishing the test signal (testsrc2 1280x720@30, 440 Hz
/// AAC) over RTMP for `secs`, with a keyframe every second and no B-frames.
pub fn ffmpeg_publish(url: &str, secs: u32) -> Child {
    ffmpeg_publish_with(url, secs, &["-bf", "0"])
}

pub fn ffmpeg_publish_with(url: &str, secs: u32, video_opts: &[&str]) -> Child {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(video_opts)
        .args(["-c:a", "aac", "-b:a", "128k", "-ar", "48000"])
        .args(["-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true);
    cmd.spawn()
        .expect("ffmpeg is installed (apt-get install ffmpeg)")
}

pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 request on its own connection.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    // The server may answer (413) before reading a large body; a reset
    // while writing it is not the test's concern.
    let _ = s.write_all(body).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut raw)).await;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(p) = rest.windows(2).position(|w| w == b"\r\n") {
            let n =
                usize::from_str_radix(std::str::from_utf8(&rest[..p]).unwrap_or("0").trim(), 16)
                    .unwrap_or(0);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[p + 2..p + 2 + n]);
            rest = &rest[p + 2 + n + 2..];
        }
        body = out;
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

/// Waits until `f` is true, polling; panics with `what` after `limit`.
pub async fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `channel` is live, read from `/metrics`.
pub async fn wait_for_live(addr: SocketAddr, channel: &str) {
    let needle = format!("onair_stream_readers{{channel=\"{channel}\"}}");
    let start = std::time::Instant::now();
    loop {
        let m = http(addr, "GET", "/metrics", &[], b"").await.text();
        if m.contains(&needle) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "channel {channel} never went live"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
