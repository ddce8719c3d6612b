//! HTTPS, HTTP/2, RTMPS and the plain-HTTP redirect with a certificate
//! from files, against real clients: curl (HTTP/1.1 and HTTP/2), a rustls
//! WebSocket client, ffmpeg over `rtmps://` and ffprobe reading LL-HLS over
//! HTTPS. ACME against pebble is in `tls_acme.rs`.

mod common;

use common::child::{create_channel, free_addr, serve_with, wait_healthy, BIN};
use common::tls::{curl, handshake_cert, self_signed, write_pair, wss, Pem};
use futures_util::StreamExt;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_h1_and_h2_redirects_plain_http_and_reloads_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let first = self_signed("localhost");
    write_pair(&first, &cert, &key);
    let (http, rtmp, https) = (free_addr(), free_addr(), free_addr());
    let mut child = serve_with(
        dir.path(),
        http,
        rtmp,
        "server.log",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--https",
            &https.to_string(),
        ],
    );
    // Plain HTTP keeps /healthz for probes on the host.
    wait_healthy(http).await;
    let url = format!("https://localhost:{}", https.port());
    let ca = dir.path().join("first-ca.pem");
    std::fs::write(&ca, first.cert_pem()).unwrap();

    let out = curl(
        &https,
        &ca,
        &[
            "--http2",
            "-w",
            "%{http_code} %{http_version}",
            "-o",
            "/dev/null",
        ],
        &format!("{url}/healthz"),
    );
    assert_eq!(out, "200 2", "HTTP/2 over TLS");
    let out = curl(
        &https,
        &ca,
        &[
            "--http1.1",
            "-w",
            "%{http_code} %{http_version}",
            "-o",
            "/dev/null",
        ],
        &format!("{url}/api/channels"),
    );
    assert_eq!(out, "200 1.1", "HTTP/1.1 over TLS");

    // Plain HTTP sends everything else to HTTPS, method kept (308).
    let r = common::http(http, "POST", "/whip/x?a=1", &[], b"v=0").await;
    assert_eq!(r.status, 308);
    let to = format!("https://127.0.0.1:{}/whip/x?a=1", https.port());
    assert_eq!(
        r.header("location"),
        Some(to.as_str()),
        "the request's host, the HTTPS port"
    );

    // The session cookie is Secure over TLS.
    let head = curl(
        &https,
        &ca,
        &[
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            "content-type: application/json",
            "--data",
            r#"{"username":"tlsuser","password":"correct horse battery"}"#,
        ],
        &format!("{url}/api/auth/register"),
    );
    assert!(head.starts_with("HTTP/2 201"), "{head}");
    let head = curl(
        &https,
        &ca,
        &[
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            "content-type: application/json",
            "--data",
            r#"{"username":"tlsuser","password":"correct horse battery"}"#,
        ],
        &format!("{url}/api/auth/login"),
    );
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );

    // WSS: the new user's chat socket upgrades over TLS, and a message
    // posted over HTTP/2 arrives on it.
    let token = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: onair_session=")
                .or_else(|| l.strip_prefix("Set-Cookie: onair_session="))
        })
        .and_then(|v| v.split(';').next())
        .expect("session token")
        .to_string();
    let mut ws = wss(&https, first.cert.der().to_vec(), "/ws/tlsuser").await;
    let posted = curl(
        &https,
        &ca,
        &[
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "content-type: application/json",
            // Signed in by cookie, so the same-origin check runs: over
            // HTTP/2 the host is in :authority, not in a Host header.
            "-H",
            &format!("cookie: onair_session={token}"),
            "-H",
            &format!("origin: {url}"),
            "--data",
            r#"{"text":"over tls"}"#,
        ],
        &format!("{url}/api/channels/tlsuser/chat"),
    );
    assert_eq!(posted, "201", "chat post over HTTPS");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let frame = tokio::time::timeout_at(deadline.into(), ws.next()).await;
        let Ok(Some(Ok(msg))) = frame else {
            panic!("no chat message over WSS: {frame:?}")
        };
        if msg.to_text().unwrap_or("").contains("over tls") {
            break;
        }
    }
    let _ = ws.close(None).await;

    // SIGHUP: a new pair takes effect for new connections.
    let second = self_signed("localhost");
    write_pair(&second, &cert, &key);
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    while handshake_cert(&https, "localhost", second.cert.der())
        .await
        .is_none()
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        handshake_cert(&https, "localhost", first.cert.der())
            .await
            .is_none(),
        "the old certificate is gone"
    );

    // A broken pair is refused and the current one kept.
    std::fs::write(&key, "not a key").unwrap();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(handshake_cert(&https, "localhost", second.cert.der())
        .await
        .is_some());
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(log.contains("kept the current TLS certificate"), "{log}");
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// A server with a self-signed certificate for `localhost` from files,
/// RTMPS on, and one channel.
struct TlsServer {
    dir: tempfile::TempDir,
    child: tokio::process::Child,
    http: std::net::SocketAddr,
    rtmp: std::net::SocketAddr,
    https: std::net::SocketAddr,
    rtmps: std::net::SocketAddr,
    stream_key: String,
}

