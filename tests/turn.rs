//! TURN: the built-in relay (`onair serve --turn`) and coturn with the same
//! secret. A headless Chromium viewer restricted to relay candidates plays an
//! RTMP stream through each, over UDP and over TCP; time-limited credentials
//! that are expired or forged are refused at the TURN protocol level
//! (Allocate with the `turn` crate's client); the per-client allocation quota
//! and the ration of unauthenticated requests hold.
//!
//! TURN over TLS (`turns:`) runs on its own port with the HTTPS
//! certificate, which the test's Chromium trusts through its NSS database.
//!
//! Needs node + Chromium (as tests/browser_whep.rs), coturn's `turnserver`
//! (apt `coturn`) and NSS's `certutil` (apt `libnss3-tools`);
//! scripts/setup.sh --test installs them.

mod common;
// The relay crate's own test client, shared rather than written again.
#[path = "../turn/tests/common/mod.rs"]
mod turn_client;

use common::{ffmpeg_publish, wait_for_live, TestServer};
use onair_turn::turn::client::Client;
use onair_turn::webrtc_util::Conn;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::process::Command;

const SECRET: &str = "turn-test-secret";

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The first `turn:` entry of `GET /api/ice-servers`: (host:port, username,
/// password).
async fn turn_entry(srv: &TestServer) -> (String, String, String) {
    let e = common::ice::turn_entry(srv).await;
    (e.server, e.username, e.credential)
}

type Relayed = Box<dyn Conn + Send + Sync>;

/// Allocate on `server` with these credentials: the relayed socket and its
/// address, or the error. Closing the relayed socket frees the allocation.
async fn allocate(
    server: &str,
    username: &str,
    password: &str,
) -> (Client, Result<(Relayed, SocketAddr), String>) {
    let client = turn_client::client(server, username, password).await;
    let r = tokio::time::timeout(Duration::from_secs(10), client.allocate())
        .await
        .map_err(|_| "no answer".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .and_then(|relay| {
            let addr = relay.local_addr().map_err(|e| e.to_string())?;
            Ok((Box::new(relay) as Relayed, addr))
        });
    (client, r)
}

/// Valid credentials allocate; expired, forged or expiry-less ones don't.
async fn check_credentials(server: &str, username: &str, password: &str) {
    let (ok, r) = allocate(server, username, password).await;
    let (relay, relayed) =
        r.unwrap_or_else(|e| panic!("valid credentials refused by {server}: {e}"));
    eprintln!("{server}: relayed address {relayed}");
    let _ = relay.close().await;
    let _ = ok.close().await;

    let forged = onair_turn::rest_password("not-the-secret", username);
    let (c, r) = allocate(server, username, &forged).await;
    assert!(
        r.is_err(),
        "{server} accepted a forged password: {:?}",
        r.map(|(_, a)| a)
    );
    let _ = c.close().await;

    // Signed with the right secret, but expired a minute ago.
    let expired = format!("{}:viewer", now_unix() - 60);
    let (c, r) = allocate(
        server,
        &expired,
        &onair_turn::rest_password(SECRET, &expired),
    )
    .await;
    assert!(
        r.is_err(),
        "{server} accepted expired credentials: {:?}",
        r.map(|(_, a)| a)
    );
    let _ = c.close().await;

    // Someone else's still-valid username with this password.
    let other = format!("{}:someone-else", now_unix() + 3600);
    let (c, r) = allocate(server, &other, password).await;
    assert!(
        r.is_err(),
        "{server} accepted a password for another user: {:?}",
        r.map(|(_, a)| a)
    );
    let _ = c.close().await;
}

/// Runs turn_watch.mjs against `srv`: a relay-only Chromium viewer, using
/// the TURN servers of `transport` (udp or tcp).
async fn watch_through_relay(srv: &TestServer, transport: &str) -> serde_json::Value {
    let base = format!("http://{}", srv.http);
    watch_from(&base, srv, transport, &[]).await
}

/// [`watch_through_relay`] from the page at `base`, with `env` for node and
/// Chromium.
async fn watch_from(
    base: &str,
    srv: &TestServer,
    transport: &str,
    env: &[(&str, &str)],
) -> serde_json::Value {
    let r = common::node::run_script_with_env(
        "turn_watch.mjs",
        &[base, &srv.channel, "6", transport],
        env,
        Duration::from_secs(90),
    )
    .await;
    eprintln!("relay viewer: {r}");
    assert!(
        r["relayCandidates"].as_u64() > Some(0),
        "no relay candidate: {r}"
    );
    assert_eq!(r["localType"], "relay", "selected pair is not relayed: {r}");
    assert_eq!(r["relayProtocol"], transport, "TURN transport: {r}");
    // 6 s at 30 fps, less ICE and the first keyframe.
    assert!(r["framesDecoded"].as_u64() > Some(60), "no picture: {r}");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_through_builtin_relay_over_udp_and_tcp() {
    let srv = TestServer::start_with(|c| {
        c.turn = Some("127.0.0.1:0".parse().unwrap());
        c.turn_secret = Some(SECRET.into());
    })
    .await;
    let (turn, username, _) = turn_entry(&srv).await;
    // EXPIRY:ROLE@HOST: the relay caps allocations per user, so each host
    // gets its own.
    assert!(
        username.ends_with(":viewer@127.0.0.1")
            && username.split(':').next().unwrap().parse::<u64>().is_ok(),
        "REST API username: {username}"
    );
    let _ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 40);
    wait_for_live(srv.http, &srv.channel).await;
    let r = watch_through_relay(&srv, "udp").await;
    assert!(
        r["iceServers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u.as_str() == Some(&*format!("turn:{turn}?transport=udp"))),
        "the built-in relay is announced: {r}"
    );
    // TURN over TCP, for networks that block UDP: same port, same secret.
    let r = watch_through_relay(&srv, "tcp").await;
    assert_eq!(
        r["iceServers"][0],
        format!("turn:{turn}?transport=tcp"),
        "the relay's TCP URL: {r}"
    );
    srv.stop().await;
}

/// TURN over TLS: with TLS on, the relay also listens for `turns:`, its
/// URL carries the public URL's host (which the certificate names), and
/// Chromium, from an HTTPS page, relays through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_through_builtin_relay_over_tls() {
    let certs = tempfile::tempdir().unwrap();
    let tls = common::tls::self_signed("localhost");
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    common::tls::write_pair(&tls, &cert, &key);
    let home = certs.path().join("home");
    common::tls::trust_in_chromium(&home, &cert);
    let srv = TestServer::start_with(|c| {
        c.turn = Some("127.0.0.1:0".parse().unwrap());
        c.turn_secret = Some(SECRET.into());
        c.turns = Some("127.0.0.1:0".parse().unwrap());
        c.tls = onair::tls::TlsConfig {
            source: Some(onair::tls::CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            }),
            https: "127.0.0.1:0".parse().unwrap(),
            rtmps: None,
        };
        c.hooks.public_url = Some("https://localhost".into());
    })
    .await;
    let https = srv.https.expect("HTTPS listens");
    let base = format!("https://localhost:{}", https.port());
    let _ff = ffmpeg_publish(&srv.rtmp_url(&srv.key), 40);
    wait_for_live(srv.http, &srv.channel).await;
    let home = home.to_str().unwrap();
    let r = watch_from(&base, &srv, "tls", &[("HOME", home)]).await;
    let url = r["iceServers"][0].as_str().unwrap_or_default();
    assert!(
        url.starts_with("turns:localhost:") && url.ends_with("?transport=tcp"),
        "the relay's turns: URL names the certificate's host: {r}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_relay_refuses_bad_credentials_and_bounds_allocations() {
    let srv = TestServer::start_with(|c| {
        c.turn = Some("127.0.0.1:0".parse().unwrap());
        c.turn_secret = Some(SECRET.into());
    })
    .await;
    let (turn, username, password) = turn_entry(&srv).await;
    check_credentials(&turn, &username, &password).await;

    // One client IP (loopback here) gets 16 allocations at once, then 486.
    let per_ip = onair_turn::Limits::default().max_allocations_per_ip;
    // The allocation check_credentials made was freed (Refresh, lifetime 0).
    let mut held = Vec::new();
    for i in 0..per_ip {
        let (c, r) = allocate(&turn, &username, &password).await;
        let (relay, _) = r.unwrap_or_else(|e| panic!("allocation {i} refused: {e}"));
        held.push((c, relay));
    }
    let (c, r) = allocate(&turn, &username, &password).await;
    assert!(r.is_err(), "allocation over the per-IP quota");
    let _ = c.close().await;
    // Freeing one makes room for one.
    let (c0, relay0) = held.remove(0);
    relay0.close().await.unwrap();
    let _ = c0.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (c, r) = allocate(&turn, &username, &password).await;
    let (relay, _) = r.unwrap_or_else(|e| panic!("a freed allocation was not reusable: {e}"));
    held.push((c, relay));
    let (c, r) = allocate(&turn, &username, &password).await;
    assert!(r.is_err(), "allocation over the per-IP quota, again");
    let _ = c.close().await;
    for (c, relay) in held {
        let _ = relay.close().await;
        let _ = c.close().await;
    }

    // A flood of unauthenticated Allocates (each makes the crate issue and
    // store a nonce; the store is bounded, see turn/tests/nonces.rs) is
    // rationed: bursts of 5 s' worth, then the rate.
    let flood = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let limit = onair_turn::Limits::default().challenges_per_sec as usize;
    let sent = limit * 15;
    let started = std::time::Instant::now();
    let mut answered = 0;
    let mut buf = [0u8; 1500];
    for i in 0..sent {
        let mut req = vec![0u8, 3, 0, 0, 0x21, 0x12, 0xA4, 0x42];
        req.extend_from_slice(&(i as u32).to_be_bytes());
        req.extend_from_slice(&[0; 8]);
        flood.send_to(&req, &turn).await.unwrap();
        while let Ok(Ok(_)) = tokio::time::timeout(Duration::ZERO, flood.recv(&mut buf)).await {
            answered += 1;
        }
    }
    while let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(300), flood.recv(&mut buf)).await
    {
        answered += 1;
    }
    let allowed = limit * 5 + (started.elapsed().as_secs_f64() * limit as f64) as usize + 1;
    eprintln!("{answered} of {sent} unauthenticated Allocates answered (at most {allowed})");
    assert!(
        answered > 0 && answered <= allowed,
        "{answered} of {sent} answered"
    );
    // And a real client still gets in afterwards (its challenge may wait for
    // the ration to refill: the client retransmits).
    let (c, r) = allocate(&turn, &username, &password).await;
    let (relay, _) = r.unwrap_or_else(|e| panic!("valid credentials refused after a flood: {e}"));
    let _ = relay.close().await;
    let _ = c.close().await;
    srv.stop().await;
}

/// coturn on loopback with `use-auth-secret` and the same secret.
struct Coturn {
    _child: tokio::process::Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

async fn start_coturn() -> Coturn {
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new("turnserver")
        .args([
            "-n",
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--log-file",
            "stdout",
        ])
        .args(["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1"])
        .args(["--listening-port", &port.to_string()])
        .args(["--min-port", "40000", "--max-port", "40999"])
        .args(["--use-auth-secret", "--static-auth-secret", SECRET])
        .args(["--realm", "onair"])
        // The viewer, the relay and onair share loopback here.
        .args(["--allow-loopback-peers", "--cli-password", "unused"])
        .arg("--pidfile")
        .arg(dir.path().join("turnserver.pid"))
        .arg("--userdb")
        .arg(dir.path().join("turndb"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("coturn's turnserver is installed (apt-get install coturn)");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Ready when it answers a STUN binding request.
    let probe = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut req = vec![0u8, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42];
    req.extend_from_slice(&[9; 12]);
    let mut buf = [0u8; 512];
    for _ in 0..100 {
        probe.send_to(&req, addr).await.unwrap();
        if let Ok(Ok(_)) =
            tokio::time::timeout(Duration::from_millis(100), probe.recv_from(&mut buf)).await
        {
            return Coturn {
                _child: child,
                addr,
                _dir: dir,
            };
        }
    }
    panic!("coturn did not start on {addr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_through_coturn_with_the_same_secret() {
    let coturn = start_coturn().await;
    let srv = TestServer::start_with(|c| {
        c.ice_servers = vec![
            format!("turn:{}?transport=udp", coturn.addr),
            format!("turn:{}?transport=tcp", coturn.addr),
        ];
        c.turn_secret = Some(SECRET.into());
    })
    .await;
    let (turn, username, password) = turn_entry(&srv).await;
    assert_eq!(turn, coturn.addr.to_string());
    check_credentials(&turn, &username, &password).await;
    // 360p: coturn's relay sockets have small receive buffers, and a 720p
    // keyframe, sent by the SFU as one unpaced burst, overflowed them (388
    // of ~900 packets lost in 5 s). This test is about interop, not that.
    let _ff = common::ffmpeg_publish_with(
        &srv.rtmp_url(&srv.key),
        40,
        &["-bf", "0", "-vf", "scale=640:360"],
    );
    wait_for_live(srv.http, &srv.channel).await;
    watch_through_relay(&srv, "udp").await;
    watch_through_relay(&srv, "tcp").await;
    srv.stop().await;
}

#[test]
fn turn_without_secret_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_onair"))
        .args(["serve", "--turn", "127.0.0.1:0"])
        .env_remove("ONAIR_TURN_SECRET")
        .env(
            "ONAIR_DATA_DIR",
            std::env::temp_dir().join("onair-turn-nosecret"),
        )
        .output()
        .expect("onair runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--turn needs --turn-secret"), "stderr: {err}");
}
