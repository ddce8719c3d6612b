//! onair behind the reverse proxies operators run, each installed from apt
//! and configured by its file in docs/ (`docs/nginx.conf`, `docs/Caddyfile`)
//! with only names, ports, paths and the upstream replaced. Through the
//! proxy, over TLS: HTTP/2, the plain-HTTP redirect, the Secure session
//! cookie, a signed-in chat post and the WebSocket it arrives on, hls.js
//! playing LL-HLS with blocking reloads, Chromium watching over WHEP and
//! going live over WHIP (both with their DELETE), and the client's own
//! address in onair's access log, read through `--trusted-proxies`.

mod common;

use common::child::{create_channel, free_addr, serve_with, wait_healthy};
use common::nginx::{self, doc, swap};
use common::node::run_script;
use common::tls::{curl, self_signed, write_pair, wss, Pem};
use futures_util::StreamExt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// One at a time: each runs ffmpeg, onair, a proxy and Chromium.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Clone, Copy, Debug)]
enum Proxy {
    Nginx,
    Caddy,
}

/// Where the proxy listens and what it forwards to.
struct Site<'a> {
    dir: &'a Path,
    https: SocketAddr,
    plain: SocketAddr,
    upstream: SocketAddr,
    cert: &'a Path,
    key: &'a Path,
}

/// docs/nginx.conf for this test's addresses, as nginx's main
/// configuration ([`nginx::config`]).
fn nginx_config(s: &Site) -> PathBuf {
    let doc = doc("nginx.conf");
    // Loopback only: the machine may have no IPv6.
    let text: String = doc
        .lines()
        .filter(|l| !l.contains("listen [::]"))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = swap(
        &text,
        "listen 443 ssl",
        &format!("listen 127.0.0.1:{} ssl", s.https.port()),
    );
    let text = swap(
        &text,
        "listen 80;",
        &format!("listen 127.0.0.1:{};", s.plain.port()),
    );
    let text = swap(
        &text,
        "server 127.0.0.1:8080;",
        &format!("server {};", s.upstream),
    );
    let text = swap(
        &text,
        "/etc/letsencrypt/live/live.example.com/fullchain.pem",
        s.cert.to_str().unwrap(),
    );
    let text = swap(
        &text,
        "/etc/letsencrypt/live/live.example.com/privkey.pem",
        s.key.to_str().unwrap(),
    );
    let text = swap(
        &text,
        "root /var/www/acme;",
        &format!("root {};", s.dir.display()),
    );
    let text = swap(
        &text,
        "server_name live.example.com;",
        "server_name localhost;",
    );
    nginx::config(s.dir, &text)
}

/// docs/Caddyfile for this test's addresses, with global options that keep
/// Caddy inside the test: its own ports, no admin endpoint, its state in
/// `dir`, and the test's certificate instead of ACME.
fn caddy_config(s: &Site) -> PathBuf {
    let doc = doc("Caddyfile");
    let text = swap(
        &doc,
        "# tls /etc/ssl/live.example.com.pem /etc/ssl/live.example.com.key",
        &format!("tls {} {}", s.cert.display(), s.key.display()),
    );
    let text = swap(&text, "live.example.com {", "localhost {");
    let text = swap(
        &text,
        "reverse_proxy 127.0.0.1:8080",
        &format!("reverse_proxy {}", s.upstream),
    );
    let global = format!(
        "{{\n\tadmin off\n\thttp_port {}\n\thttps_port {}\n\tskip_install_trust\n\t\
         storage file_system {}/caddy\n}}\n\n",
        s.plain.port(),
        s.https.port(),
        s.dir.display()
    );
    let path = s.dir.join("Caddyfile");
    std::fs::write(&path, global + &text).unwrap();
    path
}