impl TlsServer {
    async fn start(channel: &str) -> TlsServer {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let pair = self_signed("localhost");
        write_pair(&pair, &cert, &key);
        std::fs::write(dir.path().join("ca.pem"), pair.cert_pem()).unwrap();
        let stream_key = create_channel(dir.path(), channel);
        let (http, rtmp, https, rtmps) = (free_addr(), free_addr(), free_addr(), free_addr());
        let child = serve_with(
            dir.path(),
            http,
            rtmp,
            "server.log",
            &[
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
                "--https",
                &https.to_string(),
                "--rtmps",
                &rtmps.to_string(),
            ],
        );
        wait_healthy(http).await;
        TlsServer {
            dir,
            child,
            http,
            rtmp,
            https,
            rtmps,
            stream_key,
        }
    }

    fn ca(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Waits until `url` answers 200 over HTTP/2, while `ffmpeg` runs.
    async fn wait_for(&self, url: &str, ffmpeg: &mut tokio::process::Child) {
        let start = Instant::now();
        loop {
            let code = curl(
                &self.https,
                &self.ca(),
                &["--http2", "-o", "/dev/null", "-w", "%{http_code}"],
                url,
            );
            if code == "200" {
                return;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "{url}: {code}");
            assert!(
                ffmpeg.try_wait().unwrap().is_none(),
                "ffmpeg quit: its publish failed"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishes_over_rtmps_and_ffprobe_reads_ll_hls_over_https() {
    let srv = TlsServer::start("secure").await;
    let url = format!(
        "rtmps://localhost:{}/live/{}",
        srv.rtmps.port(),
        srv.stream_key
    );
    let mut ffmpeg = common::ffmpeg_publish(&url, 30);
    let playlist = format!(
        "https://localhost:{}/hls/secure/index.m3u8",
        srv.https.port()
    );
    srv.wait_for(&playlist, &mut ffmpeg).await;
    assert_eq!(
        common::metric(srv.http, "onair_rtmp_publishes_total").await,
        1.0
    );
    // ffprobe follows the playlist over HTTPS and decodes video frames.
    let out = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-tls_verify",
            "0",
            "-read_intervals",
            "%+2",
            "-select_streams",
            "v:0",
        ])
        .args([
            "-count_frames",
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&playlist)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let frames: u32 = text
        .trim()
        .rsplit(',')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        text.starts_with("h264") && frames >= 10,
        "ffprobe over HTTPS: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = ffmpeg.start_kill();
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hlsjs_plays_ll_hls_over_http2_in_chromium() {
    let srv = TlsServer::start("h2").await;
    let mut ffmpeg =
        common::ffmpeg_publish(&format!("rtmp://{}/live/{}", srv.rtmp, srv.stream_key), 60);
    let playlist = format!("https://localhost:{}/hls/h2/index.m3u8", srv.https.port());
    srv.wait_for(&playlist, &mut ffmpeg).await;
    let r = common::node::run_script_with_env(
        "hls_watch.mjs",
        &[&playlist, "15"],
        &[],
        Duration::from_secs(80),
    )
    .await;
    eprintln!("hls.js over h2: {r}");
    assert!(r["fatalErrors"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(
        r["canBlockReload"], true,
        "blocking playlist reloads over h2: {r}"
    );
    assert!(r["framesDecoded"].as_f64().unwrap() > 100.0, "{r}");
    assert_eq!(
        r["protocols"],
        serde_json::json!(["h2"]),
        "every HLS request over HTTP/2: {r}"
    );
    let _ = ffmpeg.start_kill();
    srv.stop().await;
}

#[test]
fn rtmps_without_a_certificate_is_refused_at_start() {
    let out = std::process::Command::new(BIN)
        .args([
            "serve",
            "--rtmps",
            "127.0.0.1:0",
            "--data-dir",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--rtmps needs TLS"), "{err}");
}

/// Connections that open TLS and say nothing (or stop mid-handshake) are
/// closed after the handshake deadline, and HTTPS keeps serving meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tls_connections_are_closed_and_https_keeps_serving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let srv = TlsServer::start("quiet").await;
    let mut silent = Vec::new();
    for i in 0..60 {
        let mut s = tokio::net::TcpStream::connect(srv.https).await.unwrap();
        if i % 2 == 0 {
            // Half a ClientHello record header: the handshake never ends.
            s.write_all(&[0x16, 0x03, 0x01, 0x02]).await.unwrap();
        }
        silent.push(s);
    }
    let url = format!("https://localhost:{}/healthz", srv.https.port());
    let code = curl(
        &srv.https,
        &srv.ca(),
        &["-o", "/dev/null", "-w", "%{http_code}"],
        &url,
    );
    assert_eq!(code, "200", "a real client beside 60 silent ones");
    let start = Instant::now();
    for s in &mut silent {
        let mut buf = [0u8; 64];
        let left = Duration::from_secs(15).saturating_sub(start.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(n)) => {
                // A TLS alert before the close is fine; then it must close.
                let _ = n;
                let rest = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
                assert!(
                    matches!(rest, Ok(Ok(0)) | Ok(Err(_))),
                    "closed after the alert"
                );
            }
            Err(_) => panic!("a silent TLS connection was still open after 15 s"),
        }
    }
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_secs(8),
        "not closed before the deadline: {waited:?}"
    );
    let code = curl(
        &srv.https,
        &srv.ca(),
        &["-o", "/dev/null", "-w", "%{http_code}"],
        &url,
    );
    assert_eq!(code, "200");
    srv.stop().await;
}
