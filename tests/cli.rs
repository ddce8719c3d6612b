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
    let mut serve = onair();
    serve
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
        .stderr(Stdio::piped());
    // Started as from a shell with the usual soft limit of 1 024 open files
    // under a hard limit too low for the connection caps.
    use std::os::unix::process::CommandExt;
    let hard = {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct passed.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) }, 0);
        l.rlim_max.min(4096)
    };
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between
    // fork and exec.
    unsafe {
        serve.pre_exec(move || {
            let l = libc::rlimit {
                rlim_cur: 1024.min(hard),
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = serve.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut http = None;
    let mut warned = false;
    let start = Instant::now();
    for line in lines.by_ref() {
        let line = line.unwrap();
        warned |= line.contains("WARN") && line.contains("open-file limit");
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
    // The server raised its soft limit as far as the hard one, and said the
    // hard one is too low.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("open-file limits");
    let hard = hard.to_string();
    assert_eq!(
        open_files.split_whitespace().collect::<Vec<_>>()[3..5],
        [hard.as_str(), hard.as_str()],
        "{open_files}"
    );
    assert!(warned, "no warning about the hard open-file limit");
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

/// The config file: the long flags' names as keys, under the flags and
/// environment, over the defaults. `onair config check` refuses unknown
/// keys and bad values and prints the effective settings with secrets
/// masked; `serve` skips an unknown key with a warning, and refuses a bad
/// value. docs/onair.toml holds every key and checks clean.
#[test]
fn config_files_are_checked_and_every_setting_is_in_the_example() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let check = |file: &std::path::Path, extra: &[&str]| {
        let out = onair()
            .args(["config", "check"])
            .arg(file)
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let typo = dir.path().join("typo.toml");
    std::fs::write(&typo, "htpp = \"127.0.0.1:0\"\n").unwrap();
    let (ok, _, err) = check(&typo, &[]);
    assert!(!ok && err.contains("unknown keys: htpp"), "{err}");
    // serve-side commands go on without the unknown key, and say so.
    let out = onair()
        .args(["channel", "list", "--data-dir", d, "--config"])
        .arg(&typo)
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key") && err.contains("htpp"), "{err}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "hls-part-ms = \"fast\"\n").unwrap();
    let (ok, _, err) = check(&bad, &[]);
    assert!(!ok && err.contains("hls-part-ms"), "{err}");
    let out = onair()
        .args(["serve", "--data-dir", d, "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hls-part-ms"), "{err}");
    let bad_toml = dir.path().join("broken.toml");
    std::fs::write(&bad_toml, "http = [\n").unwrap();
    let (ok, _, err) = check(&bad_toml, &[]);
    assert!(!ok && err.contains("bad config file"), "{err}");

    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "http = \"0.0.0.0:9999\"\nturn-secret = \"hunter2\"\n\
         smtp-url = \"smtp://me:sekrit@mail.example.com:587\"\n\
         smtp-from = \"onair@example.com\"\nhls-segment-ms = 4000\n\
         trusted-proxies = [\"10.0.0.0/8\"]\nwebhook-timeout = \"750ms\"\n\
         oidc-provider = [\"id=sso,issuer=https://sso.example.com,client-id=c,client-secret=hunter2\"]\n",
    )
    .unwrap();
    let (ok, out, err) = check(&good, &["--hls-segment-ms", "3000"]);
    assert!(ok, "{err}");
    for line in [
        "http = \"0.0.0.0:9999\"",
        "turn-secret = \"(secret)\"",
        "smtp-url = \"smtp://me:(secret)@mail.example.com:587\"",
        "smtp-from = \"onair@example.com\"",
        "hls-segment-ms = 3000",
        "hls-part-ms = 200",
        "rtmp = \"0.0.0.0:1935\"",
        "trusted-proxies = [\"10.0.0.0/8\"]",
        "webhook-timeout = \"750ms\"",
        "oidc-provider = [\"id=sso,issuer=https://sso.example.com,client-id=c,client-secret=(secret)\"]",
        "# tls-cert =",
    ] {
        assert!(out.lines().any(|l| l == line), "no {line:?} in:\n{out}");
    }
    assert!(!out.contains("hunter2") && !out.contains("sekrit"), "{out}");

    // Every key the server knows is in the example, which checks clean.
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let (ok, all, err) = check(&empty, &[]);
    assert!(ok, "{err}");
    let key_of = |l: &str| {
        let l = l.trim_start_matches("# ");
        l.split(" =").next().unwrap().trim().to_string()
    };
    let known: Vec<String> = all.lines().map(key_of).collect();
    assert!(known.len() > 40, "{all}");
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/onair.toml");
    let (ok, _, err) = check(&example, &[]);
    assert!(ok, "docs/onair.toml: {err}");
    let text = std::fs::read_to_string(&example).unwrap();
    let documented: Vec<String> = text
        .lines()
        .filter(|l| l.contains(" =") && !l.starts_with("##"))
        .map(key_of)
        .collect();
    for k in &known {
        assert!(documented.contains(k), "docs/onair.toml lacks {k}");
    }
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

/// `--metrics-listen` moves `/metrics` off the public listener onto its own,
/// which serves nothing else; `--metrics-token` makes it ask for a bearer
/// token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_their_own_listener_behind_a_token() {
    use common::child::{free_addr, serve_with, wait_healthy};
    let dir = tempfile::tempdir().unwrap();
    let (http, rtmp, metrics) = (free_addr(), free_addr(), free_addr());
    let mut child = serve_with(
        dir.path(),
        http,
        rtmp,
        "server.log",
        &[
            "--metrics-listen",
            &metrics.to_string(),
            "--metrics-token",
            "s3cret-scrape",
        ],
    );
    wait_healthy(http).await;
    assert_eq!(common::get(http, "/metrics").await.status, 404);
    let none = common::get(metrics, "/metrics").await;
    assert_eq!(none.status, 401, "{}", none.text());
    let wrong = common::http(
        metrics,
        "GET",
        "/metrics",
        &[("authorization", "Bearer s3cret-scrapf")],
        b"",
    )
    .await;
    assert_eq!(wrong.status, 401);
    let ok = common::http(
        metrics,
        "GET",
        "/metrics",
        &[("authorization", "Bearer s3cret-scrape")],
        b"",
    )
    .await;
    assert_eq!(ok.status, 200);
    let text = ok.text();
    assert!(text.contains("onair_build_info"), "{text}");
    // Every series the Grafana dashboard plots is one the server exports.
    let dashboard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/grafana-onair.json"),
    )
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut plotted = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("onair_") || word.starts_with("process_") {
                    let family = word.strip_suffix("_bucket").unwrap_or(word);
                    assert!(
                        text.contains(&format!("# TYPE {family} ")),
                        "the dashboard plots {word}, which /metrics lacks"
                    );
                    plotted += 1;
                }
            }
        }
    }
    assert!(plotted > 30, "{plotted} series in the dashboard");
    // The metrics port is not a second door into the app.
    let app = common::http(
        metrics,
        "GET",
        "/api/channels",
        &[("authorization", "Bearer s3cret-scrape")],
        b"",
    )
    .await;
    assert_eq!(app.status, 404);
    assert_eq!(common::get(metrics, "/").await.status, 404);
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// `onair ARGS --data-dir DIR` with `stdin`; (success, stdout, stderr).
fn admin(dir: &std::path::Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = onair()
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The operator's account and channel commands: each prints only its
/// answer, and fails with a clear message.
#[test]
fn user_and_channel_admin_commands() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pw = "correct horse battery\n";
    let (ok, key, err) = admin(
        d,
        &[
            "user",
            "create",
            "alice",
            "--role",
            "broadcaster",
            "--password-stdin",
        ],
        pw,
    );
    assert!(ok, "{err}");
    assert!(key.trim().len() >= 22);
    let (ok, out, err) = admin(d, &["user", "create", "carol", "--password-stdin"], pw);
    assert!(ok);
    assert_eq!(out, "", "a viewer gets no stream key");
    assert!(err.contains("no stream key"), "{err}");

    let (ok, list, _) = admin(d, &["user", "list"], "");
    assert!(ok);
    let lines: Vec<Vec<&str>> = list.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert_eq!(lines[0][..3], ["alice", "broadcaster", "active"]);
    assert_eq!(lines[1][..3], ["carol", "viewer", "active"]);
    assert!(
        lines[0][3].ends_with('Z') && lines[0][3].contains('T'),
        "{list}"
    );
    assert!(!list.contains("argon2"), "no hashes in the list");

    let (ok, out, _) = admin(d, &["user", "role", "alice", "moderator"], "");
    assert!(ok);
    assert_eq!(out, "alice\tmoderator\n");
    let (ok, out, _) = admin(d, &["user", "role", "carol", "broadcaster"], "");
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "carol\tbroadcaster", "{out}");
    assert!(
        lines.get(1).is_some_and(|k| k.len() >= 22),
        "the key, issued now: {out}"
    );
    let (ok, _, err) = admin(d, &["user", "role", "alice", "king"], "");
    assert!(!ok && err.contains("king"), "{err}");
    let (ok, _, err) = admin(d, &["user", "role", "nobody", "admin"], "");
    assert!(!ok && err.contains("no user named nobody"), "{err}");

    let (ok, _, err) = admin(
        d,
        &["user", "passwd", "alice", "--password-stdin"],
        "short\n",
    );
    assert!(!ok && err.contains("password"), "{err}");
    let (ok, out, err) = admin(
        d,
        &["user", "passwd", "alice", "--password-stdin"],
        "another horse battery\n",
    );
    assert!(ok, "{err}");
    assert!(out.starts_with("alice\t"), "{out}");

    // A user's channel is deleted with the user, not on its own.
    let (ok, _, err) = admin(d, &["channel", "delete", "carol"], "");
    assert!(!ok && err.contains("carol's channel"), "{err}");
    let (ok, out, _) = admin(d, &["user", "delete", "carol"], "");
    assert!(ok);
    assert_eq!(out, "carol\tdeleted\n");
    let (ok, _, err) = admin(d, &["user", "delete", "carol"], "");
    assert!(!ok && err.contains("deleted"), "{err}");
    let (_, list, _) = admin(d, &["user", "list"], "");
    assert!(list.contains("carol\tbroadcaster\tdeleted\t"), "{list}");
    let (ok, out, err) = admin(d, &["channel", "delete", "carol"], "");
    assert!(ok, "{err}");
    assert_eq!(out, "carol\tdeleted with 0 broadcasts\n");
    let (ok, _, err) = admin(d, &["channel", "delete", "carol"], "");
    assert!(!ok && err.contains("no channel named carol"), "{err}");

    let first = common::child::create_channel(d, "bob");
    let (ok, second, _) = admin(d, &["channel", "rotate-key", "bob"], "");
    assert!(ok);
    assert!(second.trim().len() >= 22 && second.trim() != first);
    let (ok, _, err) = admin(d, &["channel", "rotate-key", "nobody"], "");
    assert!(!ok && err.contains("no channel named nobody"), "{err}");
    let (ok, list, _) = admin(d, &["channel", "list"], "");
    assert!(ok);
    let names: Vec<&str> = list
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let (ok, list, _) = admin(d, &["channel", "list", "--live"], "");
    assert!(ok);
    assert_eq!(list, "", "nothing is live");
}

