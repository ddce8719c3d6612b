//! The `onair` binary as operators use it: admin commands, config sources,
//! and a clean exit on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn onair() -> Command {
    Command::new(common::child::BIN)
}

#[test]
fn channel_create_prints_a_strong_key_and_list_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let key = common::child::create_channel(dir.path(), "alice");
    let key = key.as_str();
    // URL-safe base64 of at least 16 random bytes: 22+ characters.
    assert!(key.len() >= 22, "key {key:?}");
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "URL-safe: {key:?}"
    );

    let out2 = onair()
        .args(["--data-dir", d, "channel", "create", "bob"])
        .output()
        .unwrap();
    let key2 = String::from_utf8(out2.stdout).unwrap();
    assert_ne!(key, key2.trim(), "keys are random");

    let list = onair()
        .args(["channel", "list", "--data-dir", d])
        .output()
        .unwrap();
    assert!(list.status.success());
    let text = String::from_utf8(list.stdout).unwrap();
    let names: Vec<&str> = text
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(names, vec!["alice", "bob"]);
    assert!(!text.contains(key), "list never prints keys");

    let dup = onair()
        .args(["channel", "create", "alice", "--data-dir", d])
        .output()
        .unwrap();
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    for bad in ["", "Alice", "a b", "../x", &"x".repeat(40)] {
        let o = onair()
            .args(["channel", "create", bad, "--data-dir", d])
            .output()
            .unwrap();
        assert!(!o.status.success(), "name {bad:?} refused");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("invalid channel name"),
            "name {bad:?}"
        );
    }
}

#[test]
fn serve_reads_flags_env_and_toml_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("onair.toml");
    // The file says RTMP on 1; the env var must win over it.
    std::fs::write(
        &toml,
        "rtmp = \"127.0.0.1:1\"\nwebrtc-udp = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let mut child = onair()
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--icecast",
            "127.0.0.1:0",
            "--config",
            toml.to_str().unwrap(),
        ])
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .env("ONAIR_RTMP", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut http = None;
    let start = Instant::now();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.split("http=").nth(1) {
            http = rest.split_whitespace().next().map(str::to_string);
            assert!(
                line.contains("rtmp=127.0.0.1:"),
                "RTMP from the env: {line}"
            );
            assert!(
                !line.contains("rtmp=127.0.0.1:1 "),
                "env beats the file: {line}"
            );
            assert!(
                line.contains("webrtc=[127.0.0.1:"),
                "WebRTC from the file: {line}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "server did not log its addresses"
        );
    }
    let http: std::net::SocketAddr = http.expect("logged http address").parse().unwrap();
    assert!(
        dir.path().join("onair.db").exists(),
        "SQLite file created in the data dir"
    );
    let mut s = std::net::TcpStream::connect(http).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    // The container health check: `onair health` on the same settings.
    let health = |addr: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_onair"))
            .args(["health", "--http", addr])
            .output()
            .unwrap()
    };
    let ok = health(&http.to_string());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "ok");
    let dead = health("127.0.0.1:1");
    assert!(!dead.status.success(), "nothing listens on port 1");
    assert!(String::from_utf8_lossy(&dead.stderr).contains("error"));

    unsafe_sigterm(child.id());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "clean exit on SIGTERM: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_bad_config_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("bad.toml");
    std::fs::write(&toml, "htpp = \"127.0.0.1:0\"\n").unwrap();
    let out = onair()
        .args(["serve", "--config", toml.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad config file") && err.contains("htpp"),
        "{err}"
    );
}

fn unsafe_sigterm(pid: u32) {
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// `--log-format json` writes one JSON object per line, and `--access-log`
/// one line per request, with every credential in the URL masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_and_an_access_log_without_secrets() {
    use common::child::{free_addr, serve_with, wait_healthy};
    let dir = tempfile::tempdir().unwrap();
    let (http, rtmp) = (free_addr(), free_addr());
    let mut child = serve_with(
        dir.path(),
        http,
        rtmp,
        "server.log",
        &["--log-format", "json", "--access-log"],
    );
    wait_healthy(http).await;
    common::get(http, "/ws/nobody?token=sekrit-token").await;
    common::get(http, "/hls/nobody/index.m3u8?_HLS_msn=7&_HLS_part=1").await;
    let r = common::http(http, "DELETE", "/whep/nobody/sekrit-session", &[], b"").await;
    assert_eq!(r.status, 404);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(
        !log.contains("sekrit"),
        "a credential reached the log:\n{log}"
    );
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let access: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["target"] == "onair::access")
        .collect();
    let path_of = |p: &str| {
        access
            .iter()
            .find(|l| l["path"].as_str().is_some_and(|x| x.starts_with(p)))
            .unwrap_or_else(|| panic!("no access line for {p}: {access:?}"))
    };
    assert_eq!(path_of("/ws/")["path"], "/ws/nobody?token=…");
    let hls = path_of("/hls/");
    assert_eq!(hls["path"], "/hls/nobody/index.m3u8?_HLS_msn=7&_HLS_part=1");
    assert_eq!(hls["status"], 404);
    assert_eq!(hls["method"], "GET");
    assert!(
        hls["client"] == "127.0.0.1" && hls["ms"].is_number(),
        "{hls}"
    );
    let whep = path_of("/whep/");
    assert_eq!(whep["path"], "/whep/nobody/…");
    assert_eq!(whep["method"], "DELETE");
}
