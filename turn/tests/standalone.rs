//! The `onair-turn` binary: it takes the same secret as `onair serve`, and
//! relays for REST API credentials signed with it, not for others; it
//! refuses loopback peers unless `--allow-peer` covers them.

mod common;

use common::raw::{Listener, RawClient, Refused};
use onair_turn::webrtc_util::Conn;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

async fn allocate(server: &str, username: &str, password: &str) -> Result<String, String> {
    let client = common::client(server, username, password).await;
    let r = match tokio::time::timeout(Duration::from_secs(10), client.allocate()).await {
        Err(_) => Err("no answer".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(relay)) => {
            let addr = relay.local_addr().map_err(|e| e.to_string())?;
            let _ = relay.close().await;
            Ok(addr.to_string())
        }
    };
    let _ = client.close().await;
    r
}

/// Runs onair-turn with `args` on loopback: the process and its address.
async fn run(args: &[&str]) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_onair-turn"))
        .args(["--listen", "127.0.0.1:0", "--public-ip", "127.0.0.1"])
        .args(["--turn-secret", "shared"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("onair-turn runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("prints its URL")
        .unwrap()
        .expect("a line");
    assert!(url.starts_with("turn:127.0.0.1:"), "{url}");
    let server = url.trim_start_matches("turn:").split('?').next().unwrap();
    (child, server.to_string())
}

#[tokio::test]
async fn standalone_relay_takes_the_shared_secret() {
    let (_child, server) = run(&["--relay-ports", "50100-50199"]).await;
    let server = server.as_str();

    let user = common::viewer_user();
    let relayed = allocate(server, &user, &onair_turn::rest_password("shared", &user))
        .await
        .expect("valid credentials allocate");
    let port: u16 = relayed.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        (50100..=50199).contains(&port),
        "relayed {relayed} in range"
    );
    let forged = allocate(server, &user, &onair_turn::rest_password("guess", &user)).await;
    assert!(forged.is_err(), "forged password accepted: {forged:?}");
}

#[tokio::test]
async fn standalone_relay_refuses_loopback_unless_allowed() {
    let user = common::viewer_user();
    let password = onair_turn::rest_password("shared", &user);
    let peer = Listener::bind("127.0.0.1:0").await;
    for (args, allowed) in [
        (&[][..], false),
        (&["--allow-peer", "10.0.0.0/8,127.0.0.1"][..], true),
    ] {
        let (_child, server) = run(args).await;
        let mut c = RawClient::new(
            "127.0.0.1:0".parse().unwrap(),
            server.parse().unwrap(),
            &user,
            &password,
        )
        .await
        .expect("bind the client socket");
        c.allocate().await.expect("valid credentials allocate");
        let r = c.create_permission(&[peer.addr]).await;
        if allowed {
            r.expect("--allow-peer covers it");
            c.send_indication(peer.addr, b"hi").await.unwrap();
            assert_eq!(peer.drain(Duration::from_millis(500)).await, (1, 2));
        } else {
            assert_eq!(
                r,
                Err(Refused {
                    code: 403,
                    authenticated: true
                })
            );
            c.send_indication(peer.addr, b"hi").await.unwrap();
            assert_eq!(peer.drain(Duration::from_millis(500)).await, (0, 0));
        }
    }
}