fn start_proxy(proxy: Proxy, s: &Site) -> Child {
    match proxy {
        Proxy::Nginx => nginx::spawn(s.dir, &nginx_config(s)),
        Proxy::Caddy => {
            let log = std::fs::File::create(s.dir.join("proxy.log")).unwrap();
            Command::new("caddy")
                .args(["run", "--adapter", "caddyfile", "--config"])
                .arg(caddy_config(s))
                .env("HOME", s.dir)
                .env("XDG_DATA_HOME", s.dir.join("data"))
                .env("XDG_CONFIG_HOME", s.dir.join("config"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("caddy is installed (apt-get install caddy): {e}"))
        }
    }
}

/// What the proxy said (Caddy's log, or nginx's).
fn proxy_log(dir: &Path) -> String {
    nginx::log(dir)
}

async fn wait_for_proxy(front: &mut Child, s: &Site<'_>, ca: &Path, origin: &str) {
    let start = Instant::now();
    loop {
        let out = curl(
            &s.https,
            ca,
            &["-o", "/dev/null", "-w", "%{http_code}"],
            &format!("{origin}/healthz"),
        );
        if out == "200" {
            return;
        }
        if let Ok(Some(status)) = front.try_wait() {
            panic!("the proxy exited ({status}):\n{}", proxy_log(s.dir));
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the proxy never answered /healthz ({out}):\n{}",
            proxy_log(s.dir)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// onair's access-log lines (`--log-format json --access-log`).
fn access_lines(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("server.log"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["target"] == "onair::access")
        .collect()
}

fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

async fn through(proxy: Proxy) {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tls = self_signed("localhost");
    let (cert, key) = (d.join("cert.pem"), d.join("key.pem"));
    write_pair(&tls, &cert, &key);
    let ca = d.join("ca.pem");
    std::fs::write(&ca, tls.cert_pem()).unwrap();
    let stream_key = create_channel(d, "proxied");
    let browser_key = create_channel(d, "browser");
    let (http, rtmp, https, plain) = (free_addr(), free_addr(), free_addr(), free_addr());
    let origin = format!("https://localhost:{}", https.port());
    let mut onair = serve_with(
        d,
        http,
        rtmp,
        "server.log",
        &[
            "--log-format",
            "json",
            "--access-log",
            "--trusted-proxies",
            "127.0.0.1/32",
            "--public-url",
            &origin,
        ],
    );
    wait_healthy(http).await;
    let site = Site {
        dir: d,
        https,
        plain,
        upstream: http,
        cert: &cert,
        key: &key,
    };
    let mut front = start_proxy(proxy, &site);
    wait_for_proxy(&mut front, &site, &ca, &origin).await;

    // HTTP/2 to the viewer.
    let out = curl(
        &https,
        &ca,
        &[
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
        ],
        &format!("{origin}/api/channels"),
    );
    assert_eq!(out, "200 2", "{proxy:?}: the API over HTTP/2");

    // Plain HTTP goes to HTTPS with the method kept.
    let out = curl(
        &plain,
        &ca,
        &[
            "-X",
            "POST",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
        ],
        &format!("http://localhost:{}/whip?a=1", plain.port()),
    );
    assert!(
        out.starts_with("308 https://localhost") && out.ends_with("/whip?a=1"),
        "{proxy:?}: plain HTTP redirect: {out}"
    );

    // The client's own address reaches onair, not the proxy's, and not
    // what the client claims in its own X-Forwarded-For.
    let out = curl(
        &https,
        &ca,
        &[
            "--interface",
            "127.0.0.2",
            "-H",
            "X-Forwarded-For: 6.6.6.6",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ],
        &format!("{origin}/api/channels/nobody-via-proxy"),
    );
    assert_eq!(out, "404");

    // Signed in through the proxy: a Secure cookie (from --public-url, as
    // onair itself speaks plain HTTP), and a cookie-authenticated chat post
    // passes onair's same-origin check, so Host arrived intact.
    let creds = r#"{"username":"viewer1","password":"correct horse battery"}"#;
    let json = "content-type: application/json";
    let head = curl(
        &https,
        &ca,
        &["-D", "-", "-o", "/dev/null", "-H", json, "--data", creds],
        &format!("{origin}/api/auth/register"),
    );
    assert!(head.starts_with("HTTP/2 201"), "{proxy:?}: {head}");
    let head = curl(
        &https,
        &ca,
        &["-D", "-", "-o", "/dev/null", "-H", json, "--data", creds],
        &format!("{origin}/api/auth/login"),
    );
    let cookie = header_value(&head, "set-cookie").unwrap_or_else(|| panic!("no cookie: {head}"));
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{proxy:?}: {cookie}"
    );
    let token = cookie
        .strip_prefix("onair_session=")
        .and_then(|v| v.split(';').next())
        .expect("session token");
    let mut ws = wss(&https, tls.cert.der().to_vec(), "/ws/proxied").await;
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
            json,
            "-H",
            &format!("cookie: onair_session={token}"),
            "-H",
            &format!("origin: {origin}"),
            "--data",
            r#"{"text":"through the proxy"}"#,
        ],
        &format!("{origin}/api/channels/proxied/chat"),
    );
    assert_eq!(posted, "201", "{proxy:?}: chat post");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let frame = tokio::time::timeout_at(deadline.into(), ws.next()).await;
        let Ok(Some(Ok(msg))) = frame else {
            panic!("{proxy:?}: no chat message on the WebSocket: {frame:?}")
        };
        if msg.to_text().unwrap_or("").contains("through the proxy") {
            break;
        }
    }
    let _ = ws.close(None).await;

    // LL-HLS through the proxy: hls.js with blocking reloads, over HTTP/2.
    let mut ffmpeg = common::ffmpeg_publish_sized(
        &format!("rtmp://{rtmp}/live/{stream_key}"),
        60,
        "640x360",
        &["-bf", "0"],
    );
    common::wait_for_live(http, "proxied").await;
    let playlist = format!("{origin}/hls/proxied/index.m3u8");
    let start = Instant::now();
    while common::get(http, "/hls/proxied/index.m3u8").await.status != 200 {
        assert!(start.elapsed() < Duration::from_secs(20), "no playlist");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = run_script("hls_watch.mjs", &[&playlist, "10"], Duration::from_secs(80)).await;
    eprintln!("{proxy:?} hls.js: {r}");
    assert!(r["fatalErrors"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(r["canBlockReload"], true, "{proxy:?}: {r}");
    assert!(
        r["framesDecoded"].as_f64().unwrap() > 100.0,
        "{proxy:?}: {r}"
    );
    assert_eq!(r["protocols"], serde_json::json!(["h2"]), "{proxy:?}: {r}");

    // WHEP: signalling through the proxy, media straight to onair.
    let r = run_script(
        "whep_watch.mjs",
        &[&origin, "proxied", "6"],
        Duration::from_secs(60),
    )
    .await;
    eprintln!("{proxy:?} WHEP: {r}");
    assert_eq!(r["status"], 201, "{r}");
    assert!(
        r["framesDecoded"].as_f64().unwrap() > 60.0,
        "{proxy:?}: {r}"
    );
    let _ = ffmpeg.start_kill();

    // WHIP: Chromium goes live from an HTTPS page (the camera needs one).
    let r = run_script(
        "whip_publish.mjs",
        &[&origin, &browser_key, "6", "H264", "-"],
        Duration::from_secs(60),
    )
    .await;
    eprintln!("{proxy:?} WHIP: {r}");
    assert_eq!(r["status"], 201, "{r}");
    assert_eq!(r["connectionState"], "connected", "{proxy:?}: {r}");
    assert!(
        r["framesEncoded"].as_f64().unwrap() > 60.0,
        "{proxy:?}: {r}"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    let access = access_lines(d);
    let probe = access
        .iter()
        .find(|l| l["path"] == "/api/channels/nobody-via-proxy")
        .unwrap_or_else(|| panic!("no access line for the probe: {access:?}"));
    assert_eq!(
        probe["client"], "127.0.0.2",
        "{proxy:?}: the client's address, not the proxy's or a claimed one: {probe}"
    );
    // Both browsers' DELETEs came through, and their sessions ended.
    for what in ["/whep/", "/whip/"] {
        let deleted = access.iter().any(|l| {
            l["method"] == "DELETE"
                && l["path"].as_str().is_some_and(|p| p.starts_with(what))
                && l["status"].as_u64().is_some_and(|s| s < 300)
        });
        assert!(
            deleted,
            "{proxy:?}: no DELETE {what} answered 2xx: {access:?}"
        );
    }
    let _ = front.start_kill();
    let _ = onair.start_kill();
    let _ = onair.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nginx_from_docs() {
    through(Proxy::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_caddy_from_docs() {
    through(Proxy::Caddy).await;
}