/// The CLI works on the database while a server runs: `channel list
/// --live` sees the broadcast, and `channel rotate-key` (another process)
/// ends the live RTMP publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_key_from_the_cli_ends_a_live_publish() {
    use common::child::{create_channel, free_addr, serve, wait_healthy};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = create_channel(d, "live1");
    let (http, rtmp) = (free_addr(), free_addr());
    let mut child = serve(d, http, rtmp, "server.log");
    wait_healthy(http).await;
    let mut ff = common::ffmpeg_publish_sized(
        &format!("rtmp://{rtmp}/live/{key}"),
        60,
        "320x240",
        &["-bf", "0"],
    );
    common::wait_for_live(http, "live1").await;
    let start = Instant::now();
    loop {
        let (ok, list, _) = admin(d, &["channel", "list", "--live"], "");
        assert!(ok);
        if list.starts_with("live1\t") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never listed live"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (ok, _, err) = admin(d, &["channel", "delete", "live1"], "");
    assert!(!ok && err.contains("has not ended"), "{err}");
    let (ok, _, err) = admin(d, &["channel", "rotate-key", "live1"], "");
    assert!(ok, "{err}");
    let start = Instant::now();
    loop {
        let ch = common::get(http, "/api/channels/live1").await.json();
        if ch["live"] == false {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "a key rotated by the CLI ends the publish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ended = tokio::time::timeout(Duration::from_secs(10), ff.wait()).await;
    assert!(ended.is_ok(), "ffmpeg's connection was closed");
    let log = std::fs::read_to_string(d.join("server.log")).unwrap();
    assert!(log.contains("stream key rotated or channel gone"), "{log}");
    let _ = child.start_kill();
    let _ = child.wait().await;
}
